//! Walks a registry checkout and reads every user's files, in parallel.

use std::path::{Path, PathBuf};

use mlld_schemas::{AdvisoryFile, Diagnostic, UserRegistry, check_advisories, check_registry};
use rayon::prelude::*;

use crate::io_threads::on_io_threads;

/// One user folder. Either file may be unusable; the other still counts
/// (a broken registry.json must not hide that user's advisories).
#[derive(Debug)]
pub struct LoadedUser {
    /// The folder name, which equals the files' `author`.
    pub folder: String,
    pub registry: Option<UserRegistry>,
    pub advisories: Option<AdvisoryFile>,
}

/// Everything read from a registry checkout.
#[derive(Debug, Default)]
pub struct LoadedRegistry {
    /// Sorted by folder name.
    pub users: Vec<LoadedUser>,
    /// Every warning and error, with file, JSON path and line:column.
    pub diagnostics: Vec<Diagnostic>,
}

impl LoadedRegistry {
    /// User folders whose registry.json could not be used at all.
    pub fn rejected_users(&self) -> impl Iterator<Item = &str> {
        self.users
            .iter()
            .filter(|u| u.registry.is_none())
            .map(|u| u.folder.as_str())
    }
}

/// Folders at a registry's root that belong to the repository, never to a
/// user: today's `modules/` tree, generated indexes (`_index/`), tooling
/// and documentation. A GitHub login cannot start with `_` or `.` either.
pub const NOT_USER_FOLDERS: [&str; 4] = ["modules", "tools", "docs", "node_modules"];

/// Whether a root folder named `name` may be a user folder.
pub fn may_be_user_folder(name: &str) -> bool {
    !name.starts_with('.') && !name.starts_with('_') && !NOT_USER_FOLDERS.contains(&name)
}

/// User folders are the directories directly below `root` that hold a
/// `registry.json` or an `advisories.json`; hidden folders (`.git`,
/// `.github`), `_index/` and the [`NOT_USER_FOLDERS`] are skipped. Root
/// files (`modules.json`, `allowlist.json`, `README.md`) are never users.
pub fn user_folders(root: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut candidates = Vec::new();
    // One directory read; the entry's type comes with it, without a stat.
    // Sorted after, once, by name (walkdir's sort takes each name apart
    // from its path at every comparison: seconds at 100,000 users); the
    // path breaks a tie between names only their lossy forms share.
    for entry in walkdir::WalkDir::new(root).min_depth(1).max_depth(1) {
        let entry = entry.map_err(std::io::Error::other)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().is_dir() && may_be_user_folder(&name) {
            candidates.push((name, entry.into_path()));
        }
    }
    candidates.sort_unstable();
    // Present in any form: a FIFO or a link is then refused by name, not skipped.
    let holds_files = |(_, dir): &(String, PathBuf)| {
        present(&dir.join("registry.json")) || present(&dir.join("advisories.json"))
    };
    Ok(on_io_threads(|| {
        candidates.into_par_iter().filter(holds_files).collect()
    }))
}

