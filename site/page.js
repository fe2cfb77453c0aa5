// What the registry's page scripts share: building DOM nodes from text
// (registry text always goes in as text, never HTML), links, dates.
"use strict";

const mlldPage = (() => {
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
  const plural = (n, one, many) => n + " " + (n === 1 ? one : many);
  const searchLink = (q, text) => el("a", { href: "#/?q=" + encodeURIComponent(q), text });
  const tagLinks = (tags) => el("div", { class: "tags" }, ...tags.map((t) => el("a", { class: "tag", href: "#/?q=" + encodeURIComponent("tag:" + t), text: t })));

  // Dates: readable in the text, exact in the tooltip.
  const dateFormat = new Intl.DateTimeFormat("en", { year: "numeric", month: "short", day: "numeric", timeZone: "UTC" });
  function when(iso) {
    const t = new Date(iso);
    if (!iso || isNaN(t)) return document.createTextNode(iso || "");
    return el("time", { datetime: t.toISOString(), title: t.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC"), text: dateFormat.format(t) });
  }

  /**
   * FNV-1a (32 bits) of `units` (numbers): how the indexer's data files are
   * found by a name or term (`fnv1a` in indexer/src/site_data.rs).
   */
  function fnv1a(units) {
    let h = 0x811c9dc5;
    for (const u of units) h = Math.imul(h ^ u, 0x01000193);
    return h >>> 0;
  }

  /**
   * The bucket of `text` among `2 ** bits`: the low bits of FNV-1a of its
   * UTF-8 bytes. Which `data/dependents/` file holds a module's dependents
   * (indexer/src/site_data/dependents_files.rs).
   */
  const bucketOf = (text, bits) => fnv1a(new TextEncoder().encode(text)) % 2 ** bits;

  return { $, el, plural, searchLink, tagLinks, dateFormat, when, fnv1a, bucketOf };
})();
