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

  return { $, el, plural, searchLink, tagLinks, dateFormat, when };
})();
