//! What a module page shows beyond its records, worked out at build time:
//! its documentation rendered from Markdown and sanitised, the names it
//! exports, the import line that runs in today's mlld, and where its
//! source lives.
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

/// The import line for `@{full_name}` (`user/module` or `author/name`),
/// pinned with `@{range}` when given: the exported names, or the module
/// under a namespace when it names none.
pub fn import_line(full_name: &str, exports: &[String], range: Option<&str>) -> String {
    let full = full_name.trim_start_matches('@');
    let pin = range.map(|r| format!("@{r}")).unwrap_or_default();
    if exports.is_empty() {
        let name = full.rsplit('/').next().unwrap_or(full);
        format!("/import @{full}{pin} as @{}", namespace(name))
    } else {
        format!("/import {{ {} }} from @{full}{pin}", exports.join(", "))
    }
}

/// `json-utils` → `jsonUtils`: a module name as an mlld variable name.
fn namespace(name: &str) -> String {
    let mut out = String::new();
    for (i, word) in name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .enumerate()
    {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            if i == 0 {
                out.push(first.to_ascii_lowercase());
            } else {
                out.push(first.to_ascii_uppercase());
            }
            out.extend(chars);
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) || out.is_empty() {
        out.insert(0, 'm');
    }
    out
}

/// The version range an import pins to for `version`: `^version` for a
/// release, the exact version for a pre-release.
pub fn pin_range(version: &str) -> String {
    if version.contains('-') {
        version.to_string()
    } else {
        format!("^{version}")
    }
}

/// `text` cut at `max` characters; whether it was cut.
pub fn cut(text: &str, max: usize) -> (String, bool) {
    let end = text.char_indices().nth(max).map_or(text.len(), |(i, _)| i);
    (text[..end].to_string(), end < text.len())
}

/// The site path of the loose blob with `digest` (`sha256:<hex>` or
/// `<hex>`): module pages read a module's text from there rather than
/// holding a second copy of it.
pub fn blob_url(digest: &str) -> String {
    mlld_schemas::snapshot::blob_path(digest.trim_start_matches("sha256:"))
}

/// A gist revision on GitHub.
pub fn gist_url(user: &str, gist: &str, revision: &str) -> String {
    format!("https://gist.github.com/{user}/{gist}/{revision}")
}

/// A versioned module's source at its pinned commit, when it can be said
/// as an `https` URL: the repository's tree (a directory) or blob (a file)
/// at the commit, or the gist revision.
pub fn source_url(source: &mlld_schemas::SourceRecord, author: &str) -> Option<String> {
    let url = match source.kind.as_str() {
        "gist" => gist_url(author, &source.url, &source.commit),
        kind => {
            let repo = source.repository.as_deref()?.trim_end_matches(".git");
            let repo = repo.trim_end_matches('/');
            let view = if kind == "directory" { "tree" } else { "blob" };
            let path = source.path.trim_matches('/');
            if path.is_empty() {
                format!("{repo}/tree/{}", source.commit)
            } else {
                format!("{repo}/{view}/{}/{path}", source.commit)
            }
        }
    };
    let safe = url.starts_with("https://")
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"');
    safe.then_some(url)
}

#[cfg(test)]
#[path = "doc_tests.rs"]
mod tests;
