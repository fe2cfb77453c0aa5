//! The project cache of versioned modules:
//! `.mlld/cache/registry/{author}/{name}/{version}/files/{relative path}`
//! for every file of the version, and `metadata.json` beside `files/`.
//!
//! An entry is staged whole in `.{version}.partial` beside it and renamed
//! into place, like the gist cache; every file is checked against its signed
//! SHA-256 before it is written. Checking an entry needs no snapshot: the
//! files present must hash to the lock's `contentHash` (the file's own hash
//! for a single file, mlld's directory hash otherwise) and the entry file to
//! its integrity.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use mlld_schemas::content_hash::directory_content_hash;
use mlld_schemas::lock::{VersionedCacheMetadata, VersionedLockEntry};
use mlld_schemas::names::format_timestamp;
use mlld_schemas::{ModuleRef, VersionRecord};

use crate::context::Context;
use crate::project::{CacheState, Project};
use crate::registry::Registry;

/// `.mlld/cache/registry/{author}/{name}/{version}`, after checking that
/// each part is a name that may become a path.
pub fn entry_dir(project: &Project, key: &str, version: &str) -> Result<PathBuf> {
    let r = ModuleRef::parse(key)?;
    mlld_schemas::names::check_user(&r.user).map_err(anyhow::Error::msg)?;
    mlld_schemas::version_spec::parse_version(version).map_err(anyhow::Error::msg)?;
    if r.module.starts_with('.') || version.contains('/') {
        bail!("refusing a cache path for {key}@{version}");
    }
    Ok(project
        .root()
        .join(".mlld/cache/registry")
        .join(&r.user)
        .join(&r.module)
        .join(version))
}

/// A relative file path of a version, checked: no `..`, no root, no empty parts.
pub fn safe_relative(path: &str) -> Result<&Path> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && !path.contains('\\')
        && p.components().all(|c| matches!(c, Component::Normal(_)));
    if !ok {
        bail!("`{}` is not a safe relative file path", path.escape_debug());
    }
    Ok(p)
}

/// What the cache holds for a versioned lock entry.
pub fn state(project: &Project, key: &str, entry: &VersionedLockEntry) -> CacheState {
    let Ok(dir) = entry_dir(project, key, &entry.version) else {
        return CacheState::Missing;
    };
    let meta: Option<VersionedCacheMetadata> = std::fs::read(dir.join("metadata.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let files_dir = dir.join("files");
    if !files_dir.is_dir() {
        return CacheState::Missing;
    }
    let Ok(files) = hashed_files(&files_dir) else {
        return CacheState::Tampered;
    };
    let single = matches!(files.as_slice(), [(_, hex)] if *hex == entry.content_hash);
    let listed = directory_content_hash(files.iter().map(|(p, h)| (p.as_str(), h.as_str())));
    if !single && listed != entry.content_hash {
        return CacheState::Tampered;
    }
    let Some(meta) = meta else {
        return CacheState::BadMetadata;
    };
    let entry_ok = files
        .iter()
        .any(|(p, h)| *p == meta.entry && format!("sha256:{h}") == entry.integrity);
    if !entry_ok {
        return CacheState::Tampered;
    }
    if meta.version == entry.version
        && meta.content_hash == entry.content_hash
        && meta.integrity == entry.integrity
    {
        CacheState::Valid
    } else {
        CacheState::BadMetadata
    }
}

/// Every regular file under `dir`, relative (with `/`), with its SHA-256 hex.
fn hashed_files(dir: &Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let kind = e.file_type()?;
            if kind.is_dir() {
                stack.push(e.path());
            } else if kind.is_file() {
                let rel = e.path().strip_prefix(dir)?.to_string_lossy().into_owned();
                out.push((rel, mlld_schemas::sha256_hex(&std::fs::read(e.path())?)));
            } else {
                bail!("{} is not a regular file", e.path().display());
            }
        }
    }
    Ok(out)
}

/// The entry file's bytes from the cache, checked against the lock.
pub fn entry_content(project: &Project, key: &str, entry: &VersionedLockEntry) -> Result<Vec<u8>> {
    let dir = entry_dir(project, key, &entry.version)?;
    let meta: VersionedCacheMetadata =
        serde_json::from_slice(&std::fs::read(dir.join("metadata.json"))?)?;
    let bytes = std::fs::read(dir.join("files").join(safe_relative(&meta.entry)?))?;
    if mlld_schemas::integrity_of(&bytes) != entry.integrity {
        bail!("{key}: the cached entry file does not match the lock; run `mlld-registry install`");
    }
    Ok(bytes)
}

/// Every file of `record`, read from the verified snapshot and checked
/// against its signed SHA-256 and size.
pub fn read_files(verified: &Registry, record: &VersionRecord) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::with_capacity(record.files.len());
    for f in &record.files {
        safe_relative(&f.path)?;
        let bytes = verified.read_blob(&f.sha256)?;
        if mlld_schemas::sha256_hex(&bytes) != f.sha256 || bytes.len() as u64 != f.size {
            bail!(
                "{} of version {} does not match its signed hash",
                f.path,
                record.version
            );
        }
        out.push((f.path.clone(), bytes));
    }
    Ok(out)
}

/// Writes the whole entry for `record`: staged, then renamed into place.
/// Call under [`Project::exclusive`].
pub fn write(
    ctx: &Context,
    key: &str,
    entry: &VersionedLockEntry,
    record: &VersionRecord,
    files: &[(String, Vec<u8>)],
) -> Result<()> {
    use std::io::ErrorKind;
    let dir = entry_dir(&ctx.project, key, &entry.version)?;
    let parent = dir.parent().expect("cache dirs have a parent");
    let staging = parent.join(format!(".{}.partial", entry.version));
    let context = || format!("writing the cache entry {}", dir.display());
    // Every directory from the project down is real: a symlinked `.mlld` or
    // `cache` is refused, never written through.
    ctx.project
        .fs()
        .create_dir_all(parent)
        .with_context(context)?;
    match std::fs::create_dir(&staging) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            std::fs::remove_dir_all(&staging).with_context(context)?;
            std::fs::create_dir(&staging).with_context(context)?;
        }
        Err(e) => return Err(e).with_context(context),
    }
    let mut size = 0;
    for (path, bytes) in files {
        let dest = staging.join("files").join(safe_relative(path)?);
        std::fs::create_dir_all(dest.parent().expect("files have a parent"))
            .with_context(context)?;
        std::fs::write(&dest, bytes).with_context(context)?;
        size += bytes.len() as u64;
    }
    let meta = VersionedCacheMetadata {
        import_path: key.to_string(),
        version: entry.version.clone(),
        content_hash: entry.content_hash.clone(),
        entry: record.entry.clone(),
        integrity: entry.integrity.clone(),
        cached_at: format_timestamp(ctx.now),
        size,
    };
    std::fs::write(staging.join("metadata.json"), meta.to_bytes()).with_context(context)?;
    if std::fs::rename(&staging, &dir).is_err() {
        // The entry exists (damaged): replace it whole.
        std::fs::remove_dir_all(&dir).with_context(context)?;
        std::fs::rename(&staging, &dir).with_context(context)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_become_files() {
        assert!(safe_relative("index.mld").is_ok());
        assert!(safe_relative("lib/a.mld").is_ok());
        for bad in ["", "../x", "a/../../x", "/etc/passwd", "a\\b", "./a"] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
    }
}
