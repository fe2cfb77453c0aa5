// The registry's web page: search and listings, and a page per module.
// Data arrives as script files (so the page works from file:// as well as
// any static host) that call into `mlldRegistry`. Registry text is inserted
// as text, never HTML; the one exception is a module's documentation, which
// the indexer rendered from Markdown and sanitised at build time.
//
// Routes (in the fragment, so that links are shareable and work offline):
//   #/?q=QUERY        search (also author:NAME and tag:TAG listings)
//   #/recent          recently updated modules
//   #/advisories      modules with open advisories
//   #/USER/NAME       one module (@AUTHOR/NAME for a versioned one)
// A module page loads only its own data (and reads the module's text from
// its blob, and its dependents from their bucket). A search first loads the few search parts its words name and
// the listing rows it shows (the first stage, see search.js), then the
// whole listing for the final ranking; listings and the suggestions for an
// unknown module load the whole listing.
"use strict";

const mlldRegistry = (() => {
  // Listing rows by position: [user, name, description, tags[], advisory (0/1),
  // stale (0/1), latest version ("" for a gist module), updated (Unix
  // seconds, 0 unknown)]. Holes until every shard is in.
  const rows = [];
  let rowCount = 0;
  let site = null;
  let started = false;
  // Per listing shard and per search part: "requested", "loaded" or "failed".
  const shardState = [];
  const partState = [];
  let shardsLoaded = 0;
  // Callbacks waiting for shards or parts: each returns true once done.
  let waiters = [];
  // Whether a search part failed to load (then searches wait for the
  // whole listing).
  let stageBroken = false;
  // The query whose results from the whole listing are on screen.
  let finalQuery = null;
  // Listing shards in but not yet analysed for the final ranking
  // (`mlldSearch.add`, the costly part of a shard): while a first stage
  // waits for rows, that work waits until its results are shown.
  let unanalysed = [];
  let stagesWaiting = 0;
  let pendingModule = null;
  let unknownModule = null;
  const LIMIT = 50;
  const { $, el, plural, searchLink, tagLinks, dateFormat, when } = mlldPage;
  const load = (src, onerror, onload) => {
    const s = document.createElement("script");
    s.src = src;
    s.onerror = onerror || (() => { $("status").textContent = "Could not load " + src + "."; });
    if (onload) s.onload = onload;
    document.body.append(s);
  };
  const safePath = (s) => /^[A-Za-z0-9._-]+$/.test(s);
  const allLoaded = () => site && shardsLoaded === site.shards.length;
  function analyse() {
    const todo = unanalysed;
    unanalysed = [];
    for (const [list, at] of todo) mlldSearch.add(list, at);
  }

  function loadShard(i) {
    if (shardState[i] || !site) return;
    shardState[i] = "requested";
    load(site.shards[i], () => { shardState[i] = "failed"; $("status").textContent = "Could not load " + site.shards[i] + "."; notify(); });
  }
  function loadShards() {
    if (site) site.shards.forEach((_, i) => loadShard(i));
  }
  function loadPart(i) {
    if (partState[i]) return;
    partState[i] = "requested";
    load(site.search[i], () => { partState[i] = "failed"; stageBroken = true; notify(); });
  }
  const settled = (state) => state === "loaded" || state === "failed";
  function whenReady(ready, then) {
    if (ready()) then(); else waiters.push(() => ready() && (then(), true));
  }
  function notify() {
    const waiting = waiters;
    waiters = [];
    for (const w of waiting) if (!w()) waiters.push(w);
  }

  // ---- search and listings ----

  function show(view) {
    for (const id of ["search-view", "module-view"]) $(id).hidden = id !== view;
  }

  function summaryText() {
    const versioned = rows.filter((r) => r[6]).length;
    const of = site ? " of " + site.count : "";
    const more = site && site.versioned ? ", " + versioned + " of " + site.versioned + " versioned modules" : "";
    return (rowCount - versioned) + of + " modules" + more;
  }

  function renderList(title, list, note, total = list.length) {
    $("list-title").textContent = title;
    $("list-title").hidden = !title;
    const results = $("results");
    results.replaceChildren(...list.slice(0, LIMIT).map(row));
    // For `cargo xtask bench page`: when results were last shown.
    if (list.length) performance.mark("mlld:results");
    const loading = allLoaded() ? "" : " (loading the listing…)";
    $("summary").textContent = note + (total > LIMIT ? " (showing " + LIMIT + ")" : "") + loading;
  }

  function titleOf(parsed) {
    if (!parsed.text && parsed.authors.length === 1 && !parsed.tags.length) return "Modules by " + parsed.authors[0];
    if (!parsed.text && parsed.tags.length === 1 && !parsed.authors.length) return "Modules tagged " + parsed.tags[0];
    return "";
  }

  function search(q) {
    const query = q.trim();
    // The home page: what changed lately.
    if (!query) { loadShards(); renderList("Recently updated", recentRows(), summaryText()); return; }
    const parsed = mlldSearch.parse(query);
    if (parsed.error !== undefined) { loadShards(); renderList("", [], parsed.error || summaryText()); return; }
    if (!allLoaded() && site && site.search && !stageBroken) { firstStage(query, parsed); return; }
    loadShards();
    analyse();
    const hits = mlldSearch.run(parsed);
    if (allLoaded()) finalQuery = query;
    let note = plural(hits.length, "module matches", "modules match");
    if (!hits.length && allLoaded()) {
      const near = mlldSearch.near(parsed.text || query, 5);
      if (near.length) note += ". Did you mean " + near.join(", ") + "?";
    }
    renderList(titleOf(parsed), hits, note);
  }

  // The first stage: the search parts the query names rank every match;
  // only the rows shown are loaded. Then the whole listing.
  function firstStage(query, parsed) {
    // Until the whole listing's results for this query are shown.
    const current = () => { const r = parseHash(); return finalQuery !== query && r.view === "search" && r.q.trim() === query; };
    const parts = mlldSearch.partsFor(parsed, site.search.length);
    parts.forEach(loadPart);
    whenReady(() => parts.every((i) => settled(partState[i])), () => {
      if (!current()) return;
      if (stageBroken) { search(query); return; }
      // For `cargo xtask bench page --trace`: where a first stage's time goes.
      performance.mark("mlld:parts");
      const stage = mlldSearch.firstStage(parsed, site.count + site.versioned);
      const need = mlldSearch.stageNeeds(stage, LIMIT);
      const shards = [...new Set(need.map((p) => Math.floor(p / site.rowsPerShard)))];
      performance.mark("mlld:stage");
      shards.forEach(loadShard);
      stagesWaiting += 1;
      whenReady(() => shards.every((i) => settled(shardState[i])), () => {
        stagesWaiting -= 1;
        // After this task, so that the results are painted first.
        setTimeout(analyse, 0);
        if (!current()) return;
        performance.mark("mlld:rows");
        if (need.some((p) => !rows[p])) { loadShards(); return; }
        const top = mlldSearch.stageRank(parsed, stage, (p) => rows[p], LIMIT).map((p) => rows[p]);
        const total = stage.scores.size;
        renderList(titleOf(parsed), top, plural(total, "module matches", "modules match"), total);
        loadShards();
      });
    });
  }

  const recentRows = () => rows.filter((r) => r[7]).sort((a, b) => b[7] - a[7]);

  function recent() {
    const list = recentRows();
    renderList("Recently updated", list, plural(list.length, "module", "modules") + " with a known update time");
  }

  function advisoryList() {
    const list = rows.filter((r) => r[4]);
    renderList("Modules with open advisories", list, plural(list.length, "module has", "modules have") + " an open advisory");
  }

  function row([user, name, desc, tags, advisory, stale, latest, updated]) {
    const link = el("a", { class: "name", href: "#/" + user + "/" + name, text: user + "/" + name });
    const head = el("div", { class: "head" }, link);
    if (latest) head.append(el("span", { class: "version", text: latest }));
    if (advisory) head.append(el("span", { class: "badge advisory", title: "has a security advisory", text: "advisory" }));
    if (stale) head.append(el("span", { class: "badge stale", title: "could not be refreshed in the last build", text: "stale" }));
    if (updated) head.append(el("span", { class: "muted updated" }, "updated ", when(new Date(updated * 1000).toISOString())));
    const li = el("li", {}, head, el("p", { class: "desc", text: desc }));
    if (tags.length) li.append(tagLinks(tags));
    return li;
  }

  // ---- routing ----

  function parseHash() {
    const hash = location.hash.replace(/^#/, "");
    const at = hash.indexOf("?");
    const path = at < 0 ? hash : hash.slice(0, at);
    const params = new URLSearchParams(at < 0 ? "" : hash.slice(at + 1));
    let parts;
    try { parts = path.split("/").filter(Boolean).map(decodeURIComponent); } catch { parts = []; }
    if (parts.length === 2) return { view: "module", user: parts[0], name: parts[1] };
    if (parts.length === 1 && (parts[0] === "recent" || parts[0] === "advisories")) return { view: parts[0] };
    return { view: "search", q: params.get("q") || "" };
  }

  function route() {
    const r = parseHash();
    if (r.view === "module") { openModule(r.user, r.name); return; }
    show("search-view");
    $("back").setAttribute("href", location.hash || "#/");
    document.title = "mlld module registry";
    for (const a of document.querySelectorAll("#nav a")) a.removeAttribute("aria-current");
    if (r.view === "search") {
      if ($("q").value !== r.q) $("q").value = r.q;
      if (r.q) document.title = r.q + " · mlld module registry";
      search(r.q);
    } else {
      const link = document.querySelector('#nav a[href="#/' + r.view + '"]');
      if (link) link.setAttribute("aria-current", "page");
      loadShards();
      if (r.view === "recent") recent(); else advisoryList();
    }
  }

  // The query lives in the URL. Typing replaces the entry (one history
  // entry per search, not per key); starting a search from elsewhere adds one.
  function queryChanged() {
    const q = $("q").value;
    const target = q.trim() ? "#/?q=" + encodeURIComponent(q) : "#/";
    if (location.hash === target) return;
    const current = parseHash();
    if (current.view === "search" && current.q) location.replace(target); else location.hash = target;
  }

  // ---- keyboard ----

  function resultLinks() { return [...document.querySelectorAll("#results li .name")]; }

  function onKey(e) {
    const inField = e.target instanceof HTMLElement && (e.target.matches("input, textarea, select") || e.target.isContentEditable);
    if (e.key === "/" && !inField && !e.ctrlKey && !e.metaKey && !e.altKey) {
      e.preventDefault();
      if ($("search-view").hidden) { location.hash = "#/"; show("search-view"); }
      $("q").focus();
      $("q").select();
      return;
    }
    const links = resultLinks();
    const at = links.indexOf(document.activeElement);
    if (e.target === $("q")) {
      if (e.key === "ArrowDown" && links.length) { e.preventDefault(); links[0].focus(); }
      else if (e.key === "Enter" && links.length) { e.preventDefault(); links[0].click(); }
      return;
    }
    if (at < 0) return;
    if (e.key === "ArrowDown" && at + 1 < links.length) { e.preventDefault(); links[at + 1].focus(); }
    else if (e.key === "ArrowUp") { e.preventDefault(); (at === 0 ? $("q") : links[at - 1]).focus(); }
    else if (e.key === "Escape") $("q").focus();
  }

  // ---- one module ----

  // Who depends on a gist module: a file of names by a hash of the name
  // (`data/dependents/<bits>/<bucket>.js`), asked for beside the module's
  // page data. By bucket: "requested", "failed", or name → dependents.
  const dependentsBuckets = new Map();
  const hasBuckets = () => site && Number.isInteger(site.dependentsBits);
  const bucketOf = (full) => mlldPage.bucketOf(full, site.dependentsBits);
  function loadDependents(full) {
    if (!hasBuckets()) return;
    const b = bucketOf(full);
    const state = dependentsBuckets.get(b);
    // A bucket that failed is asked for again when a module of it opens.
    if (state !== undefined && state !== "failed") return;
    dependentsBuckets.set(b, "requested");
    const failed = () => { dependentsBuckets.set(b, "failed"); showDependents(); };
    // A script that ran without calling `dependents` (not a bucket) failed too.
    load("data/dependents/" + site.dependentsBits + "/" + b + ".js", failed, () => { if (dependentsBuckets.get(b) === "requested") failed(); });
  }
  /** The names depending on `full`: an array, `null` while loading, or "failed". */
  function dependentsOf(full) {
    if (!hasBuckets()) return "failed";
    const got = dependentsBuckets.get(bucketOf(full));
    if (got === undefined || got === "requested") return null;
    if (got === "failed") return got;
    const names = Object.prototype.hasOwnProperty.call(got, full) ? got[full] : [];
    return Array.isArray(names) ? names : "failed";
  }
  function showDependents() {
    const box = $("dependents");
    if (box) box.replaceChildren(...mlldModulePage.dependentsParts(dependentsOf(box.dataset.module)));
  }

  function openModule(user, name) {
    show("module-view");
    const full = user + "/" + name;
    if (!safePath(user.replace(/^@/, "")) || !safePath(name)) { unknown(full); return; }
    pendingModule = full;
    unknownModule = null;
    $("module").replaceChildren(el("p", { class: "muted", text: "Loading " + full + "…" }));
    document.title = full + " · mlld module registry";
    load("modules/" + user + "/" + name + ".js", () => { if (pendingModule === full) unknown(full); });
    if (!user.startsWith("@")) loadDependents(full);
  }

  // "No module named …", with near names once the listing is in.
  function unknown(full) {
    unknownModule = full;
    pendingModule = null;
    const parts = [el("h2", { text: "No module named " + full }), el("p", { text: "Nothing in this registry has that name." })];
    if (!site || !allLoaded()) {
      loadShards();
      parts.push(el("p", { class: "muted", id: "near", text: site ? "Looking for similar names…" : "" }));
    } else {
      analyse();
      const near = mlldSearch.near(full, 5);
      parts.push(near.length
        ? el("div", { id: "near" }, el("p", { text: "Similar names:" }), el("ul", {}, ...near.map((n) => el("li", {}, el("a", { href: "#/" + n, text: n })))))
        : el("p", { id: "near", text: "No similar names." }));
    }
    parts.push(el("p", {}, searchLink(full.split("/").pop(), "Search for " + full.split("/").pop())));
    $("module").replaceChildren(...parts);
    document.title = "No module named " + full + " · mlld module registry";
  }

  function renderModule(d) {
    if (d.user + "/" + d.name !== pendingModule) return;
    pendingModule = null;
    const parts = mlldModulePage.parts(d, d.versioned ? null : dependentsOf(d.user + "/" + d.name));
    $("module").replaceChildren(...parts);
    document.title = d.user + "/" + d.name + " · mlld module registry";
  }

  let refreshTimer = null;
  function refresh() {
    // A search shows its first stage until the whole listing is in.
    const r = parseHash();
    if (!allLoaded() && r.view === "search" && r.q.trim() && site.search && !stageBroken) return;
    if (!$("search-view").hidden) route();
    else if (unknownModule && allLoaded()) unknown(unknownModule);
  }

  return {
    site(s) {
      site = s;
      performance.mark("mlld:site");
      $("status").textContent = "Snapshot " + s.serial + ", built " + dateFormat.format(new Date(s.created)) + ": " + s.count + " modules" + (s.versioned ? ", " + s.versioned + " versioned modules." : ".");
      // The page's scripts come before this one: start now, not at DOMContentLoaded.
      if (!started) mlldRegistry.start();
      else if (unknownModule) loadShards();
    },
    shard(i, list) {
      if (shardState[i] === "loaded" || !site) return;
      const at = i * site.rowsPerShard;
      list.forEach((r, j) => { rows[at + j] = r; });
      rowCount += list.length;
      shardState[i] = "loaded";
      shardsLoaded += 1;
      // A first stage waiting for these rows shows them before the rows
      // are analysed for the final ranking (which takes longer).
      notify();
      unanalysed.push([list, at]);
      if (!stagesWaiting) analyse();
      // Results show as soon as the first shard is in; the rest refresh
      // them every so often, and once more when the listing is complete.
      clearTimeout(refreshTimer);
      if (shardsLoaded === 1 || allLoaded()) refresh();
      else refreshTimer = setTimeout(refresh, 150);
    },
    searchPart(i, fields) {
      if (partState[i] === "loaded") return;
      mlldSearch.addPart(i, fields, site.search.length);
      partState[i] = "loaded";
      notify();
    },
    module: renderModule,
    dependents(bucket, names) {
      dependentsBuckets.set(bucket, names && typeof names === "object" ? names : "failed");
      showDependents();
    },
    start() {
      if (started) return;
      started = true;
      let timer = null;
      $("q").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(queryChanged, 60); });
      document.addEventListener("keydown", onKey);
      window.addEventListener("hashchange", route);
      route();
    },
  };
})();

document.addEventListener("DOMContentLoaded", () => mlldRegistry.start());
