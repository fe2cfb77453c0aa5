//! The scanner that finds the registry imports in mlld source text.
//!
//! It reads every import-type keyword (`module`, `static`, `live`,
//! `cached(TTL)`, `templates`) before braces or before an angle-bracket
//! source, pins and tags after a reference, and skips `import local`,
//! resolver prefixes, special sources, npm packages and file paths. A
//! reference that is meant for the registry but is malformed (`@sarah-k/../x`,
//! look-alike letters, a Unicode hyphen) is a problem with its line, never
//! dropped silently. One pass, linear in the text's size.

use crate::import_ref::ModuleRef;

/// How mlld reads a file: strict `.mld`/`.mlld`, or markdown `.md`/`.mld.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceMode {
    Strict,
    Markdown,
}

impl SourceMode {
    /// The mode for a file name, or `None` when mlld does not read it.
    pub fn for_file_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".md") {
            Some(SourceMode::Markdown)
        } else if lower.ends_with(".mld") || lower.ends_with(".mlld") {
            Some(SourceMode::Strict)
        } else {
            None
        }
    }
}

/// One registry import found in source text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportSite {
    pub reference: ModuleRef,
    /// 1-based line of the import directive.
    pub line: usize,
}

/// How a reference was written: `mlld://user/module` names the Phase-1 gist
/// module; `@user/module` names the versioned module when one exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefForm {
    MlldUrl,
    At,
}

/// One registry import with the form it was written in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedImport {
    pub reference: ModuleRef,
    pub form: RefForm,
    pub line: usize,
}

/// A reference meant for the registry that is not a valid one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanProblem {
    pub line: usize,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanOutcome {
    pub imports: Vec<ScannedImport>,
    pub problems: Vec<ScanProblem>,
}

/// Resolver prefixes and special sources that look like `@user/...` but are not registry users.
const NOT_USERS: [&str; 11] = [
    "local", "root", "base", "project", "input", "stdin", "payload", "state", "now", "time",
    "keychain",
];
const IMPORT_KINDS: [&str; 4] = ["module", "static", "live", "templates"];
/// A brace list longer than this many lines is no import list mlld would parse.
const MAX_BRACE_LINES: usize = 256;

/// Finds every registry import in `text`. `extra_prefixes` are resolver
/// prefixes the project defines (such as `lib` for `@lib/...`), which are
/// not users. Malformed references are left out; see [`scan_imports_checked`].
pub fn scan_imports(text: &str, mode: SourceMode, extra_prefixes: &[String]) -> Vec<ImportSite> {
    scan_imports_checked(text, mode, extra_prefixes)
        .imports
        .into_iter()
        .map(|i| ImportSite {
            reference: i.reference,
            line: i.line,
        })
        .collect()
}

