// Search over the listing, ranked exactly as `mlld-registry search` ranks
// (client/src/search_query.rs, schemas/src/search.rs): an exact name first;
// then each word scores by the best place it matches (name above tag above
// author above description; an exact word above a prefix above one typo),
// plus a hundredth of its other matches; ties in listing order, which is the
// index's document order. The page has no module content, so words found
// only in a module's headings or leading comment are the CLI's alone.
"use strict";

const mlldSearch = (() => {
  const MIN_PREFIX = 2, MAX_PREFIX = 24, MAX_WORD = 40, MIN_TYPO_LEN = 4;
  const EXACT_NAME = 10000, TIE_BREAKER = 0.01;
  // Field, weights of an exact word, a prefix (null: none), one typo; and
  // whether its prefixes are indexed (and so stop at MAX_PREFIX characters).
  const TIERS = [
    ["name", 100, 60, 40, true],
    ["tagWords", 80, 50, 30, true],
    ["authorWords", 30, null, 15, false],
    ["text", 10, 6, 4, false],
  ];

  const chars = (s) => Array.from(s).length;
  const words = (text) => text.split(/[^\p{Alphabetic}\p{N}]+/u).filter((w) => w && chars(w) <= MAX_WORD).map((w) => w.toLowerCase());
  const termsOf = (lower) => {
    const terms = words(lower);
    if (terms.length > 1) {
      const j = terms.join("");
      if (chars(j) <= MAX_WORD) terms.push(j);
    }
    return terms;
  };
  const nameTerms = (name) => termsOf(name.toLowerCase());
  const joined = (text) => words(text).join("");

  // Every term of each field across the listing: a typo is forgiven only
  // for a word the field does not hold anywhere.
  const vocabulary = { name: new Set(), tagWords: new Set(), authorWords: new Set(), text: new Set() };
  const docs = []; // by listing position; holes until every shard is in
  let count = 0;

  /** Adds listing rows ([user, name, description, tags, …]) found at `offset` of the listing. */
  function add(rows, offset) {
    for (const [i, row] of rows.entries()) {
      const [user, name, desc, tags] = row;
      const login = user.replace(/^@/, "").toLowerCase();
      const lowerTags = tags.map((t) => t.toLowerCase());
      const doc = {
        row,
        exact: [name.toLowerCase(), (user + "/" + name).toLowerCase(), joined(name)].filter(Boolean),
        name: nameTerms(name),
        author: login,
        authorWords: [...termsOf(login), login],
        tags: lowerTags,
        tagWords: lowerTags.flatMap(nameTerms),
        text: words(desc),
      };
      for (const field of Object.keys(vocabulary)) for (const t of doc[field]) vocabulary[field].add(t);
      docs[offset + i] = doc;
      count += 1;
    }
  }

  /** What the user asked for, or an error message. */
  function parse(input) {
    const q = { text: "", authors: [], tags: [] };
    const text = [];
    for (const token of input.split(/\s+/).filter(Boolean)) {
      const colon = token.indexOf(":");
      const key = colon > 0 ? token.slice(0, colon).toLowerCase() : "";
      const value = token.slice(colon + 1);
      if (key === "author" || key === "user" || key === "tag") {
        if (!value) return { error: "`" + token + "` has no value; write author:USER or tag:TAG with no space after the colon" };
        (key === "tag" ? q.tags : q.authors).push(value.toLowerCase());
      } else text.push(token);
    }
    q.text = text.join(" ");
    if (!words(q.text).length && !q.authors.length && !q.tags.length) return { error: "" };
    return q;
  }

  // Whether a and b are at most one edit or one swap of neighbours apart.
  const SURROGATE = /[\uD800-\uDFFF]/;
  function withinOne(a, b) {
    if (a === b) return true;
    // One edit changes the length by at most one character, two code units.
    if (Math.abs(a.length - b.length) > 2) return false;
    const astral = SURROGATE.test(a) || SURROGATE.test(b);
    const x = astral ? Array.from(a) : a, y = astral ? Array.from(b) : b;
    if (Math.abs(x.length - y.length) > 1) return false;
    let i = 0;
    while (i < x.length && i < y.length && x[i] === y[i]) i++;
    const rest = astral ? (p, q) => x.slice(p).join("") === y.slice(q).join("") : (p, q) => x.slice(p) === y.slice(q);
    if (x.length === y.length) return rest(i + 1, i + 1) || (x[i] === y[i + 1] && x[i + 1] === y[i] && rest(i + 2, i + 2));
    return x.length > y.length ? rest(i + 1, i) : rest(i, i + 1);
  }

  // What one query word may match in each field: decided once per query.
  function plan(word) {
    const len = chars(word);
    return {
      word,
      tiers: TIERS.map(([field, exact, prefix, typo, indexedPrefix]) => ({
        field, exact, typo, prefix,
        byPrefix: prefix !== null && len >= MIN_PREFIX && (!indexedPrefix || len <= MAX_PREFIX),
        byTypo: len >= MIN_TYPO_LEN && !vocabulary[field].has(word),
      })),
    };
  }

  function wordScore(doc, { word, tiers }) {
    const hits = [];
    for (const { field, exact, prefix, typo, byPrefix, byTypo } of tiers) {
      const terms = doc[field];
      if (terms.includes(word)) hits.push(exact);
      if (byPrefix && terms.some((t) => t.startsWith(word))) hits.push(prefix);
      if (byTypo && terms.some((t) => withinOne(t, word))) hits.push(typo);
    }
    if (!hits.length) return 0;
    const best = Math.max(...hits);
    return best + TIE_BREAKER * (hits.reduce((a, b) => a + b, 0) - best);
  }

  /** Rows matching `q` (from `parse`), best first. */
  function run(q) {
    const qwords = words(q.text).map(plan);
    const forms = [joined(q.text)];
    if (!/\s/.test(q.text)) forms.push(q.text.toLowerCase());
    const exactForms = [...new Set(forms.filter(Boolean))];
    const hits = [];
    docs.forEach((doc, order) => {
      if (q.authors.some((a) => a !== doc.author)) return;
      if (q.tags.some((t) => !doc.tags.includes(t))) return;
      let score = 0;
      for (const w of qwords) {
        const s = wordScore(doc, w);
        if (!s) return;
        score += s;
      }
      for (const form of exactForms) if (doc.exact.includes(form)) score += EXACT_NAME;
      hits.push([score, order, doc.row]);
    });
    hits.sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    return hits.map((h) => h[2]);
  }

  // Levenshtein distance, for near names.
  function distance(a, b) {
    const x = Array.from(a), y = Array.from(b);
    let prev = Array.from({ length: y.length + 1 }, (_, i) => i);
    for (let i = 1; i <= x.length; i++) {
      const cur = [i];
      for (let j = 1; j <= y.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x[i - 1] === y[j - 1] ? 0 : 1));
      prev = cur;
    }
    return prev[y.length];
  }

  /** Up to `limit` listed `user/name`s near `wanted`, closest first. */
  function near(wanted, limit) {
    const want = wanted.toLowerCase();
    const wantName = want.split("/").pop();
    const scored = [];
    for (const { row } of docs.filter(Boolean)) {
      const full = (row[0] + "/" + row[1]).toLowerCase();
      const name = row[1].toLowerCase();
      const d = Math.min(distance(want, full), distance(wantName, name) + (want.includes("/") ? 1 : 0));
      const related = name.includes(wantName) || wantName.includes(name);
      if (d <= Math.max(2, Math.floor(wantName.length / 3)) || related) scored.push([related ? Math.min(d, 3) : d, row[0] + "/" + row[1]]);
    }
    scored.sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1]));
    return scored.slice(0, limit).map((s) => s[1]);
  }

  // ---- the first stage: the site's search parts ----
  // A part (indexer/src/site_data/search_parts.rs) maps each field to
  // {term: gaps of listing positions}; a term lies in the part its first
  // two characters name. The parts a query's words name hold every term
  // such a word matches exactly or as a prefix, and those one typo away
  // unless the typo changes a first letter; the whole listing, loaded next,
  // gives the final answer. A term of `x`, `k` or `u` whose rows are those
  // of the same term in `n`, `g` or `a` is marked there (`=` first) instead.
  const PART_FIELD = { name: "n", tagWords: "g", authorWords: "a", text: "t" };
  const SAME_AS = { x: "n", k: "g", u: "a" };
  const loadedParts = []; // by part number, as the site cut them
  let partCount = 1;
  // field → term → decoded positions, filled as queries use them.
  const decoded = { n: new Map(), g: new Map(), a: new Map(), t: new Map(), u: new Map(), k: new Map(), x: new Map() };
  const own = Object.prototype.hasOwnProperty;

  /** The part, of `parts`, that holds the terms starting as `term` does. */
  function partOf(term, parts) {
    return mlldPage.fnv1a(Array.from(term).slice(0, 2).map((c) => c.codePointAt(0))) % parts;
  }

  /** Adds part `i` of `parts`; its positions are decoded when first used. */
  function addPart(i, fields, parts) {
    partCount = parts;
    loadedParts[i] = fields;
  }

  // The raw value of `term` in `field` (a string of gaps), if a loaded part has it.
  function rawOf(field, term) {
    const part = loadedParts[partOf(term, partCount)];
    const terms = part && part[field];
    return terms && own.call(terms, term) ? terms[term] : undefined;
  }
  const hasTerm = (field, term) => rawOf(field, term) !== undefined;

  // The listing positions of `term` in `field`.
  function positionsOf(field, term) {
    let raw = rawOf(field, term);
    if (raw === undefined && SAME_AS[field]) {
      const same = rawOf(SAME_AS[field], term);
      if (same !== undefined && same[0] === "=") raw = same;
    }
    return raw === undefined ? [] : decode(field, term, raw);
  }

  // `raw`, the gaps of `term` in `field`, as positions (decoded once).
  function decode(field, term, raw) {
    const cache = decoded[field];
    let v = cache.get(term);
    if (!v) {
      // By hand: no array of strings to collect afterwards.
      v = [];
      let at = 0, gap = 0;
      for (let i = raw[0] === "=" ? 1 : 0; i <= raw.length; i++) {
        const c = i < raw.length ? raw.charCodeAt(i) : 44;
        if (c === 44) { at += gap; v.push(at); gap = 0; } // ","
        else gap = gap * 36 + (c <= 57 ? c - 48 : c - 87); // 0-9, a-z
      }
      cache.set(term, v);
    }
    return v;
  }

  // The terms of `field` in loaded part `i`, listed once.
  const keyLists = new Map();
  function termsIn(i, field) {
    const part = loadedParts[i];
    if (!part || !part[field]) return [];
    let keys = keyLists.get(i + field);
    if (!keys) keyLists.set(i + field, (keys = Object.keys(part[field])));
    return keys;
  }

  // Where a word's typo may start instead, swapped or with a first letter dropped.
  const typoStarts = (c) => [c[1] + c[0], c[0] + c[2], c[1] + c[2]];

  /** Which parts, of `parts`, the first stage of query `q` needs. */
  function partsFor(q, parts) {
    const keys = [];
    for (const w of words(q.text)) {
      const c = Array.from(w);
      keys.push(w);
      // Swapped or dropped first letters: a typo's other possible starts.
      if (c.length >= MIN_TYPO_LEN) keys.push(...typoStarts(c));
    }
    keys.push(...spelledNames(q).flat(), ...q.authors, ...q.tags);
    return [...new Set(keys.filter(Boolean).map((k) => partOf(k, parts)))];
  }

  // One query word's score at each of the listing's `size` positions (0:
  // no match), from the loaded parts: per position, as `wordScore` adds
  // them, the best hit plus a hundredth of the others, in tier order. A
  // prefix lies in the word's own part; a typo is looked for in the parts
  // `partsFor` loaded for the word.
  function wordScores(word, size) {
    const len = chars(word);
    const best = new Float64Array(size), sum = new Float64Array(size), seen = new Int32Array(size);
    const touched = [];
    let stamp = 0;
    const add = (p, w) => {
      if (!sum[p]) touched.push(p);
      sum[p] += w;
      if (w > best[p]) best[p] = w;
    };
    const own = partOf(word, partCount);
    const typoParts = len < MIN_TYPO_LEN ? [] : [...new Set([own, ...typoStarts(Array.from(word)).map((k) => partOf(k, partCount))])];
    for (const [name, exact, prefix, typo, indexedPrefix] of TIERS) {
      const field = PART_FIELD[name];
      const byPrefix = prefix !== null && len >= MIN_PREFIX && (!indexedPrefix || len <= MAX_PREFIX);
      const byTypo = len >= MIN_TYPO_LEN && !hasTerm(field, word);
      for (const p of positionsOf(field, word)) add(p, exact);
      // A position counts once per kind of hit, however many terms hit.
      for (const [on, weight, test, parts] of [[byPrefix, prefix, (t) => t.startsWith(word), [own]], [byTypo, typo, (t) => withinOne(t, word), typoParts]]) {
        if (!on) continue;
        stamp += 1;
        for (const i of parts) {
          const terms = loadedParts[i] && loadedParts[i][field];
          for (const t of termsIn(i, field)) {
            if (!test(t)) continue;
            for (const p of decode(field, t, terms[t])) if (seen[p] !== stamp) { seen[p] = stamp; add(p, weight); }
          }
        }
      }
    }
    // The positions hit, listed: a loop over the whole listing costs more
    // than the search, in code that runs once per page.
    return { touched, best, sum };
  }

  /**
   * The first stage of `q` (from `parse`) over a listing of `size` rows,
   * once `partsFor` are in: the matching positions with their scores
   * before the exact-name bonus, and the positions that may earn it
   * (`stageRank` decides, from their rows).
   */
  function firstStage(q, size) {
    const qwords = words(q.text);
    // Position → score, of the positions every word matched: the fewest
    // hits of a word are the candidates; the scores add in word order, as
    // `run` adds them.
    const hits = qwords.map((w) => wordScores(w, size));
    let scores = null;
    if (hits.length) {
      scores = new Map();
      const fewest = hits.reduce((a, b) => (b.touched.length < a.touched.length ? b : a));
      next: for (const p of fewest.touched) {
        let total = 0;
        for (const { best, sum } of hits) {
          if (!sum[p]) continue next;
          total += best[p] + TIE_BREAKER * (sum[p] - best[p]);
        }
        scores.set(p, total);
      }
    }
    const filters = [...q.authors.map((a) => positionsOf("u", a)), ...q.tags.map((t) => positionsOf("k", t))];
    if (!scores) scores = new Map((filters[0] || []).map((p) => [p, 0]));
    for (const f of filters) {
      const keep = new Set(f);
      for (const p of scores.keys()) if (!keep.has(p)) scores.delete(p);
    }
    // The bonus needs the name (or user and name) the query spells.
    const maybe = new Set();
    for (const [form, login] of spelledNames(q)) {
      const byLogin = login === undefined ? null : new Set(positionsOf("u", login));
      for (const p of positionsOf("x", form)) if (!byLogin || byLogin.has(p)) maybe.add(p);
    }
    return { scores, maybe: [...maybe].filter((p) => scores.has(p)) };
  }

  // The joined names a query may spell whole: [joined name] or, for
  // `user/name`, [joined name, user].
  function spelledNames(q) {
    const forms = [[joined(q.text)]];
    const slash = q.text.indexOf("/");
    if (slash > 0 && !/\s/.test(q.text)) forms.push([joined(q.text.slice(slash + 1)), q.text.slice(0, slash).replace(/^@/, "").toLowerCase()]);
    return forms.filter(([form]) => form);
  }

  const byScore = (a, b) => b[1] - a[1] || a[0] - b[0];

  // The best `limit` of `scores` (position → score) as [position, score],
  // best first, without sorting them all.
  function best(scores, limit) {
    const top = [];
    let worst = -Infinity, worstAt = -1;
    // forEach: no [key, value] array per entry.
    scores.forEach((v, p) => {
      if (top.length === limit && (v < worst || (v === worst && p > worstAt))) return;
      let i = top.length;
      top.push([p, v]);
      while (i > 0 && byScore(top[i - 1], top[i]) > 0) { [top[i - 1], top[i]] = [top[i], top[i - 1]]; i--; }
      if (top.length > limit) top.pop();
      if (top.length === limit) [worstAt, worst] = top[limit - 1];
    });
    return top;
  }

  /** The positions whose rows ranking `stage` (from `firstStage`) needs, to show the best `limit`. */
  function stageNeeds({ scores, maybe }, limit) {
    return [...new Set([...maybe, ...best(scores, limit).map((h) => h[0])])];
  }

  /**
   * The first stage's matches, best first, as `run` ranks them (the best
   * `limit` of them when given); `rowAt` gives the rows `stageNeeds` named.
   */
  function stageRank(q, { scores, maybe }, rowAt, limit = Infinity) {
    // The bonus only raises a score: the best `limit` lie among the
    // positions that may earn it and the best `limit` without it.
    const ranked = new Map(limit < scores.size ? [...maybe, ...best(scores, limit).map((h) => h[0])].map((p) => [p, scores.get(p)]) : scores);
    // Added one at a time, as `run` adds it.
    for (const p of maybe) for (let n = bonuses(q, rowAt(p)); n > 0; n--) ranked.set(p, ranked.get(p) + EXACT_NAME);
    return [...ranked].sort(byScore).slice(0, limit).map((h) => h[0]);
  }

  /** How many exact-name bonuses `run` gives listing row `row` for query `q`. */
  function bonuses(q, row) {
    const [user, name] = row;
    const exact = [name.toLowerCase(), (user + "/" + name).toLowerCase(), joined(name)].filter(Boolean);
    const forms = [joined(q.text)];
    if (!/\s/.test(q.text)) forms.push(q.text.toLowerCase());
    return [...new Set(forms.filter(Boolean))].filter((f) => exact.includes(f)).length;
  }

  return {
    add, parse, run, near, size: () => count, rowAt: (p) => docs[p] && docs[p].row,
    partOf, addPart, partsFor, firstStage, stageNeeds, stageRank,
  };
})();
