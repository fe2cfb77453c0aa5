//! What search indexes of a module's content: its Markdown headings and its
//! leading comment, the parts an author writes for readers. Code, string
//! literals and example fences stay out, so a module is not found for the
//! identifiers it happens to use.

/// Search needs a gist of the content, not all of it.
pub const MAX_SUMMARY_BYTES: usize = 2048;

/// The headings (outside code fences) and the leading `>>` comment block of
/// a module file, after any front matter, one per line.
pub fn extract(text: &str) -> String {
    let mut out = String::new();
    let mut leading = true;
    let mut in_fence = false;
    for line in body(text).lines() {
        let line = line.trim();
        if line.starts_with("```") || line.starts_with("~~~") {
            in_fence = !in_fence;
            leading = false;
            continue;
        }
        if in_fence || line.is_empty() {
            continue;
        }
        if let Some(heading) = heading(line) {
            push_line(&mut out, heading);
        } else if let Some(comment) = line.strip_prefix(">>").filter(|_| leading) {
            push_line(&mut out, comment.trim());
        } else {
            leading = false;
        }
        if out.len() >= MAX_SUMMARY_BYTES {
            break;
        }
    }
    truncate_at_char(&mut out, MAX_SUMMARY_BYTES);
    out
}

/// The text after a leading `---` front matter block, or all of it.
fn body(text: &str) -> &str {
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return text;
    };
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        offset += line.len();
        if line.trim_end() == "---" {
            return &rest[offset..];
        }
    }
    // Unclosed front matter: treat the file as having none.
    text
}

/// A Markdown ATX heading's text: `# Title`, up to `######`.
fn heading(line: &str) -> Option<&str> {
    let hashes = line.bytes().take_while(|&b| b == b'#').count();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let rest = &line[hashes..];
    rest.starts_with([' ', '\t'])
        .then(|| rest.trim().trim_end_matches('#').trim())
}

fn push_line(out: &mut String, line: &str) {
    if line.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(line);
}

fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_leading_comment_after_front_matter() {
        let text = "---\nname: x\ndescription: not this\n---\n\n>> Split a document into frontmatter and body, and show the\n>> frontmatter as JSON.\n\n/import { @a } from @u/m\n>> a later comment is code commentary\n/var @x = 1\n";
        assert_eq!(
            extract(text),
            "Split a document into frontmatter and body, and show the\nfrontmatter as JSON."
        );
    }

    #[test]
    fn takes_headings_outside_fences() {
        let text = "---\nname: md-toc\n---\n\n# md-toc\n\nBuilds a table.\n\n```mlld\n# not a heading\n```\n\n## Anchors ##\n#nospace\n";
        assert_eq!(extract(text), "md-toc\nAnchors");
    }

    #[test]
    fn no_front_matter_and_caps() {
        assert_eq!(extract(">> hello\n/var @x = 1"), "hello");
        assert_eq!(extract("/var @x = 1\n>> late"), "");
        assert_eq!(extract("---\nunclosed\n>> c"), "");
        let long = format!(">> {}\n", "é".repeat(MAX_SUMMARY_BYTES));
        let summary = extract(&long);
        assert!(summary.len() <= MAX_SUMMARY_BYTES && summary.starts_with('é'));
    }
}
