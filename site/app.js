// The registry's web page: search across all users as you type, and a page
// per module. Data arrives as script files (so the page works from file://
// as well as any static host) that call into `mlldRegistry`. Everything
// that comes from registry files or gists is inserted as text, never HTML.
"use strict";

const mlldRegistry = (() => {
  // [user, name, description, tags[], advisory (0/1), stale (0/1), latest version?]
  // Versioned modules have user "@author" and their latest version last.
  const modules = [];
  let site = null;
  let shardsLoaded = 0;
  let pendingModule = null;

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c); // strings become text nodes
    return node;
  };
  const load = (src) => {
    const s = document.createElement("script");
    s.src = src;
    s.onerror = () => { $("status").textContent = "Could not load " + src + "."; };
    document.body.append(s);
  };
  const safePath = (s) => /^[A-Za-z0-9._-]+$/.test(s);

  // Ranking: exact name, name prefix, name substring, tag, author, description.
  function score(m, terms, filters) {
    const [user, name, desc, tags] = m;
    if (filters.author && user.toLowerCase().replace(/^@/, "") !== filters.author.replace(/^@/, "")) return 0;
    if (filters.tag && !tags.some((t) => t.toLowerCase() === filters.tag)) return 0;
    let total = 0;
    const lname = name.toLowerCase(), full = (user + "/" + name).toLowerCase();
    const squash = (s) => s.replace(/[-_. ]/g, "");
    for (const t of terms) {
      let s = 0;
      if (lname === t || full === t) s = 100;
      else if (squash(lname) === squash(t)) s = 90;
      else if (lname.startsWith(t)) s = 60;
      else if (lname.includes(t) || squash(lname).includes(squash(t))) s = 40;
      else if (tags.some((g) => g.toLowerCase() === t)) s = 30;
      else if (user.toLowerCase().includes(t)) s = 20;
      else if (desc.toLowerCase().includes(t)) s = 10;
      if (!s) return 0;
      total += s;
    }
    return total || 1;
  }

  function parseQuery(q) {
    const filters = {}, terms = [];
    for (const word of q.toLowerCase().split(/\s+/).filter(Boolean)) {
      const m = /^(author|tag):(.+)$/.exec(word);
      if (m) filters[m[1]] = m[2]; else terms.push(word);
    }
    return { terms, filters };
  }

  function search() {
    const q = $("q").value.trim();
    const { terms, filters } = parseQuery(q);
    const hits = [];
    for (const m of modules) {
      const s = score(m, terms, filters);
      if (s) hits.push([s, m]);
    }
    // Ties: by full name, `@` aside, a Phase-1 module before its versioned namesake.
    const key = (m) => m[0].replace(/^@/, "") + "/" + m[1];
    const isVersioned = (m) => (m[6] === undefined ? 0 : 1);
    hits.sort((a, b) => b[0] - a[0] || key(a[1]).localeCompare(key(b[1])) || isVersioned(a[1]) - isVersioned(b[1]));
    const list = $("results");
    list.replaceChildren(...hits.slice(0, 50).map(([, m]) => row(m)));
    const versioned = modules.filter((m) => m[6] !== undefined).length;
    const of = site ? " of " + site.count : "";
    const more = versioned || (site && site.versioned) ? ", " + versioned + (site ? " of " + (site.versioned || 0) : "") + " versioned modules" : "";
    $("summary").textContent = q ? hits.length + " modules match" + (hits.length > 50 ? " (showing 50)" : "") : (modules.length - versioned) + of + " modules" + more;
  }

  function row([user, name, desc, tags, advisory, stale, latest]) {
    const link = el("a", { class: "name", href: "#/" + user + "/" + name, text: user + "/" + name });
    const head = el("div", {}, link);
    if (latest) head.append(el("span", { class: "version", text: latest }));
    if (advisory) head.append(el("span", { class: "badge advisory", title: "has a security advisory", text: "advisory" }));
    if (stale) head.append(el("span", { class: "badge stale", title: "could not be refreshed in the last build", text: "stale" }));
    const li = el("li", {}, head, el("p", { class: "desc", text: desc }));
    if (tags.length) li.append(el("div", {}, ...tags.map((t) => el("span", { class: "tag", text: t }))));
    return li;
  }

  function route() {
    const m = /^#\/([^/]+)\/([^/]+)$/.exec(location.hash);
    $("search-view").hidden = !!m;
    $("module-view").hidden = !m;
    if (!m) { search(); return; }
    const [user, name] = [decodeURIComponent(m[1]), decodeURIComponent(m[2])];
    if (!safePath(user.replace(/^@/, "")) || !safePath(name)) { $("module").replaceChildren(el("p", { text: "No such module." })); return; }
    pendingModule = user + "/" + name;
    $("module").replaceChildren(el("p", { class: "muted", text: "Loading " + pendingModule + "…" }));
    load("modules/" + user + "/" + name + ".js");
  }

  function copy(text, button) {
    const done = () => { button.textContent = "Copied"; setTimeout(() => { button.textContent = "Copy"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text) && done());
    } else if (fallbackCopy(text)) done();
  }
  function fallbackCopy(text) {
    const area = el("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok;
  }

  function renderModule(d) {
    if (d.user + "/" + d.name !== pendingModule) return;
    if (d.versioned) { renderVersioned(d); return; }
    const title = el("h2", {}, el("span", { class: "name", text: d.user + "/" + d.name }));
    if (d.advisories.length) title.append(el("span", { class: "badge advisory", text: d.advisories.length + (d.advisories.length > 1 ? " advisories" : " advisory") }));
    if (d.stale) title.append(el("span", { class: "badge stale", title: d.stale, text: "stale" }));
    const parts = [title, el("p", { class: "desc", text: d.description })];
    if (d.tags.length) parts.push(el("div", {}, ...d.tags.map((t) => el("span", { class: "tag", text: t }))));
    const button = el("button", { type: "button", id: "copy-import", text: "Copy" });
    button.addEventListener("click", () => copy(d.importLine, button));
    parts.push(el("div", { class: "import" }, el("code", { id: "import-line", text: d.importLine }), button));
    if (d.advisories.length) {
      const box = el("section", { class: "advisories", id: "advisories" }, el("h2", { text: "Security advisories" }));
      for (const a of d.advisories) {
        box.append(el("p", {}, el("strong", { text: a.id + " [" + a.severity + "] " + a.type + ": " }), a.description));
        if (a.recommendation) box.append(el("p", { class: "muted", text: "Recommendation: " + a.recommendation }));
      }
      parts.push(box);
    }
    const meta = el("dl", { class: "meta" });
    const add = (k, v) => { if (v !== undefined && v !== null && v !== "") meta.append(el("dt", { text: k }), el("dd", { text: String(v) })); };
    add("author", d.user); add("gist", d.gist); add("revision", d.revision); add("file", d.file);
    add("size", d.size + " bytes"); add("integrity", d.integrity); add("registered", d.created); add("updated", d.updated);
    parts.push(meta);
    const links = (title, names) => {
      parts.push(el("h3", { text: title + " (" + names.length + ")" }));
      parts.push(names.length ? el("ul", {}, ...names.map((n) => el("li", {}, el("a", { href: "#/" + n, text: n })))) : el("p", { class: "muted", text: "none" }));
    };
    links("Dependencies", d.dependencies);
    links("Dependents", d.dependents);
    parts.push(el("h3", { text: "Revisions" }));
    const table = el("table", {}, el("tr", {}, el("th", { text: "revision" }), el("th", { text: "committed" }), el("th", { text: "size" })));
    for (const r of d.revisions) table.append(el("tr", {}, el("td", {}, el("code", { text: r.revision })), el("td", { text: r.committedAt || "" }), el("td", { text: String(r.size) })));
    parts.push(table);
    parts.push(el("h3", { text: "Content" }), el("pre", { id: "content", text: d.content }));
    if (d.contentTruncated) parts.push(el("p", { class: "muted", text: "Content shortened for display; the full file is in the snapshot." }));
    $("module").replaceChildren(...parts);
    document.title = d.user + "/" + d.name + " · mlld module registry";
  }

  // A versioned module (`@author/name`): dist-tags, versions, source, files.
  function renderVersioned(d) {
    const full = d.user + "/" + d.name;
    const title = el("h2", {}, el("span", { class: "name", text: full }), el("span", { class: "version", text: d.latest }));
    if (d.advisories.length) title.append(el("span", { class: "badge advisory", text: d.advisories.length + (d.advisories.length > 1 ? " advisories" : " advisory") }));
    const parts = [title, el("p", { class: "desc", text: d.about })];
    if (d.keywords.length) parts.push(el("div", {}, ...d.keywords.map((t) => el("span", { class: "tag", text: t }))));
    const button = el("button", { type: "button", id: "copy-import", text: "Copy" });
    button.addEventListener("click", () => copy(d.importLine, button));
    parts.push(el("div", { class: "import" }, el("code", { id: "import-line", text: d.importLine }), button));
    if (d.advisories.length) {
      const box = el("section", { class: "advisories", id: "advisories" }, el("h2", { text: "Security advisories" }));
      for (const a of d.advisories) {
        box.append(el("p", {}, el("strong", { text: a.id + " [" + a.severity + "] " + a.type + ": " }), a.description));
        if (a.recommendation) box.append(el("p", { class: "muted", text: "Recommendation: " + a.recommendation }));
      }
      parts.push(box);
    }
    const meta = el("dl", { class: "meta" });
    const add = (k, v) => { if (v !== undefined && v !== null && v !== "") meta.append(el("dt", { text: k }), el("dd", { text: String(v) })); };
    add("author", d.user.slice(1)); add("owners", d.owners.join(", ")); add("maintainers", d.maintainers.join(", "));
    add("registered", d.created); add("entry", d.entry); add("integrity", d.integrity); add("contentHash", d.contentHash);
    const s = d.source;
    add("source", s.type + " " + (s.repository || s.url)); add("commit", s.commit); add("path", s.path);
    parts.push(meta);
    parts.push(el("h3", { text: "Dist-tags" }));
    const tags = Object.entries(d.distTags);
    parts.push(tags.length ? el("ul", { id: "dist-tags" }, ...tags.map(([t, v]) => el("li", {}, el("code", { text: t }), " → " + v))) : el("p", { class: "muted", id: "dist-tags", text: "none (latest is the highest version)" }));
    parts.push(el("h3", { text: "Versions (" + d.versions.length + ")" }));
    const head = el("tr", {}, ...["version", "published", "needs", "mlld", "license"].map((h) => el("th", { text: h })));
    const table = el("table", { id: "versions" }, head);
    for (const v of d.versions) {
      table.append(el("tr", {}, el("td", {}, el("code", { text: v.version })), el("td", { text: v.publishedAt || "" }),
        el("td", { text: v.needs.join(", ") }), el("td", { text: v.mlldVersion || "" }), el("td", { text: v.license || "" })));
    }
    parts.push(table);
    parts.push(el("h3", { text: "Dependencies (" + d.dependencies.length + ")" }));
    // A dependency is `@author/name` with an optional `@range`; link the module.
    const depLink = (dep) => { const m = /^(@[^/@]+\/[^/@]+)/.exec(dep); return m ? el("a", { href: "#/" + m[1], text: dep }) : dep; };
    parts.push(d.dependencies.length ? el("ul", { id: "dependencies" }, ...d.dependencies.map((n) => el("li", {}, depLink(n)))) : el("p", { class: "muted", text: "none" }));
    parts.push(el("h3", { text: "Files of " + d.latest + " (" + d.files.length + ")" }));
    const files = el("table", { id: "files" }, el("tr", {}, el("th", { text: "path" }), el("th", { text: "size" }), el("th", { text: "sha256" })));
    for (const f of d.files) files.append(el("tr", {}, el("td", {}, el("code", { text: f.path })), el("td", { text: String(f.size) }), el("td", {}, el("code", { text: f.sha256 }))));
    parts.push(files);
    parts.push(el("h3", { text: "Content of " + d.entry }), el("pre", { id: "content", text: d.content }));
    if (d.contentTruncated) parts.push(el("p", { class: "muted", text: "Content shortened for display; the full file is in the snapshot." }));
    $("module").replaceChildren(...parts);
    document.title = full + " · mlld module registry";
  }

  return {
    site(s) {
      site = s;
      $("status").textContent = "Snapshot " + s.serial + ", built " + s.created + ": " + s.count + " modules" + (s.versioned ? ", " + s.versioned + " versioned modules." : ".");
      s.shards.forEach(load);
    },
    shard(rows) {
      for (const r of rows) modules.push(r);
      shardsLoaded += 1;
      if (!$("search-view").hidden) search();
    },
    module: renderModule,
    start() {
      let timer = null;
      $("q").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(search, 40); });
      window.addEventListener("hashchange", route);
      route();
    },
  };
})();

document.addEventListener("DOMContentLoaded", () => mlldRegistry.start());