/// Like [`scan_imports`], with the form of each reference and every
/// malformed registry reference as a problem.
///
/// Only lines that hold `import` (or, in markdown, a fence) can matter, so
/// the scanner jumps from one such line to the next with substring search
/// and counts the newlines in between: one pass over the text, however many
/// lines it has.
pub fn scan_imports_checked(
    text: &str,
    mode: SourceMode,
    extra_prefixes: &[String],
) -> ScanOutcome {
    let mut out = ScanOutcome::default();
    let mut fence: Option<bool> = None; // Some(runs) while inside a ``` fence
    let mut cursor = Cursor::new(text);
    let mut next_import = Next::new("import");
    let mut next_fence = Next::new("```");
    loop {
        let import_at = next_import.from(text, cursor.pos);
        let fence_at = match mode {
            SourceMode::Markdown => next_fence.from(text, cursor.pos),
            SourceMode::Strict => None,
        };
        let Some(candidate) = [import_at, fence_at].into_iter().flatten().min() else {
            break;
        };
        let (number, line) = cursor.line_containing(candidate);
        let trimmed = line.trim_start();
        if mode == SourceMode::Markdown && trimmed.starts_with("```") {
            fence = match fence {
                Some(_) => None,
                None => Some(
                    trimmed
                        .trim_start_matches('`')
                        .trim()
                        .starts_with("mlld-run"),
                ),
            };
            continue;
        }
        let directive = match (mode, fence) {
            (SourceMode::Strict, _) | (SourceMode::Markdown, Some(true)) => {
                strip_directive(trimmed, true)
            }
            (SourceMode::Markdown, None) => strip_directive(line, false),
            (SourceMode::Markdown, Some(false)) => None,
        };
        let Some(directive) = directive else {
            continue;
        };
        let mut rest = directive.to_string();
        // A brace list may span lines: join until it closes, at most
        // MAX_BRACE_LINES lines (each joined line is consumed).
        let mut open = rest.contains('{') && !rest.contains('}');
        let mut joined = 0;
        while open && joined < MAX_BRACE_LINES {
            let Some(next) = cursor.next_line() else {
                break;
            };
            rest.push(' ');
            rest.push_str(next.trim());
            open = !next.contains('}');
            joined += 1;
        }
        match import_source(&rest, extra_prefixes) {
            Ok(Some((reference, form))) => out.imports.push(ScannedImport {
                reference,
                form,
                line: number,
            }),
            Ok(None) => {}
            Err(message) => out.problems.push(ScanProblem {
                line: number,
                message,
            }),
        }
    }
    out
}

/// The next occurrence of a needle at or after a position, remembered so
/// that the text is searched once.
struct Next {
    needle: &'static str,
    found: Option<usize>,
    searched_from: usize,
}

impl Next {
    fn new(needle: &'static str) -> Self {
        Self {
            needle,
            found: None,
            searched_from: usize::MAX,
        }
    }

    fn from(&mut self, text: &str, pos: usize) -> Option<usize> {
        let stale = self.searched_from == usize::MAX || self.found.is_some_and(|f| f < pos);
        if stale {
            self.searched_from = pos;
            self.found = text
                .get(pos..)
                .and_then(|t| t.find(self.needle))
                .map(|i| pos + i);
        }
        self.found
    }
}

/// Walks the text line by line from a line start, keeping the line number.
struct Cursor<'a> {
    text: &'a str,
    /// A line start (or the end of the text).
    pos: usize,
    /// The 1-based number of the line at `pos`.
    line: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            pos: 0,
            line: 1,
        }
    }

    /// The line holding byte `at` (at or after `pos`), with its number;
    /// the cursor moves past it.
    fn line_containing(&mut self, at: usize) -> (usize, &'a str) {
        let skipped = &self.text[self.pos..at];
        let start = skipped.rfind('\n').map_or(self.pos, |i| self.pos + i + 1);
        self.line += self.text.as_bytes()[self.pos..start]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        self.pos = start;
        let number = self.line;
        let line = self.next_line().unwrap_or("");
        (number, line)
    }

    /// The line at `pos` without its line ending; the cursor moves past it.
    fn next_line(&mut self) -> Option<&'a str> {
        if self.pos >= self.text.len() {
            return None;
        }
        let rest = &self.text[self.pos..];
        let (line, advance) = match rest.find('\n') {
            Some(i) => (&rest[..i], i + 1),
            None => (rest, rest.len()),
        };
        self.pos += advance;
        self.line += 1;
        Some(line.strip_suffix('\r').unwrap_or(line))
    }
}

/// The text after `import` when `line` is an import directive.
fn strip_directive(line: &str, bare_allowed: bool) -> Option<&str> {
    let rest = line
        .strip_prefix("/import")
        .or_else(|| line.strip_prefix("@import"))
        .or_else(|| {
            if bare_allowed {
                line.strip_prefix("import")
            } else {
                None
            }
        })?;
    rest.starts_with(char::is_whitespace).then_some(rest.trim())
}

