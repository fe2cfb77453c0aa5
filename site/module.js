// One module's page (`#/USER/NAME`, `#/@AUTHOR/NAME`), from the data the
// indexer wrote to `modules/…js` and what follows from it (`derive`):
// header, import line, source, advisories, what `info` shows, documentation
// (rendered and sanitised at build time, stripped again here) and the
// module's text, read from its loose blob.
"use strict";

const mlldModulePage = (() => {
  const { $, el, plural, searchLink, tagLinks, when } = mlldPage;
  // A module's text: a loose blob, shown up to MAX_CONTENT characters.
  const BLOB = /^blobs\/sha256\/[0-9a-f]{2}\/[0-9a-f]{62}$/;
  const MAX_CONTENT = 64 * 1024;

  // ---- what the page works out from the page data ----
  // The indexer does not store what follows from other fields: the import
  // line, the source link, where the module's text is, the current
  // revision's row. This is the one place that derives them.

  /** `json-utils` → `jsonUtils`: a module name as an mlld variable name. */
  function namespace(name) {
    const words = name.split(/[^A-Za-z0-9]/).filter(Boolean);
    let out = words.map((w, i) => (i ? w[0].toUpperCase() : w[0].toLowerCase()) + w.slice(1)).join("");
    if (!out || /^[0-9]/.test(out)) out = "m" + out;
    return out;
  }

  /** The range an import pins for `version`: `^version`, or a pre-release exactly. */
  const pinRange = (version) => (version.includes("-") ? version : "^" + version);

  /**
   * The import line that runs in today's mlld for `full` (`user/name` or
   * `@author/name`): its exported names, or the module under a namespace
   * when it names none; pinned with `@range` when given.
   */
  function importLine(full, exports, range) {
    const bare = full.replace(/^@+/, "");
    const pin = range ? "@" + range : "";
    if (!exports.length) return "/import @" + bare + pin + " as @" + namespace(bare.split("/").pop());
    return "/import { " + exports.join(", ") + " } from @" + bare + pin;
  }

  const gistUrl = (user, gist, revision) => "https://gist.github.com/" + user + "/" + gist + "/" + revision;

  /**
   * A versioned module's source at its pinned commit as an `https` URL (the
   * repository's tree or blob, or the gist revision), or null.
   */
  function sourceUrl(s, author) {
    let url;
    if (s.type === "gist") url = gistUrl(author, s.url, s.commit);
    else {
      if (!s.repository) return null;
      const repo = s.repository.replace(/(?:\.git)+$/, "").replace(/\/+$/, "");
      const path = s.path.replace(/^\/+|\/+$/g, "");
      url = path ? repo + "/" + (s.type === "directory" ? "tree" : "blob") + "/" + s.commit + "/" + path : repo + "/tree/" + s.commit;
    }
    return url.startsWith("https://") && !/[\s\p{Cc}"]/u.test(url) ? url : null;
  }

  const isMarkdown = (file) => /\.(md|markdown)$/i.test(file);

  /** The loose blob holding `file` with `integrity`, unless the page shows it rendered. */
  function contentBlob(file, integrity) {
    const hex = String(integrity).replace(/^sha256:/, "");
    return isMarkdown(file) ? null : "blobs/sha256/" + hex.slice(0, 2) + "/" + hex.slice(2);
  }

  /** Module data `d` with what the page derives from it. */
  function derive(d) {
    if (d.versioned) {
      return { ...d, importLine: importLine(d.user + "/" + d.name, d.exports, pinRange(d.latest)), sourceUrl: sourceUrl(d.source, d.user.slice(1)), contentBlob: contentBlob(d.entry, d.integrity) };
    }
    return {
      ...d,
      importLine: importLine(d.user + "/" + d.name, d.exports),
      sourceUrl: gistUrl(d.user, d.gist, d.revision),
      contentBlob: contentBlob(d.file, d.integrity),
      revisions: [{ revision: d.revision, committedAt: d.committedAt, size: d.size }, ...(d.history || [])],
    };
  }

  function copy(text, button) {
    const done = () => { button.textContent = "Copied"; setTimeout(() => { button.textContent = "Copy"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text) && done());
    } else if (fallbackCopy(text)) done();
  }
  function fallbackCopy(text) {
    const area = el("textarea", { "aria-hidden": "true" });
    area.value = text;
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok;
  }

  // The build sanitised `html`; this strips anything active again in case
  // a page file was tampered with on the way.
  function docSection(title, html) {
    const tpl = document.createElement("template");
    tpl.innerHTML = html;
    for (const n of tpl.content.querySelectorAll("script, style, iframe, object, embed, img, form, link, meta")) n.remove();
    for (const n of tpl.content.querySelectorAll("*")) {
      for (const a of [...n.attributes]) {
        const bad = a.name.startsWith("on") || a.name === "style" || ((a.name === "href" || a.name === "src") && !/^(https?:|mailto:)/i.test(a.value));
        if (bad) n.removeAttribute(a.name);
      }
      if (n.tagName === "A") n.setAttribute("rel", "nofollow noopener");
    }
    const body = el("div", { class: "doc", id: "doc" });
    body.append(tpl.content);
    return el("section", { "aria-label": title }, el("h3", { text: title }), body);
  }

  function header(d, full, version) {
    const title = el("h2", {}, el("span", { class: "name", text: full }));
    if (version) title.append(el("span", { class: "version", text: version }));
    if (d.advisories.length) {
      const badge = el("button", { type: "button", class: "badge advisory", text: plural(d.advisories.length, "advisory", "advisories") });
      badge.addEventListener("click", () => $("advisories").scrollIntoView());
      title.append(badge);
    }
    if (d.stale) title.append(el("span", { class: "badge stale", title: d.stale, text: "stale" }));
    return title;
  }

  function importBox(d) {
    const button = el("button", { type: "button", id: "copy-import", text: "Copy", "aria-label": "Copy the import line" });
    button.addEventListener("click", () => copy(d.importLine, button));
    return el("div", { class: "import" }, el("code", { id: "import-line", text: d.importLine }), button);
  }

  function advisoryBox(advisories) {
    const box = el("section", { class: "advisories", id: "advisories" }, el("h3", { text: "Security advisories" }));
    for (const a of advisories) {
      const p = el("p", { id: "advisory-" + a.user + "-" + a.id }, el("strong", { text: a.id + " [" + a.severity + "] " + a.type + ": " }), a.description);
      box.append(p);
      const meta = el("p", { class: "muted" }, "Published ", when(a.created));
      if (a.patched) meta.append(", patched in " + a.patched);
      box.append(meta);
      if (a.recommendation) box.append(el("p", { class: "muted", text: "Recommendation: " + a.recommendation }));
    }
    return box;
  }

  // Badges linking each affected version or revision to its advisories.
  function advisoryCell(advisories) {
    const cell = el("td", { class: "adv" });
    for (const a of advisories) cell.append(el("span", { class: "badge advisory", title: a.severity + " " + a.type + ": " + a.description, text: a.id }));
    return cell;
  }

  function table(id, head, body) {
    const t = el("table", { id }, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col", text: h })))), el("tbody", {}, ...body));
    return el("div", { class: "table-wrap" }, t);
  }

  function meta(items) {
    const dl = el("dl", { class: "meta" });
    for (const [k, v] of items) {
      if (v === undefined || v === null || v === "") continue;
      dl.append(el("dt", { text: k }), el("dd", {}, v));
    }
    return dl;
  }

  function moduleLinks(title, names) {
    return [
      el("h3", { text: title + " (" + names.length + ")" }),
      names.length ? el("ul", {}, ...names.map((n) => {
        const m = /^(@?[^/@]+\/[^/@]+)/.exec(n);
        return el("li", {}, m ? el("a", { href: "#/" + m[1], text: n }) : n);
      })) : el("p", { class: "muted", text: "none" }),
    ];
  }

  function contentParts(d, file) {
    const parts = [];
    if (d.doc) parts.push(docSection(d.docFile === file ? "Documentation (" + file + ")" : d.docFile, d.doc));
    if (d.contentBlob && BLOB.test(d.contentBlob)) {
      const box = el("div", { id: "content-box" }, el("p", { class: "muted", text: "Loading " + file + "…" }));
      parts.push(el("h3", { text: "Content of " + file }), box);
      showContent(d.contentBlob, file, box);
    }
    return parts;
  }

  // The module's text is the site's loose blob, not a copy in the page
  // data. Over HTTP it is read and shown as text; a page opened from a
  // file may not read other files, so there it shows in a sandboxed frame
  // (no scripts, its own origin) with a link to the file.
  function showContent(path, file, box) {
    // Until it is shown the box is not in the page; once another page
    // replaced it, a late answer is dropped.
    let placed = false;
    const shown = (parts) => { if (!placed || box.isConnected) box.replaceChildren(...parts); };
    const framed = () => shown([
      el("iframe", { id: "content-frame", sandbox: "", src: path, title: "Content of " + file }),
      el("p", { class: "muted" }, el("a", { href: path, text: "Open " + file })),
    ]);
    if (location.protocol === "file:") { framed(); return; }
    fetch(path).then((r) => (r.ok ? r.text() : Promise.reject(new Error(r.status)))).then((text) => {
      const chars = Array.from(text);
      const parts = [el("pre", { id: "content", tabindex: "0" }, el("code", { text: chars.length > MAX_CONTENT ? chars.slice(0, MAX_CONTENT).join("") : text }))];
      if (chars.length > MAX_CONTENT) parts.push(el("p", { class: "muted", text: "Shortened for display; the full file is in the snapshot." }));
      shown(parts);
    }, framed);
    placed = true;
  }


  /**
   * The dependents' heading and list: `names` an array, `null` while the
   * file holding them loads, `"failed"` when it could not be loaded.
   */
  function dependentsParts(names) {
    if (Array.isArray(names)) return moduleLinks("Dependents", names);
    return [el("h3", { text: "Dependents" }), el("p", { class: "muted", text: names === null ? "Loading…" : "Could not load the dependents." })];
  }

  function gistParts(d, dependents) {
    const full = d.user + "/" + d.name;
    const parts = [header(d, full), el("p", { class: "desc", text: d.description })];
    if (d.tags.length) parts.push(tagLinks(d.tags));
    parts.push(importBox(d));
    parts.push(el("p", { class: "source" }, el("a", { href: d.sourceUrl, rel: "nofollow noopener", text: "Source: gist " + d.gist + " at " + d.revision.slice(0, 12) })));
    if (d.advisories.length) parts.push(advisoryBox(d.advisories));
    parts.push(meta([
      ["author", searchLink("author:" + d.user, d.user)],
      ["registered", d.created && when(d.created)],
      ["updated", d.updated && when(d.updated)],
      ["revision", el("code", { text: d.revision })],
      ["file", d.file],
      ["size", d.size + " bytes"],
      ["integrity", el("code", { text: d.integrity })],
      ["exports", d.exports.join(", ")],
    ]));
    parts.push(...contentParts(d, d.file));
    parts.push(...moduleLinks("Dependencies", d.dependencies));
    parts.push(el("div", { id: "dependents", "data-module": full }, ...dependentsParts(dependents)));
    parts.push(el("h3", { text: "Revisions (" + d.revisions.length + ")" }));
    // Advisories name the module or its gist: every captured revision is affected.
    parts.push(table("revisions", ["revision", "committed", "size", "advisories"], d.revisions.map((r) => el("tr", {},
      el("td", {}, el("code", { title: r.revision, text: r.revision.slice(0, 12) })),
      el("td", {}, r.committedAt ? when(r.committedAt) : ""),
      el("td", { text: String(r.size) }),
      advisoryCell(d.advisories)))));
    return parts;
  }

  // A versioned module (`@author/name`): dist-tags, versions, source, files.
  function versionedParts(d) {
    const full = d.user + "/" + d.name;
    const author = d.user.slice(1);
    const parts = [header(d, full, d.latest), el("p", { class: "desc", text: d.about })];
    if (d.keywords.length) parts.push(tagLinks(d.keywords));
    parts.push(importBox(d));
    const s = d.source;
    if (d.sourceUrl) parts.push(el("p", { class: "source" }, el("a", { href: d.sourceUrl, rel: "nofollow noopener", text: "Source of " + d.latest + " at commit " + s.commit.slice(0, 12) })));
    if (d.advisories.length) parts.push(advisoryBox(d.advisories));
    parts.push(meta([
      ["author", searchLink("author:" + author, author)],
      ["owners", d.owners.join(", ")],
      ["maintainers", d.maintainers.join(", ")],
      ["registered", d.created && when(d.created)],
      ["license", (d.versions.find((v) => v.version === d.latest) || {}).license],
      ["entry", d.entry],
      ["exports", d.exports.join(", ")],
      ["source", s.type + " " + (s.repository || s.url)],
      ["commit", el("code", { text: s.commit })],
      ["path", s.path],
      ["integrity", el("code", { text: d.integrity })],
      ["contentHash", el("code", { text: d.contentHash })],
    ]));
    parts.push(...contentParts(d, d.entry));
    parts.push(el("h3", { text: "Dist-tags" }));
    const tags = Object.entries(d.distTags);
    parts.push(tags.length ? el("ul", { id: "dist-tags" }, ...tags.map(([t, v]) => el("li", {}, el("code", { text: t }), " → " + v))) : el("p", { class: "muted", id: "dist-tags", text: "none (latest is the highest version)" }));
    parts.push(el("h3", { text: "Versions (" + d.versions.length + ")" }));
    const tagsOf = (v) => tags.filter(([, tv]) => tv === v).map(([t]) => t).join(", ");
    // Advisories name the module: like `info`, every version is affected.
    parts.push(table("versions", ["version", "published", "tags", "needs", "mlld", "license", "advisories"], d.versions.map((v) => el("tr", {},
      el("td", {}, el("code", { text: v.version })),
      el("td", {}, v.publishedAt ? when(v.publishedAt) : ""),
      el("td", { text: tagsOf(v.version) }),
      el("td", { text: v.needs.join(", ") }),
      el("td", { text: v.mlldVersion || "" }),
      el("td", { text: v.license || "" }),
      advisoryCell(d.advisories)))));
    parts.push(...moduleLinks("Dependencies", d.dependencies));
    parts.push(el("h3", { text: "Files of " + d.latest + " (" + d.files.length + ")" }));
    parts.push(table("files", ["path", "size", "sha256"], d.files.map((f) => el("tr", {},
      el("td", {}, el("code", { text: f.path })), el("td", { text: String(f.size) }), el("td", {}, el("code", { class: "hash", title: f.sha256, text: f.sha256.slice(0, 16) + "…" }))))));
    return parts;
  }

  /** The page's parts for module data `d` and a gist module's `dependents` (see `dependentsParts`). */
  return {
    parts(data, dependents) {
      const d = derive(data);
      return d.versioned ? versionedParts(d) : gistParts(d, dependents);
    },
    dependentsParts, importLine, pinRange, sourceUrl, derive,
  };
})();
