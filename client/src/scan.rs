//! Finds the registry imports of a project's mlld files: `.mld`, `.mlld`,
//! `.mld.md` and `.md`, skipping `.git`, `.mlld`, `node_modules` and what
//! `.gitignore` ignores. Every file is scanned whatever its size (up to a
//! cap that is reported, never skipped silently), and every malformed
//! registry reference is a problem naming its file and line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mlld_schemas::SourceMode;
use mlld_schemas::import_ref::RefForm;
use mlld_schemas::import_ref::scan_imports_checked;

use crate::workflow::Request;

/// Files larger than this are reported instead of scanned.
pub const MAX_SCANNED_FILE: u64 = 256 << 20;

/// Where a reference was found first.
#[derive(Debug, Clone)]
pub struct Found {
    pub request: Request,
    pub file: PathBuf,
    pub line: usize,
}

/// A problem in a project file, with its position.
#[derive(Debug, Clone)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)?;
        if let Some(c) = self.column {
            write!(f, ":{c}")?;
        }
        write!(f, ": {}", crate::commands::safe(&self.message))
    }
}

/// Every registry import in the project, one per distinct reference
/// (module, user names case-insensitively, pin and form), in file order;
/// and every problem found on the way.
pub fn project_imports(root: &Path, prefixes: &[String]) -> Result<(Vec<Found>, Vec<Problem>)> {
    let mut found: BTreeMap<(String, String, Option<String>, RefForm), Found> = BTreeMap::new();
    let mut problems = Vec::new();
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
        files.push((entry.into_path(), mode));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, mode) in files {
        let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        let problem = |line, message: String| Problem {
            file: rel.clone(),
            line,
            column: None,
            message,
        };
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if size > MAX_SCANNED_FILE {
            problems.push(problem(0, format!(
                "the file is {size} bytes, over the {MAX_SCANNED_FILE}-byte limit for scanning imports; split it, or move it out of the project"
            )));
            continue;
        }
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                problems.push(problem(0, format!("cannot be read: {e}")));
                continue;
            }
        };
        // mlld reads UTF-8; a stray invalid byte must not hide the imports.
        let text = String::from_utf8_lossy(&bytes);
        let outcome = scan_imports_checked(&text, mode, prefixes);
        for p in outcome.problems {
            problems.push(problem(p.line, p.message));
        }
        for site in outcome.imports {
            let r = &site.reference;
            let key = (
                r.user.to_ascii_lowercase(),
                r.module.clone(),
                r.pin.clone(),
                site.form,
            );
            found.entry(key).or_insert(Found {
                request: Request {
                    reference: site.reference,
                    form: site.form,
                },
                file: rel.clone(),
                line: site.line,
            });
        }
    }
    let mut out: Vec<Found> = found.into_values().collect();
    out.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Ok((out, problems))
}
