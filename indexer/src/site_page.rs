//! The site's minimal web page: a table of every module.

use mlld_schemas::Manifest;

const TEMPLATE: &str = include_str!("../../site/index.html");

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders the page. Everything from registry files or gists is escaped.
pub fn render(manifest: &Manifest) -> String {
    let mut rows = String::new();
    for m in &manifest.modules {
        let advisory = if manifest.advisories_for(m).next().is_some() {
            r#" <span class="advisory">advisory</span>"#
        } else {
            ""
        };
        let tags: String = m
            .tags
            .iter()
            .map(|t| format!(r#"<span class="tag">{}</span>"#, escape_html(t)))
            .collect();
        rows.push_str(&format!(
            "<tr><td><code>{}/{}</code>{advisory}</td><td>{}</td><td>{tags}</td><td><code>{}</code></td></tr>\n",
            escape_html(&m.user),
            escape_html(&m.name),
            escape_html(&m.description),
            &m.current.revision[..m.current.revision.len().min(12)],
        ));
    }
    TEMPLATE
        .replace("{{SERIAL}}", &manifest.serial.to_string())
        .replace("{{CREATED}}", &escape_html(&manifest.created))
        .replace("{{COUNT}}", &manifest.modules.len().to_string())
        .replace("{{ROWS}}", rows.trim_end())
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape_html(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }
}
