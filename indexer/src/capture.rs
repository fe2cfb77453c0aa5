//! Capturing one revision of a gist: ownership, the module file, content
//! addressing, and the registry imports its content makes.

use mlld_schemas::import_ref::{ModuleRef, SourceMode, scan_imports};
use mlld_schemas::names;
use mlld_schemas::snapshot::{GistFile, RevisionRecord};

use crate::blobs::BlobDir;
use crate::gist::{Gist, GistSource, MAX_FILE_BYTES};
use crate::module_file;

/// A user may only register their own gists.
pub fn check_owner(user: &str, gist: &Gist) -> Result<(), String> {
    match &gist.owner {
        Some(owner) if names::same_user(&owner.login, user) => Ok(()),
        Some(owner) => Err(format!(
            "gist {} is owned by `{}`, not `{user}`: a user may only register their own gists",
            gist.id, owner.login
        )),
        None => Err(format!(
            "gist {} has no owner (anonymous gists cannot be registered)",
            gist.id
        )),
    }
}

/// Why a revision could not be captured.
pub enum CaptureError {
    /// The gist's content is not acceptable (no module file, too large, not UTF-8).
    Rejected(String),
    /// A file could not be had right now (its raw URL failed): try again next build.
    Unavailable(String),
}

impl From<String> for CaptureError {
    fn from(reason: String) -> Self {
        CaptureError::Rejected(reason)
    }
}

/// Content-addresses every file of the gist's newest revision.
pub fn capture_newest(
    module: &str,
    gist: &Gist,
    source: &dyn GistSource,
    blobs: &BlobDir,
) -> Result<(RevisionRecord, Vec<ModuleRef>), CaptureError> {
    let newest = gist
        .history
        .first()
        .ok_or_else(|| format!("gist {} has no revision history", gist.id))?;
    names::check_revision(&newest.version)?;
    let file_name = module_file::select(module, gist.files.values().map(|f| f.filename.as_str()))
        .ok_or_else(|| {
            format!(
                "gist {} has no module file (.mld, .mlld, .mld.md or .mlld.md)",
                gist.id
            )
        })?
        .to_string();
    let mut files = Vec::with_capacity(gist.files.len());
    let mut module_bytes = None;
    for file in gist.files.values() {
        if file.size > MAX_FILE_BYTES {
            return Err(format!(
                "file `{}` is {} bytes, over the {MAX_FILE_BYTES}-byte limit",
                file.filename, file.size
            )
            .into());
        }
        let bytes = match (&file.content, file.truncated) {
            (Some(content), false) => content.as_bytes().to_vec(),
            _ => source
                .fetch_raw(file)
                .map_err(|e| CaptureError::Unavailable(format!("file `{}`: {e}", file.filename)))?,
        };
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(format!(
                "file `{}` is over the {MAX_FILE_BYTES}-byte limit",
                file.filename
            )
            .into());
        }
        let sha256 = blobs.put(&bytes).map_err(|e| {
            CaptureError::Unavailable(format!("storing file `{}`: {e}", file.filename))
        })?;
        files.push(GistFile {
            name: file.filename.clone(),
            sha256,
            size: bytes.len() as u64,
        });
        if file.filename == file_name {
            module_bytes = Some(bytes);
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let bytes = module_bytes.expect("the selected file is one of the gist's files");
    let imports = scan_module(&file_name, &bytes)?;
    let record = RevisionRecord {
        revision: newest.version.clone(),
        committed_at: newest.committed_at.clone(),
        file: file_name,
        integrity: mlld_schemas::integrity_of(&bytes),
        size: bytes.len() as u64,
        files,
        dependencies: Vec::new(),
    };
    Ok((record, imports))
}

/// The registry references a module file's content makes.
pub fn scan_module(file_name: &str, bytes: &[u8]) -> Result<Vec<ModuleRef>, String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| format!("module file `{file_name}` is not UTF-8 text"))?;
    let mode = SourceMode::for_file_name(file_name).unwrap_or(SourceMode::Strict);
    Ok(scan_imports(text, mode, &[])
        .into_iter()
        .map(|site| site.reference)
        .collect())
}
