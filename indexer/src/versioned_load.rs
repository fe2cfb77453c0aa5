//! Today's registry layout: `modules/{author}/{name}/{version}.json` beside
//! `metadata.json` and `tags.json`. Walks the tree and checks every file;
//! one bad file rejects only its version (or, for `metadata.json`, its
//! module), and stray files are warned about, never fatal.

use std::path::Path;

use mlld_schemas::versioned::{
    ModuleMetadata, Source, VersionFile, check_metadata, check_version_file, version_of_file_name,
};
use mlld_schemas::{Diagnostic, JsonPath, Level, names};
use rayon::prelude::*;
use serde::Serialize;

/// The folder of today's layout under a registry's root.
pub const MODULES_DIR: &str = "modules";
/// A registry file larger than this is not read (no version file comes near).
const MAX_RECORD_BYTES: u64 = 1 << 20;

/// Which layouts a registry directory holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Layouts {
    /// `{user}/registry.json` folders (the registry guide's Phase 1, gists).
    pub user_folders: bool,
    /// `modules/{author}/{name}/{version}.json` (versioned modules).
    pub versioned: bool,
}

impl Layouts {
    pub fn describe(&self) -> &'static str {
        match (self.user_folders, self.versioned) {
            (true, true) => "both: user folders (gists) and modules/ (versioned)",
            (true, false) => "user folders (gists)",
            (false, true) => "modules/ (versioned)",
            (false, false) => "none",
        }
    }
}

/// One version file that passed every check.
#[derive(Clone, Debug)]
pub struct LoadedVersion {
    /// The file, relative to the registry root.
    pub file: String,
    pub record: VersionFile,
    pub source: Source,
}

/// A version (or module) left out, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VersionRejection {
    /// `@author/name`.
    pub module: String,
    pub version: String,
    /// The file the decision is about, relative to the registry root.
    pub file: String,
    pub reason: String,
}

/// One module folder.
#[derive(Clone, Debug)]
pub struct LoadedModule {
    pub author: String,
    pub name: String,
    pub metadata: Option<ModuleMetadata>,
    /// `tags.json` (relative path and text), checked once the accepted versions are known.
    pub tags: Option<(String, String)>,
    /// Versions whose file passed, in file-name order.
    pub versions: Vec<LoadedVersion>,
}

impl LoadedModule {
    pub fn full_name(&self) -> String {
        format!("@{}/{}", self.author, self.name)
    }
}

