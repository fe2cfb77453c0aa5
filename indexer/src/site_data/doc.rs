//! What a module page shows beyond its records, worked out at build time:
//! its documentation rendered from Markdown and sanitised, and the names it
//! exports. What follows from the page's own fields (the import line, the
//! source link) the page derives (`site/module.js`).
//!
//! The page inserts `doc` as HTML, so everything here that becomes markup
//! goes through [`render_markdown`]: pulldown-cmark, then ammonia. No
//! script, style, event handler or `javascript:` URL survives; images are
//! never loaded (each becomes a link to the image); every link gets
//! `rel="nofollow noopener"`.

use std::collections::HashSet;

use ammonia::UrlRelative;
use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};

/// Whether a file is Markdown the page renders (`README.md`, `x.mld.md`).
pub fn is_markdown(file: &str) -> bool {
    let lower = file.to_ascii_lowercase();
    lower.ends_with(".md") || lower.ends_with(".markdown")
}

/// The README among `paths`: `README.md` (any case) at the top, else the
/// shallowest one.
pub fn readme<'a>(paths: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    paths
        .into_iter()
        .filter(|p| {
            let file = p.rsplit('/').next().unwrap_or(p);
            file.eq_ignore_ascii_case("readme.md")
        })
        .min_by_key(|p| (p.matches('/').count(), *p))
}

/// Markdown as sanitised HTML.
pub fn render_markdown(text: &str) -> String {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;
    let mut in_metadata = false;
    let events = Parser::new_ext(text, options).flat_map(|event| -> Vec<Event<'_>> {
        match event {
            // Front matter (`name:`, `author:` …) is on the page already.
            Event::Start(Tag::MetadataBlock(_)) => {
                in_metadata = true;
                vec![]
            }
            Event::End(TagEnd::MetadataBlock(_)) => {
                in_metadata = false;
                vec![]
            }
            _ if in_metadata => vec![],
            // An image would be fetched from wherever its author likes: show a link instead.
            Event::Start(Tag::Image {
                dest_url, title, ..
            }) => vec![
                Event::Start(Tag::Link {
                    link_type: LinkType::Inline,
                    dest_url,
                    title,
                    id: CowStr::Borrowed(""),
                }),
                Event::Text(CowStr::Borrowed("image: ")),
            ],
            Event::End(TagEnd::Image) => vec![Event::End(TagEnd::Link)],
            other => vec![other],
        }
    });
    let mut html = String::with_capacity(text.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    sanitise(&html)
}

/// HTML with only safe markup left (see the module's comment).
fn sanitise(html: &str) -> String {
    ammonia::Builder::default()
        .rm_tags(["img"])
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        // A relative link points into the gist or repository, not this site.
        .url_relative(UrlRelative::Deny)
        .link_rel(Some("nofollow noopener"))
        .clean(html)
        .to_string()
}

/// The names `content` exports (`/export { @a, @b }`, also without the
/// slash or the `@`, possibly over several lines), each as `@name`, in
/// order, once.
pub fn exports(content: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = content;
    while let Some(body) = next_export(rest) {
        let Some(end) = body.find('}') else { break };
        for item in body[..end].split(',') {
            // `@a as @b` exports `@b`.
            let name = item.split_whitespace().last().unwrap_or("");
            let name = name.strip_prefix('@').unwrap_or(name);
            if is_identifier(name) && !out.iter().any(|n| n[1..] == *name) {
                out.push(format!("@{name}"));
            }
        }
        rest = &body[end..];
    }
    out
}

/// The text after the `{` of the next line that starts an export block.
fn next_export(text: &str) -> Option<&str> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim_start();
        let directive = trimmed.strip_prefix('/').unwrap_or(trimmed);
        let Some(after) = directive.strip_prefix("export") else {
            continue;
        };
        let after = after.trim_start();
        if after.starts_with('{') {
            // The line is `[ws][/]export[ws]{…`: its first brace opens the list.
            let brace = start + line.find('{')?;
            return Some(&text[brace + 1..]);
        }
    }
    None
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `text` cut at `max` characters; whether it was cut.
pub fn cut(text: &str, max: usize) -> (String, bool) {
    let end = text.char_indices().nth(max).map_or(text.len(), |(i, _)| i);
    (text[..end].to_string(), end < text.len())
}

#[cfg(test)]
#[path = "doc_tests.rs"]
mod tests;
