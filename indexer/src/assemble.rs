//! Turns registry entries plus their gists into module records and blobs.

use std::collections::BTreeMap;

use mlld_schemas::import_ref::{ModuleRef, SourceMode, scan_imports};
use mlld_schemas::names;
use mlld_schemas::snapshot::{GistFile, ModuleRecord, RevisionRecord};
use mlld_schemas::{ModuleEntry, integrity_of};
use rayon::prelude::*;
use serde::Serialize;

use crate::blobs::BlobDir;
use crate::gist::{FetchError, Gist, GistSource};
use crate::module_file;

/// GitHub serves file content up to 1 MB inline; files over 10 MB cannot be
/// had through the API at all, and no mlld module is that large.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// One registered module to index.
pub struct Job<'a> {
    pub user: &'a str,
    pub name: &'a str,
    pub entry: &'a ModuleEntry,
}

/// A module left out of the snapshot, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Rejection {
    /// `user/module`.
    pub module: String,
    pub gist: String,
    pub reason: String,
}

/// A module record plus the raw references its content makes, not yet
/// matched against the registry.
pub struct Indexed {
    pub record: ModuleRecord,
    pub imports: Vec<ModuleRef>,
}

/// Fetches and content-addresses every job in parallel.
pub fn index_all(
    jobs: &[Job<'_>],
    source: &dyn GistSource,
    blobs: &BlobDir,
) -> Vec<Result<Indexed, Rejection>> {
    jobs.par_iter()
        .map(|job| index_one(job, source, blobs))
        .collect()
}

fn index_one(
    job: &Job<'_>,
    source: &dyn GistSource,
    blobs: &BlobDir,
) -> Result<Indexed, Rejection> {
    let reject = |reason: String| Rejection {
        module: format!("{}/{}", job.user, job.name),
        gist: job.entry.gist.clone(),
        reason,
    };
    let gist = source.fetch(&job.entry.gist).map_err(|e| match e {
        FetchError::NotFound => reject(format!(
            "gist {} was not found (deleted, or made private)",
            job.entry.gist
        )),
        FetchError::Failed(msg) => reject(format!(
            "gist {} could not be fetched: {msg}",
            job.entry.gist
        )),
    })?;
    check_owner(job.user, &gist).map_err(reject)?;
    let (current, imports) = capture_revision(job.name, &gist, source, blobs).map_err(reject)?;
    let record = ModuleRecord {
        user: job.user.to_string(),
        name: job.name.to_string(),
        gist: job.entry.gist.clone(),
        description: job.entry.description.clone(),
        tags: job.entry.tags.clone(),
        created: job.entry.created.clone(),
        updated: gist.updated_at.clone(),
        current,
        history: Vec::new(),
    };
    Ok(Indexed { record, imports })
}

/// A user may only register their own gists.
fn check_owner(user: &str, gist: &Gist) -> Result<(), String> {
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

/// Content-addresses every file of the gist's newest revision.
fn capture_revision(
    module: &str,
    gist: &Gist,
    source: &dyn GistSource,
    blobs: &BlobDir,
) -> Result<(RevisionRecord, Vec<ModuleRef>), String> {
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
            ));
        }
        let bytes = match (&file.content, file.truncated) {
            (Some(content), false) => content.as_bytes().to_vec(),
            _ => source
                .fetch_raw(file)
                .map_err(|e| format!("file `{}`: {e}", file.filename))?,
        };
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(format!(
                "file `{}` is over the {MAX_FILE_BYTES}-byte limit",
                file.filename
            ));
        }
        let sha256 = blobs
            .put(&bytes)
            .map_err(|e| format!("storing file `{}`: {e}", file.filename))?;
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
    let text = String::from_utf8(bytes.clone())
        .map_err(|_| format!("module file `{file_name}` is not UTF-8 text"))?;
    let mode = SourceMode::for_file_name(&file_name).unwrap_or(SourceMode::Strict);
    let imports = scan_imports(&text, mode, &[])
        .into_iter()
        .map(|site| site.reference)
        .collect();
    let record = RevisionRecord {
        revision: newest.version.clone(),
        committed_at: newest.committed_at.clone(),
        file: file_name,
        integrity: integrity_of(&bytes),
        size: bytes.len() as u64,
        files,
        dependencies: Vec::new(),
    };
    Ok((record, imports))
}

/// Matches each module's imports against the accepted modules: known ones
/// become `dependencies` (canonical `user/module`), the rest are returned as
/// `(module, reference)` pairs for the report.
pub fn link_dependencies(indexed: &mut [Indexed]) -> Vec<(String, String)> {
    let known: BTreeMap<(String, String), String> = indexed
        .iter()
        .map(|i| {
            (
                (i.record.user.to_ascii_lowercase(), i.record.name.clone()),
                i.record.full_name(),
            )
        })
        .collect();
    let mut unresolved = Vec::new();
    for item in indexed.iter_mut() {
        let own = item.record.full_name();
        let mut deps = Vec::new();
        for r in &item.imports {
            match known.get(&(r.user.to_ascii_lowercase(), r.module.clone())) {
                Some(name) if *name != own => deps.push(name.clone()),
                Some(_) => {}
                None => unresolved.push((own.clone(), r.to_string())),
            }
        }
        deps.sort();
        deps.dedup();
        item.record.current.dependencies = deps;
    }
    unresolved
}