#[derive(Debug, Default)]
pub struct LoadedVersioned {
    /// Sorted by author, then name.
    pub modules: Vec<LoadedModule>,
    pub rejected: Vec<VersionRejection>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Which layouts `root` holds: user folders with a `registry.json` or
/// `advisories.json`, and a `modules/` folder.
pub fn detect(root: &Path) -> std::io::Result<Layouts> {
    Ok(Layouts {
        user_folders: !crate::registry_load::user_folders(root)?.is_empty(),
        versioned: has_modules_dir(root),
    })
}

/// Whether `root` holds today's `modules/` layout.
pub fn has_modules_dir(root: &Path) -> bool {
    root.join(MODULES_DIR).is_dir()
}

/// Reads every module folder under `root/modules`; nothing when it is absent.
pub fn load(root: &Path) -> std::io::Result<LoadedVersioned> {
    let mut out = LoadedVersioned::default();
    let modules_dir = root.join(MODULES_DIR);
    if !modules_dir.is_dir() {
        return Ok(out);
    }
    let mut folders = Vec::new();
    for (author, kind) in sorted_entries(&modules_dir)? {
        let rel = format!("{MODULES_DIR}/{author}");
        if !kind.is_dir() {
            out.diagnostics
                .push(stray(&rel, "modules/ holds author folders only"));
            continue;
        }
        if let Err(e) = names::check_user(&author) {
            out.diagnostics.push(problem(
                Level::Error,
                &rel,
                format!("`{author}` is not an author name: {e}"),
                "name the folder after the author's GitHub login",
            ));
            continue;
        }
        for (name, kind) in sorted_entries(&modules_dir.join(&author))? {
            let rel = format!("{rel}/{name}");
            if !kind.is_dir() {
                out.diagnostics
                    .push(stray(&rel, "author folders hold module folders only"));
            } else if let Err(e) = names::check_module(&name) {
                out.diagnostics.push(problem(
                    Level::Error,
                    &rel,
                    format!("`{name}` is not a module name: {e}"),
                    "rename the folder to a valid module name",
                ));
            } else {
                folders.push((author.clone(), name));
            }
        }
    }
    let loaded: Vec<_> = folders
        .par_iter()
        .map(|(author, name)| load_module(root, author, name))
        .collect();
    for (module, rejected, diagnostics) in loaded {
        out.rejected.extend(rejected);
        out.diagnostics.extend(diagnostics);
        out.modules.extend(module);
    }
    Ok(out)
}

type ModuleLoad = (Option<LoadedModule>, Vec<VersionRejection>, Vec<Diagnostic>);

fn load_module(root: &Path, author: &str, name: &str) -> ModuleLoad {
    let dir_rel = format!("{MODULES_DIR}/{author}/{name}");
    let dir = root.join(&dir_rel);
    let full_name = format!("@{author}/{name}");
    let mut diagnostics = Vec::new();
    let mut rejected = Vec::new();
    let mut versions = Vec::new();
    let mut metadata_src = None;
    let mut tags = None;
    let entries = match sorted_entries(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            diagnostics.push(io_problem(&dir_rel, &e));
            return (None, rejected, diagnostics);
        }
    };
    for (file_name, kind) in entries {
        let rel = format!("{dir_rel}/{file_name}");
        if !kind.is_file() {
            diagnostics.push(stray(
                &rel,
                "module folders hold version files, metadata.json and tags.json only",
            ));
            continue;
        }
        let text = match read_record(&dir.join(&file_name)) {
            Ok(text) => text,
            Err(e) => {
                diagnostics.push(problem(
                    Level::Error,
                    &rel,
                    e,
                    "keep registry files small UTF-8 JSON",
                ));
                if let Some(version) = version_of_file_name(&file_name) {
                    rejected.push(rejection(
                        &full_name,
                        version,
                        &rel,
                        "the file cannot be read",
                    ));
                }
                continue;
            }
        };
        match file_name.as_str() {
            "metadata.json" => metadata_src = Some((rel, text)),
            "tags.json" => tags = Some((rel, text)),
            _ => match version_of_file_name(&file_name) {
                Some(version) => {
                    let checked = check_version_file(&rel, version, &text);
                    let first_error = checked.errors().next().map(ToString::to_string);
                    diagnostics.extend(checked.diagnostics);
                    match checked.value {
                        Some((record, source)) => versions.push(LoadedVersion {
                            file: rel,
                            record,
                            source,
                        }),
                        None => rejected.push(rejection(
                            &full_name,
                            version,
                            &rel,
                            &first_error.unwrap_or_else(|| "the version file is invalid".into()),
                        )),
                    }
                }
                None => diagnostics.push(stray(
                    &rel,
                    "version files are named MAJOR.MINOR.PATCH[-prerelease].json",
                )),
            },
        }
    }
    let metadata = match metadata_src {
        Some((rel, text)) => {
            let checked = check_metadata(&rel, author, name, &text);
            let first_error = checked.errors().next().map(ToString::to_string);
            diagnostics.extend(checked.diagnostics);
            match checked.value {
                Some(meta) => Some(meta),
                None => {
                    // Metadata names the module's owners: a module whose metadata is wrong is not published.
                    let reason = format!(
                        "metadata.json is invalid: {}",
                        first_error.unwrap_or_default()
                    );
                    rejected.extend(
                        versions
                            .drain(..)
                            .map(|v| rejection(&full_name, &v.record.version, &v.file, &reason)),
                    );
                    return (None, rejected, diagnostics);
                }
            }
        }
        None => {
            diagnostics.push(problem(
                Level::Warning,
                &format!("{dir_rel}/metadata.json"),
                "the module has no metadata.json".into(),
                "add metadata.json with name, author, about and owners",
            ));
            None
        }
    };
    let module = LoadedModule {
        author: author.to_string(),
        name: name.to_string(),
        metadata,
        tags,
        versions,
    };
    (Some(module), rejected, diagnostics)
}

