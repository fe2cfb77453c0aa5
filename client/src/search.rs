//! `mlld-registry search`: every user's modules, offline, from the
//! snapshot's index; a table for people, JSON lines for programs.

use std::io::Write;

use anyhow::Result;
use mlld_schemas::search::SearchHit;

use crate::commands::safe;
use crate::context::Context;
use crate::search_query::{SearchIndex, SearchQuery};

/// What one search found.
pub enum Outcome {
    Found(Vec<SearchHit>),
    /// Nothing matched; up to three near module names.
    NoMatch {
        suggestions: Vec<String>,
    },
}

/// Runs a search against the snapshot `ctx` reads.
pub fn search(ctx: &Context, query: &SearchQuery, limit: usize) -> Result<Outcome> {
    let index = ctx.search_index()?;
    let hits = index.search(query, limit)?;
    if !hits.is_empty() {
        return Ok(Outcome::Found(hits));
    }
    Ok(Outcome::NoMatch {
        suggestions: suggestions(&index, query)?,
    })
}

fn suggestions(index: &SearchIndex, query: &SearchQuery) -> Result<Vec<String>> {
    let wanted = query.as_name();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    index.near_names(&wanted, 3)
}

/// Prints the outcome; returns whether anything matched.
pub fn print(outcome: &Outcome, query_text: &str, json: bool) -> Result<bool> {
    let mut out = Vec::new();
    match outcome {
        Outcome::Found(hits) if json => crate::json_output::print(hits)?,
        Outcome::Found(hits) => write_table(&mut out, hits, use_color())?,
        Outcome::NoMatch { suggestions } => {
            let mut message = format!("no module matches `{}`", safe(query_text));
            if !suggestions.is_empty() {
                message.push_str(&format!("; did you mean {}?", suggestions.join(", ")));
            }
            // JSON stays one document, an empty result: the notice goes to stderr.
            if json {
                crate::json_output::print(&[(); 0])?;
                eprintln!("{message}");
            } else {
                writeln!(out, "{message}")?;
            }
        }
    }
    crate::out!("{}", String::from_utf8_lossy(&out));
    Ok(matches!(outcome, Outcome::Found(_)))
}

const DESCRIPTION_WIDTH: usize = 60;

fn write_table(out: &mut impl Write, hits: &[SearchHit], color: bool) -> std::io::Result<()> {
    // Versioned modules (`@author/name`) show their latest version beside the name.
    let rows: Vec<[String; 4]> = hits
        .iter()
        .map(|h| {
            let name = match &h.version {
                Some(version) => format!("{}  {}", safe(&h.name), safe(version)),
                None => safe(&h.name).into_owned(),
            };
            [
                name,
                shorten(&safe(&h.description), DESCRIPTION_WIDTH),
                safe(&h.tags.join(", ")).into_owned(),
                h.advisory.map_or_else(
                    || "-".to_string(),
                    |a| format!("{} ({})", a.highest.as_str().to_uppercase(), a.count),
                ),
            ]
        })
        .collect();
    let header = ["NAME", "DESCRIPTION", "TAGS", "ADVISORY"];
    let width = |col: usize| {
        rows.iter()
            .map(|r| r[col].chars().count())
            .chain([header[col].len()])
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2)];
    let line = |cells: [&str; 4], flag_colored: bool| {
        let flag = if flag_colored {
            format!("\x1b[1;31m{}\x1b[0m", cells[3])
        } else {
            cells[3].to_string()
        };
        format!(
            "{:w0$}  {:w1$}  {:w2$}  {flag}",
            cells[0],
            cells[1],
            cells[2],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )
    };
    writeln!(out, "{}", line(header, false).trim_end())?;
    for row in &rows {
        let flagged = color && row[3] != "-";
        let [a, b, c, d] = row;
        writeln!(out, "{}", line([a, b, c, d], flagged).trim_end())?;
    }
    Ok(())
}

fn use_color() -> bool {
    crate::color::enabled()
}

/// Registry text is untrusted: control characters must not drive the
/// terminal (see [`mlld_schemas::terminal`]).
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max - 1).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlld_schemas::Severity;
    use mlld_schemas::search::AdvisoryFlag;

    fn hit(name: &str, description: &str, advisory: Option<AdvisoryFlag>) -> SearchHit {
        let (author, module) = name.split_once('/').unwrap();
        SearchHit {
            name: name.into(),
            author: author.into(),
            module: module.into(),
            description: description.into(),
            tags: vec!["json".into(), "utils".into()],
            advisory,
            version: None,
        }
    }

    #[test]
    fn table_aligns_flags_and_cleans_untrusted_text() {
        let hits = [
            hit("a/json-utils", "JSON helpers\x1b[2J", None),
            hit(
                "bb/x",
                &"long ".repeat(20),
                Some(AdvisoryFlag {
                    highest: Severity::High,
                    count: 2,
                }),
            ),
        ];
        let mut out = Vec::new();
        write_table(&mut out, &hits, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME          DESCRIPTION"), "{text}");
        assert!(lines[1].ends_with("json, utils  -"), "{text}");
        assert!(lines[2].ends_with("HIGH (2)"), "{text}");
        assert!(!text.contains('\x1b'), "{text:?}");
        assert!(lines[2].contains('…'));
        let mut colored = Vec::new();
        write_table(&mut colored, &hits, true).unwrap();
        assert!(
            String::from_utf8(colored)
                .unwrap()
                .contains("\x1b[1;31mHIGH (2)")
        );
    }

    #[test]
    fn versioned_modules_show_their_latest_version() {
        let mut versioned = hit("@alice-dev/prompt-lib", "Prompt templates", None);
        versioned.author = "alice-dev".into();
        versioned.version = Some("1.2.0".into());
        let hits = [versioned, hit("a/json-utils", "JSON helpers", None)];
        let mut out = Vec::new();
        write_table(&mut out, &hits, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].starts_with("@alice-dev/prompt-lib  1.2.0  Prompt templates"),
            "{text}"
        );
        assert!(lines[2].starts_with("a/json-utils "), "{text}");
    }
}