fn present(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// User folders read ahead of the parsers at once, on the I/O threads (a
/// checkout just cloned, or pushed out of the page cache by the last
/// build's output, is read from disk one small file at a time). Those
/// threads only warm the page cache: the parsed registry is allocated on
/// rayon's usual threads, which later stages keep busy (see `io_threads`).
const READ_AHEAD: usize = 2048;

/// The largest registry.json or advisories.json read.
const MAX_USER_FILE: u64 = 16 << 20;

/// Reads and validates every user; one bad file never stops the others.
/// The files of the next few thousand folders are read ahead on the I/O
/// threads while these are parsed.
pub fn load(root: &Path) -> std::io::Result<LoadedRegistry> {
    let folders = user_folders(root)?;
    let batches: Vec<&[(String, PathBuf)]> = folders.chunks(READ_AHEAD).collect();
    let mut out = LoadedRegistry::default();
    if let Some(first) = batches.first() {
        read_ahead(first);
    }
    for (k, batch) in batches.iter().enumerate() {
        let ahead = batches.get(k + 1);
        let (_, results) = rayon::join(
            || ahead.map(|b| read_ahead(b)),
            || (batch.par_iter().map(|(f, dir)| load_user(f, dir))).collect::<Vec<_>>(),
        );
        for (user, diagnostics) in results {
            out.diagnostics.extend(diagnostics);
            out.users.push(user);
        }
    }
    Ok(out)
}

/// Reads the folders' files into the page cache, with the same checks as
/// the parsers' reads, into nothing (no file is held whole).
fn read_ahead(folders: &[(String, PathBuf)]) {
    on_io_threads(|| {
        folders.par_iter().for_each(|(_, dir)| {
            for name in ["registry.json", "advisories.json"] {
                let root = dir.parent().unwrap_or(dir);
                let _ = read_into_cache(root, dir, name);
            }
        });
    });
}

fn read_into_cache(root: &Path, dir: &Path, name: &str) -> std::io::Result<u64> {
    use std::io::Read as _;
    let file = mlld_fsutil::open_regular_in_dir(root, dir, name)?;
    std::io::copy(&mut file.take(MAX_USER_FILE), &mut std::io::sink())
}

fn load_user(folder: &str, dir: &Path) -> (LoadedUser, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let registry_src = read_optional(dir, folder, "registry.json", &mut diagnostics);
    let advisories_src = read_optional(dir, folder, "advisories.json", &mut diagnostics);
    if registry_src.is_none() {
        diagnostics.push(missing_registry(folder));
    }
    let registry = registry_src.and_then(|src| {
        let checked = check_registry(&format!("{folder}/registry.json"), folder, &src);
        diagnostics.extend(checked.diagnostics);
        checked.value
    });
    let advisories = advisories_src.and_then(|src| {
        let checked = check_advisories(&format!("{folder}/advisories.json"), folder, &src);
        diagnostics.extend(checked.diagnostics);
        checked.value
    });
    (
        LoadedUser {
            folder: folder.to_string(),
            registry,
            advisories,
        },
        diagnostics,
    )
}

/// The file's text; `None` when it is absent or unreadable (then reported).
fn read_optional(
    dir: &Path,
    folder: &str,
    name: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<String> {
    // Only a regular file inside the registry: a FIFO would hang the build,
    // and a link out of the registry would publish (and log) another file.
    let root = dir.parent().unwrap_or(dir);
    let file = format!("{folder}/{name}");
    // `dir` is a folder the walk found directly under the root, not a link.
    let bytes = match mlld_fsutil::read_regular_in_dir(root, dir, name, MAX_USER_FILE) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            diagnostics.push(io_diagnostic(&file, &e));
            return None;
        }
    };
    match mlld_schemas::locate::utf8_text(&bytes) {
        Ok(text) => Some(text.to_string()),
        Err((line, column, _)) => {
            let mut d = io_diagnostic(&file, &std::io::Error::other("it is not UTF-8 text"));
            (d.line, d.column) = (line, column);
            diagnostics.push(d);
            None
        }
    }
}

fn missing_registry(folder: &str) -> Diagnostic {
    Diagnostic {
        level: mlld_schemas::Level::Warning,
        file: format!("{folder}/registry.json"),
        path: mlld_schemas::JsonPath::root(),
        line: 0,
        column: 0,
        message: "the folder has advisories.json but no registry.json".into(),
        help: Some("add a registry.json if this user registers modules".into()),
    }
}

fn io_diagnostic(file: &str, err: &std::io::Error) -> Diagnostic {
    Diagnostic {
        level: mlld_schemas::Level::Error,
        file: file.to_string(),
        path: mlld_schemas::JsonPath::root(),
        line: 0,
        column: 0,
        message: format!("cannot read the file: {err}"),
        help: Some("check the file's permissions and encoding (UTF-8)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(user: &str) -> String {
        serde_json::json!({
            "version": "1.0.0", "updated": "2024-09-01T12:00:00Z", "author": user,
            "modules": { "tool": { "gist": "0f3c9a7e5b2d4c6e8a1f3b5d7c9e1a2b", "description": "d",
                "tags": [], "created": "2024-09-01T00:00:00Z" } }
        })
        .to_string()
    }

    #[test]
    fn every_folder_is_read_in_order_across_read_ahead_batches() {
        let dir = tempfile::tempdir().unwrap();
        let users = 2 * READ_AHEAD + 3;
        let name = |i: usize| format!("user-{i:05}");
        for i in 0..users {
            let folder = dir.path().join(name(i));
            std::fs::create_dir(&folder).unwrap();
            let text = if i == READ_AHEAD + 1 {
                "{ broken".to_string()
            } else {
                registry(&name(i))
            };
            std::fs::write(folder.join("registry.json"), text).unwrap();
        }
        // Not users: no file of a user's, a repository folder, a hidden one.
        for skipped in ["empty", "modules", ".git"] {
            std::fs::create_dir(dir.path().join(skipped)).unwrap();
        }
        std::fs::write(
            dir.path().join("modules/registry.json"),
            registry("modules"),
        )
        .unwrap();

        let loaded = load(dir.path()).unwrap();
        let folders: Vec<&str> = loaded.users.iter().map(|u| u.folder.as_str()).collect();
        let want: Vec<String> = (0..users).map(name).collect();
        assert_eq!(folders, want);
        let rejected: Vec<&str> = loaded.rejected_users().collect();
        assert_eq!(rejected, [name(READ_AHEAD + 1)]);
        assert!(
            loaded.users[users - 1]
                .registry
                .as_ref()
                .is_some_and(|r| r.modules.len() == 1)
        );
        assert!(
            loaded
                .diagnostics
                .iter()
                .any(|d| d.file == format!("{}/registry.json", name(READ_AHEAD + 1)))
        );
    }
}