fn is_kind(word: &str) -> bool {
    IMPORT_KINDS.contains(&word) || word.starts_with("cached(") || word == "cached"
}

/// The registry module an import directive's remainder names, if any.
fn import_source(
    rest: &str,
    extra_prefixes: &[String],
) -> Result<Option<(ModuleRef, RefForm)>, String> {
    let mut words = rest.split_whitespace();
    let Some(first) = words.next() else {
        return Ok(None);
    };
    if first == "local" {
        return Ok(None); // a development module in the project, never fetched
    }
    let source = match rest.rsplit_once(" from ") {
        Some((_, after)) => after.trim(),
        // `import [kind] @user/module [as @alias]`, `import [kind] <@user/module.mld>`
        None if is_kind(first) => words.next().unwrap_or(""),
        None => first,
    };
    let Some(token) = source.split_whitespace().next() else {
        return Ok(None);
    };
    let token = if let Some(quoted) = token.strip_prefix(['"', '\'']) {
        quoted.split(['"', '\'']).next().unwrap_or("")
    } else if let Some(angled) = token.strip_prefix('<') {
        angled.split('>').next().unwrap_or("")
    } else {
        token.trim_end_matches([',', ';'])
    };
    let bad = |e: crate::import_ref::RefError| {
        format!(
            "`{}` is not a valid registry reference: {}",
            token.escape_debug(),
            e.reason
        )
    };
    if let Some(url) = token.strip_prefix("mlld://") {
        if url.starts_with("gist/") {
            return Ok(None); // a gist named directly, without the registry
        }
        return ModuleRef::parse(token)
            .map(|r| Some((r, RefForm::MlldUrl)))
            .map_err(bad);
    }
    let Some(body) = token.strip_prefix('@') else {
        return Ok(None); // `node`, `mcp`, quoted paths and URLs
    };
    let Some((user, _)) = body.split_once('/') else {
        return Ok(None); // `@input`, `@base` and other special sources
    };
    let user = user.to_lowercase();
    if NOT_USERS.contains(&user.as_str()) || extra_prefixes.iter().any(|p| p.to_lowercase() == user)
    {
        return Ok(None);
    }
    ModuleRef::parse(token)
        .map(|r| Some((r, RefForm::At)))
        .map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(text: &str, mode: SourceMode) -> Vec<String> {
        scan_imports(text, mode, &["lib".to_string()])
            .into_iter()
            .map(|s| s.reference.to_string())
            .collect()
    }

    #[test]
    fn strict_mode_forms() {
        let text = r#"
@import { a, b } from "mlld://alice/one"
/import { @a, b as c } from @bob/two
import { @x } from @carol/three@abcd123
import @dave/four as @four
/import module { @x } from @erin/five.mld
/import cached(1h) @frank/six
/import {
  @a,
  @b
} from @gina/seven
/import { @h } from @local/helpers
/import { @y } from "./file.mld"
/import { @p } from @lib/private
/import { @q } from node @scope/pkg
/var @x = "import { a } from @not/this"
"#;
        assert_eq!(
            refs(text, SourceMode::Strict),
            [
                "@alice/one",
                "@bob/two",
                "@carol/three@abcd123",
                "@dave/four",
                "@erin/five",
                "@frank/six",
                "@gina/seven"
            ]
        );
    }

    #[test]
    fn every_kind_before_braces_or_angle_brackets_and_pins() {
        let text = r#"
import cached(30m) <@company/utils.mld> as @utils
import static <@alice/tmpl.mld> as @t
/import live { @x } from @bob/feed@^1.2
/import templates { @y } from @carol/views@beta
import module <@dave/core@1.0.0>
import { @z } from @erin/lib@>=1.0.0
import local { @dev } from @frank/dev-module
import local @gina/dev
import <@lib/private.mld> as @p
import { @s } from @input
/import { @w } from mlld://hank/old
import { @g } from "mlld://gist/ivan/0123456789abcdef0123"
"#;
        let out = scan_imports_checked(text, SourceMode::Strict, &["lib".to_string()]);
        assert_eq!(out.problems, []);
        let found: Vec<String> = out
            .imports
            .iter()
            .map(|i| format!("{}:{:?}", i.reference, i.form))
            .collect();
        assert_eq!(
            found,
            [
                "@company/utils:At",
                "@alice/tmpl:At",
                "@bob/feed@^1.2:At",
                "@carol/views@beta:At",
                "@dave/core@1.0.0:At",
                "@erin/lib@>=1.0.0:At",
                "@hank/old:MlldUrl",
            ]
        );
        assert_eq!(out.imports[0].line, 2);
    }

    #[test]
    fn malformed_registry_references_are_problems_with_lines() {
        let text = "/import { @a } from @sarah-k/../x\n\
                    /import { @b } from \"mlld://../../x\"\n\
                    /import { @c } from @\u{0455}arah-k/llm-cache\n\
                    /import { @d } from @sarah\u{2010}k/llm-cache\n\
                    /import { @e } from @sarah-k/llm-cache\n";
        let out = scan_imports_checked(text, SourceMode::Strict, &[]);
        let lines: Vec<usize> = out.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [1, 2, 3, 4], "{:?}", out.problems);
        assert!(out.problems[2].message.contains("\u{0455}arah-k"));
        assert_eq!(out.imports.len(), 1);
        assert_eq!(out.imports[0].line, 5);
    }

    #[test]
    fn an_unclosed_brace_is_scanned_once() {
        // Millions of lines after an open brace: one pass, not one per line.
        let mut text = String::from("/import {\n");
        text.push_str(&"\n".repeat(2_000_000));
        text.push_str("/import { @a } from @alice/one\n");
        let started = std::time::Instant::now();
        let out = scan_imports_checked(&text, SourceMode::Strict, &[]);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(out.imports.len(), 1);
        assert_eq!(out.imports[0].line, 2_000_002);
    }

    #[test]
    fn fifty_megabytes_scan_in_linear_time() {
        // The attack from issue 11: an unclosed `/import {` and millions of
        // newlines, 50 MB in all. A rescan per line would take hours; the
        // bound here only catches that. The speed target (under a second in
        // release, through `install`) is measured by `cargo xtask bench scan`.
        let mut text = String::with_capacity(50 << 20);
        while text.len() < 50 << 20 {
            text.push_str("/import {\n");
            text.push_str(&"\n".repeat(4096));
        }
        text.push_str("/import { @a } from @alice/one\n");
        let started = std::time::Instant::now();
        let out = scan_imports_checked(&text, SourceMode::Strict, &[]);
        let took = started.elapsed();
        assert_eq!(out.imports.len(), 1);
        assert!(took.as_secs_f64() < 60.0, "{took:?}");
    }

    #[test]
    fn markdown_mode_skips_example_fences() {
        let text = "# Doc\n/import { @a } from @alice/one\n```mlld\n/import { @b } from @bob/example\n```\n```mlld-run\nimport { @c } from @carol/run\n```\n  /import { @d } from @dave/indented\n@import { e } from \"mlld://erin/old\"\n";
        assert_eq!(
            refs(text, SourceMode::Markdown),
            ["@alice/one", "@carol/run", "@erin/old"]
        );
    }

    #[test]
    fn modes_follow_file_names() {
        assert_eq!(SourceMode::for_file_name("a.mld"), Some(SourceMode::Strict));
        assert_eq!(
            SourceMode::for_file_name("a.mlld"),
            Some(SourceMode::Strict)
        );
        assert_eq!(
            SourceMode::for_file_name("a.mld.md"),
            Some(SourceMode::Markdown)
        );
        assert_eq!(
            SourceMode::for_file_name("README.md"),
            Some(SourceMode::Markdown)
        );
        assert_eq!(SourceMode::for_file_name("a.txt"), None);
    }
}