fn rejection(module: &str, version: &str, file: &str, reason: &str) -> VersionRejection {
    VersionRejection {
        module: module.to_string(),
        version: version.to_string(),
        file: file.to_string(),
        reason: reason.to_string(),
    }
}

/// Directory entries (name, type) sorted by name; symlinks are reported as what they are, never followed.
fn sorted_entries(dir: &Path) -> std::io::Result<Vec<(String, std::fs::FileType)>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        entries.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.file_type()?,
        ));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

fn read_record(path: &Path) -> Result<String, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the file: {e}"))?
        .len();
    if len > MAX_RECORD_BYTES {
        return Err(format!(
            "the file is {len} bytes, over the {MAX_RECORD_BYTES}-byte limit"
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read the file: {e}"))
}

fn stray(file: &str, why: &str) -> Diagnostic {
    problem(
        Level::Warning,
        file,
        format!("not part of the module layout; ignored ({why})"),
        "move or remove the file",
    )
}

fn io_problem(file: &str, err: &std::io::Error) -> Diagnostic {
    problem(
        Level::Error,
        file,
        format!("cannot read the folder: {err}"),
        "check the folder's permissions",
    )
}

fn problem(level: Level, file: &str, message: String, help: &str) -> Diagnostic {
    Diagnostic {
        level,
        file: file.to_string(),
        path: JsonPath::root(),
        line: 0,
        column: 0,
        message,
        help: Some(help.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn one_bad_file_rejects_only_its_version_and_strays_are_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let good = serde_json::json!({"version": "1.0.0", "source": {"type": "github",
            "url": format!("https://raw.githubusercontent.com/ann/m/{commit}/x.mld"), "contentHash": "a".repeat(64)}});
        write(root, "modules/ann/x/1.0.0.json", &good.to_string());
        write(
            root,
            "modules/ann/x/1.0.1.json",
            "{\n  \"version\": \"1.0.1\",\n}",
        );
        write(
            root,
            "modules/ann/x/metadata.json",
            r#"{"name":"x","author":"ann","about":"X"}"#,
        );
        write(root, "modules/ann/registry.json", "{}");
        write(root, "modules/ann/x/notes.txt", "hi");
        let loaded = load(root).unwrap();
        assert_eq!(loaded.modules.len(), 1);
        assert_eq!(loaded.modules[0].versions.len(), 1);
        assert_eq!(loaded.rejected.len(), 1);
        let r = &loaded.rejected[0];
        assert_eq!((r.module.as_str(), r.version.as_str()), ("@ann/x", "1.0.1"));
        assert!(
            r.reason.starts_with("modules/ann/x/1.0.1.json:3:1:"),
            "{}",
            r.reason
        );
        let warned: Vec<_> = loaded
            .diagnostics
            .iter()
            .filter(|d| !d.is_error())
            .map(|d| d.file.as_str())
            .collect();
        assert!(warned.contains(&"modules/ann/registry.json"), "{warned:?}");
        assert!(warned.contains(&"modules/ann/x/notes.txt"), "{warned:?}");
        let layouts = detect(root).unwrap();
        assert_eq!(
            layouts,
            Layouts {
                user_folders: false,
                versioned: true
            }
        );
    }

    #[test]
    fn metadata_of_another_folder_rejects_the_module() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "modules/ann/x/1.0.0.json",
            r#"{"version":"1.0.0","source":{"type":"gist","gistId":"a1f3e09a42db6c680b454f6f93efa9d8"}}"#,
        );
        write(
            root,
            "modules/ann/x/metadata.json",
            r#"{"name":"x","author":"mallory"}"#,
        );
        let loaded = load(root).unwrap();
        assert!(loaded.modules.is_empty());
        assert!(
            loaded.rejected[0]
                .reason
                .contains("metadata.json is invalid")
        );
    }
}
