//! Module references (`mlld://user/module`, `@user/module@pin`) and the
//! scanner that finds the registry imports in mlld source text.

use std::fmt;

use crate::names;

/// A reference to a registry module, with an optional pin.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleRef {
    pub user: String,
    pub module: String,
    /// What followed `@` after the module name: a revision prefix (4+ hex)
    /// or a version-like tag this registry does not resolve.
    pub pin: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a module reference: {reason} (write mlld://user/module or @user/module)")]
pub struct RefError {
    pub input: String,
    pub reason: String,
}

/// Extensions a reference may carry after the module name.
const EXTENSIONS: [&str; 5] = [".mld.md", ".mlld.md", ".mlld", ".mld", ".md"];

impl ModuleRef {
    /// Parses `mlld://user/module`, `@user/module` or `user/module`, each with
    /// an optional `@pin`.
    pub fn parse(input: &str) -> Result<Self, RefError> {
        let err = |reason: &str| RefError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let rest = input
            .strip_prefix("mlld://")
            .or_else(|| input.strip_prefix('@'))
            .unwrap_or(input);
        if rest.starts_with("gist/") {
            return Err(err("it names a gist directly, not a registry module"));
        }
        let (user, rest) = rest
            .split_once('/')
            .ok_or_else(|| err("there is no `/` between user and module"))?;
        let (module, pin) = match rest.split_once('@') {
            Some((m, p)) if !p.is_empty() => (m, Some(p.to_string())),
            Some(_) => return Err(err("the pin after `@` is empty")),
            None => (rest, None),
        };
        let module = EXTENSIONS
            .iter()
            .find_map(|ext| module.strip_suffix(ext))
            .unwrap_or(module);
        names::check_user(user).map_err(|e| err(&e))?;
        if module.is_empty()
            || !module
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(err(
                "the module name is empty or holds characters other than letters, digits, `-`, `_`, `.`",
            ));
        }
        Ok(Self {
            user: user.to_string(),
            module: module.to_string(),
            pin,
        })
    }

    /// The lock file key: `mlld://user/module` (no pin).
    pub fn import_path(&self) -> String {
        format!("mlld://{}/{}", self.user, self.module)
    }

    /// `user/module`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.user, self.module)
    }

    /// The pin when it is a revision prefix (4 to 40 lowercase hex digits).
    pub fn revision_prefix(&self) -> Option<&str> {
        self.pin
            .as_deref()
            .filter(|p| (4..=40).contains(&p.len()) && names::is_lower_hex(p))
    }
}

impl fmt::Display for ModuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}/{}", self.user, self.module)?;
        if let Some(pin) = &self.pin {
            write!(f, "@{pin}")?;
        }
        Ok(())
    }
}

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

/// Resolver prefixes and special sources that look like `@user/...` but are not registry users.
const NOT_USERS: [&str; 11] = [
    "local", "root", "base", "project", "input", "stdin", "payload", "state", "now", "time",
    "keychain",
];
const IMPORT_KINDS: [&str; 6] = ["module", "static", "live", "local", "templates", "cached"];

/// Finds every registry import in `text`. `extra_prefixes` are resolver
/// prefixes the project defines (such as `lib` for `@lib/...`), which are not users.
pub fn scan_imports(text: &str, mode: SourceMode, extra_prefixes: &[String]) -> Vec<ImportSite> {
    let mut sites = Vec::new();
    let mut fence: Option<bool> = None; // Some(runs) while inside a ``` fence
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
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
            i += 1;
            continue;
        }
        let directive = match (mode, fence) {
            (SourceMode::Strict, _) | (SourceMode::Markdown, Some(true)) => {
                strip_directive(trimmed, true)
            }
            (SourceMode::Markdown, None) => strip_directive(line, false),
            (SourceMode::Markdown, Some(false)) => None,
        };
        let start = i;
        i += 1;
        let Some(mut rest) = directive.map(str::to_string) else {
            continue;
        };
        // A brace list may span lines: join until it closes.
        while rest.contains('{') && !rest.contains('}') && i < lines.len() {
            rest.push(' ');
            rest.push_str(lines[i].trim());
            i += 1;
        }
        if let Some(reference) = import_source(&rest, extra_prefixes) {
            sites.push(ImportSite {
                reference,
                line: start + 1,
            });
        }
    }
    sites
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

/// The registry module an import directive's remainder names, if any.
fn import_source(rest: &str, extra_prefixes: &[String]) -> Option<ModuleRef> {
    let source = if let Some(after) = rest.rsplit_once(" from ").map(|(_, s)| s) {
        after.trim()
    } else {
        // `import [kind] @user/module [as @alias]`
        let mut words = rest.split_whitespace();
        let mut word = words.next()?;
        if IMPORT_KINDS.iter().any(|k| word.starts_with(k)) {
            word = words.next()?;
        }
        word
    };
    let token = source.split_whitespace().next()?;
    let reference = if let Some(quoted) = token.strip_prefix('"') {
        let inner = quoted.split('"').next()?;
        inner.strip_prefix("mlld://")?;
        ModuleRef::parse(inner).ok()?
    } else if token.starts_with('@') {
        let r = ModuleRef::parse(token.trim_end_matches([',', ';'])).ok()?;
        let user = r.user.to_ascii_lowercase();
        if NOT_USERS.contains(&user.as_str())
            || extra_prefixes.iter().any(|p| p.eq_ignore_ascii_case(&user))
        {
            return None;
        }
        r
    } else {
        return None; // `node`, `mcp`, quoted paths and URLs
    };
    Some(reference)
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
    fn parses_every_reference_form() {
        let r = ModuleRef::parse("mlld://adamavenir/json-utils").unwrap();
        assert_eq!(
            (r.user.as_str(), r.module.as_str(), r.pin.as_deref()),
            ("adamavenir", "json-utils", None)
        );
        assert_eq!(
            ModuleRef::parse("@adamavenir/json-utils@b20e54d")
                .unwrap()
                .revision_prefix(),
            Some("b20e54d")
        );
        assert_eq!(
            ModuleRef::parse("@a/b@^1.0.0").unwrap().revision_prefix(),
            None
        );
        assert_eq!(
            ModuleRef::parse("@a/json-utils.mld").unwrap().module,
            "json-utils"
        );
        assert_eq!(ModuleRef::parse("a/b").unwrap().import_path(), "mlld://a/b");
        assert!(ModuleRef::parse("mlld://gist/a/0123456789abcdef0123").is_err());
        assert!(ModuleRef::parse("@a/").is_err());
        assert!(ModuleRef::parse("no-slash").is_err());
        assert!(ModuleRef::parse("@a--b/c").is_err());
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
