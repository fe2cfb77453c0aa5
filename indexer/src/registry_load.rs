//! Walks a registry checkout and reads every user's files, in parallel.

use std::path::{Path, PathBuf};

use mlld_schemas::{AdvisoryFile, Diagnostic, UserRegistry, check_advisories, check_registry};
use rayon::prelude::*;

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
    let mut folders = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .min_depth(1)
        .max_depth(1)
        .sort_by_file_name()
    {
        let entry = entry.map_err(std::io::Error::other)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().is_dir()
            && may_be_user_folder(&name)
            && (entry.path().join("registry.json").is_file()
                || entry.path().join("advisories.json").is_file())
        {
            folders.push((name, entry.into_path()));
        }
    }
    Ok(folders)
}

/// Reads and validates every user; one bad file never stops the others.
pub fn load(root: &Path) -> std::io::Result<LoadedRegistry> {
    let folders = user_folders(root)?;
    let results: Vec<(LoadedUser, Vec<Diagnostic>)> = folders
        .par_iter()
        .map(|(folder, dir)| load_user(folder, dir))
        .collect();
    let mut out = LoadedRegistry::default();
    for (user, diagnostics) in results {
        out.diagnostics.extend(diagnostics);
        out.users.push(user);
    }
    Ok(out)
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
    match std::fs::read_to_string(dir.join(name)) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            diagnostics.push(io_diagnostic(&format!("{folder}/{name}"), &e));
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
