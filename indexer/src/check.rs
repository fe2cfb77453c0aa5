//! Pull-request checks for a registry repository, in either layout (or
//! both): every rule the indexer applies to user folders and to
//! `modules/{author}/{name}/…`, plus gist ownership when the GitHub API may
//! be called. Root files and folders that are not users (`modules.json`,
//! `allowlist.json`, `README.md`, `_index/`, `.github/`, `tools/`, `docs/`)
//! are never read as users.

use std::path::Path;

use anyhow::Result;
use mlld_schemas::locate::SpanTree;
use mlld_schemas::{Diagnostic, JsonPath, Level};
use rayon::prelude::*;

use crate::capture::check_owner;
use crate::gist::{FetchError, Fetched, GistSource};
use crate::{registry_load, versioned_load};

/// Validates `registry`; with a `source`, also checks that every gist exists
/// and belongs to the user who registers it. Sorted by file, then position.
pub fn check(registry: &Path, source: Option<&dyn GistSource>) -> Result<Vec<Diagnostic>> {
    let loaded = registry_load::load(registry)?;
    let mut diagnostics = loaded.diagnostics;
    diagnostics.extend(check_versioned(registry)?);
    if let Some(source) = source {
        let jobs: Vec<(&str, &str, &str)> = loaded
            .users
            .iter()
            .filter_map(|u| u.registry.as_ref().map(|r| (u, r)))
            .flat_map(|(u, r)| {
                r.modules
                    .iter()
                    .map(move |(name, e)| (u.folder.as_str(), name.as_str(), e.gist.as_str()))
            })
            .collect();
        let found: Vec<Diagnostic> = jobs
            .par_iter()
            .filter_map(|(user, name, gist)| {
                let problem = match source.fetch(gist, None) {
                    Ok(Fetched::Fresh { gist, .. }) => {
                        check_owner(user, &gist).err().map(|m| (Level::Error, m))
                    }
                    Ok(Fetched::NotModified) => None,
                    Err(FetchError::NotFound) => Some((
                        Level::Error,
                        format!("gist {gist} does not exist or is not public"),
                    )),
                    Err(e) => Some((
                        Level::Warning,
                        format!("gist {gist} could not be checked: {e}"),
                    )),
                }?;
                Some(ownership_diagnostic(registry, user, name, problem))
            })
            .collect();
        diagnostics.extend(found);
    }
    diagnostics.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    Ok(diagnostics)
}

/// Today's layout: version files (name against `version`, pinned sources,
/// `entryPoint` among `files`, hash format, unknown fields), metadata
/// against its folders, and tags naming versions whose files pass.
fn check_versioned(registry: &Path) -> Result<Vec<Diagnostic>> {
    let loaded = versioned_load::load(registry)?;
    let mut diagnostics = loaded.diagnostics;
    for module in &loaded.modules {
        if let Some((file, text)) = &module.tags {
            let versions: Vec<String> = module
                .versions
                .iter()
                .map(|v| v.record.version.clone())
                .collect();
            diagnostics
                .extend(mlld_schemas::versioned::check_tags(file, text, &versions).diagnostics);
        }
    }
    Ok(diagnostics)
}

fn ownership_diagnostic(
    registry: &Path,
    user: &str,
    name: &str,
    (level, message): (Level, String),
) -> Diagnostic {
    let file = format!("{user}/registry.json");
    let path = JsonPath::root().key("modules").key(name).key("gist");
    let position = std::fs::read_to_string(registry.join(&file))
        .ok()
        .and_then(|src| SpanTree::parse(&src))
        .and_then(|t| t.position(&path));
    let (line, column) = position.unwrap_or((0, 0));
    Diagnostic {
        level,
        file,
        path,
        line,
        column,
        message,
        help: Some("register only gists you own, by the id in their URL (https://gist.github.com/<you>/<id>)".into()),
    }
}

/// One GitHub Actions workflow command per diagnostic, so the pull request shows it inline.
pub fn github_annotation(d: &Diagnostic, prefix: &str) -> String {
    let level = if d.is_error() { "error" } else { "warning" };
    let escape = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let help = d
        .help
        .as_deref()
        .map(|h| format!(" ({h})"))
        .unwrap_or_default();
    format!(
        "::{level} file={prefix}{},line={},col={},title={}::{}{}",
        d.file,
        d.line.max(1),
        d.column.max(1),
        escape(&d.path.to_string())
            .replace(',', "%2C")
            .replace(':', "%3A"),
        escape(&d.message),
        escape(&help)
    )
}
