//! Finds the registry imports of a project's mlld files: `.mld`, `.mlld`,
//! `.mld.md` and `.md`, skipping `.git`, `.mlld`, `node_modules` and what
//! `.gitignore` ignores.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mlld_schemas::{ModuleRef, SourceMode, scan_imports};

/// Where a reference was found first.
#[derive(Debug, Clone)]
pub struct Found {
    pub reference: ModuleRef,
    pub file: PathBuf,
    pub line: usize,
}

/// Every registry import in the project, one per distinct reference
/// (module and pin), in file order. Files over 4 MiB are skipped.
pub fn project_imports(root: &Path, prefixes: &[String]) -> Result<Vec<Found>> {
    const MAX_FILE: u64 = 4 << 20;
    let mut found: BTreeMap<ModuleRef, Found> = BTreeMap::new();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .git_ignore(true)
        .git_global(false)
        .git_exclude(true)
        .require_git(false)
        .parents(false)
        .filter_entry(|e| {
            let name = e.file_name().to_str().unwrap_or("");
            !(e.file_type().is_some_and(|t| t.is_dir())
                && matches!(name, ".git" | ".mlld" | "node_modules"))
        })
        .build();
    let mut files = Vec::new();
    for entry in walker {
        let entry = entry.with_context(|| format!("scanning {}", root.display()))?;
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let name = entry.file_name().to_str().unwrap_or("");
        let Some(mode) = SourceMode::for_file_name(name) else {
            continue;
        };
        if entry.metadata().is_ok_and(|m| m.len() > MAX_FILE) {
            continue;
        }
        files.push((entry.into_path(), mode));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, mode) in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // not UTF-8: not an mlld file
        };
        for site in scan_imports(&text, mode, prefixes) {
            found.entry(site.reference.clone()).or_insert(Found {
                reference: site.reference,
                file: path.strip_prefix(root).unwrap_or(&path).to_path_buf(),
                line: site.line,
            });
        }
    }
    let mut out: Vec<Found> = found.into_values().collect();
    out.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Ok(out)
}
