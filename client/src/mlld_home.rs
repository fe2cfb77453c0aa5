//! The mlld interpreter's own files, kept current by `install`, `resolve`
//! and `update` so that `mlld` runs the project offline:
//!
//! - `mlld-lock.json` at the project root (lockfileVersion 1), one entry per
//!   locked module, merged so that entries and fields this client does not
//!   own are kept;
//! - mlld's content cache in the user's home,
//!   `$HOME/.mlld/cache/sha256/{hex[0:2]}/{hex[2:]}/content.mld` with its
//!   `metadata.json`, and `index.json` mapping import paths to hashes.
//!
//! The home cache is the one place the client writes outside the project and
//! its store; `.mlld/config.json` `"mlldLock": false` turns both files off.
//! Writes are atomic, never go through a symlink, and never replace a cache
//! entry whose content differs (that is reported and left alone).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use mlld_fsutil::Confined;
use mlld_schemas::mlld_files::{
    MLLD_LOCK_NAME, MlldCacheMetadata, MlldLockEntry, cache_entry_dir, merge_cache_index,
    merge_mlld_lock,
};
use mlld_schemas::names::format_timestamp;

use crate::context::Context;

/// One locked module as mlld sees it.
#[derive(Clone, Debug)]
pub struct MlldModule {
    /// `@author/name` (Phase-1 modules: `@user/module`).
    pub key: String,
    /// What the project asked for: a range, a tag or `latest`.
    pub requested: String,
    /// The exact version (Phase-1: the gist revision).
    pub registry_version: String,
    /// `registry://@author/name@<exact>` (Phase-1: `mlld://gist/{user}/{gist}`).
    pub source: String,
    /// The bytes an import loads, already checked against the lock.
    pub entry: Vec<u8>,
}

/// Whether the project keeps mlld's files (on unless `"mlldLock": false`).
pub fn enabled(ctx: &Context) -> Result<bool> {
    Ok(ctx.project_config()?.mlld_lock.unwrap_or(true))
}

/// Fails early, before anything is written, when `mlld-lock.json` cannot be
/// merged (invalid JSON, another lockfileVersion, a symlink).
pub fn check(ctx: &Context) -> Result<()> {
    if !enabled(ctx)? {
        return Ok(());
    }
    let existing = read_lock(ctx.project.root())?;
    merge_mlld_lock(existing.as_deref(), &[], "")
        .map_err(|e| lock_error(ctx.project.root(), &e))?;
    Ok(())
}

/// Brings `mlld-lock.json` and the home cache up to date with `modules`.
/// Returns warnings about cache entries left alone.
pub fn update(ctx: &Context, modules: &[MlldModule]) -> Result<Vec<String>> {
    if !enabled(ctx)? || modules.is_empty() {
        return Ok(Vec::new());
    }
    let now = format_timestamp(ctx.now);
    let root = ctx.project.root();
    // New entries go in name order (existing ones keep their place).
    let mut modules = modules.to_vec();
    modules.sort_by(|a, b| a.key.cmp(&b.key));
    modules.dedup_by(|a, b| a.key == b.key);
    let modules = &modules[..];
    let entries: Vec<(String, MlldLockEntry)> = modules
        .iter()
        .map(|m| {
            let hex = mlld_schemas::sha256_hex(&m.entry);
            let entry = MlldLockEntry {
                version: m.requested.clone(),
                registry_version: m.registry_version.clone(),
                integrity: format!("sha256:{hex}"),
                resolved: hex,
                source: m.source.clone(),
                fetched_at: now.clone(),
            };
            (m.key.clone(), entry)
        })
        .collect();
    let existing = read_lock(root)?;
    let merged =
        merge_mlld_lock(existing.as_deref(), &entries, &now).map_err(|e| lock_error(root, &e))?;
    if let Some(text) = merged {
        let path = root.join(MLLD_LOCK_NAME);
        ctx.project
            .fs()
            .write_atomic(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else {
        return Ok(vec![
            "HOME is not set: mlld's content cache (~/.mlld/cache) was not updated".into(),
        ]);
    };
    let mut warnings = Vec::new();
    if let Err(e) = update_cache(Path::new(&home), modules, &now, &mut warnings) {
        warnings.push(format!("mlld's content cache was not updated: {e:#}"));
    }
    Ok(warnings)
}

/// `$HOME/.mlld/cache/sha256`.
pub fn cache_root(home: &Path) -> PathBuf {
    home.join(".mlld/cache/sha256")
}

fn update_cache(
    home: &Path,
    modules: &[MlldModule],
    now: &str,
    warnings: &mut Vec<String>,
) -> Result<()> {
    // The home directory itself may be a link; nothing below it may be.
    let fs = Confined::new(home);
    let root = cache_root(home);
    fs.create_dir_all(&root)
        .with_context(|| format!("creating {}", root.display()))?;
    let mut index = Vec::new();
    for m in modules {
        let meta = MlldCacheMetadata::new(&m.entry, &m.source, &m.key, now);
        let dir = root.join(cache_entry_dir(&meta.hash));
        fs.create_dir_all(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let content = dir.join("content.mld");
        fs.check(&content)?;
        match std::fs::read(&content) {
            Ok(bytes) if bytes != m.entry => {
                warnings.push(format!(
                    "{} holds other bytes than {} {} (sha256 {}); it was left alone, remove it if mlld should cache this module",
                    content.display(),
                    m.key,
                    m.registry_version,
                    meta.hash
                ));
                continue;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs.write_atomic(&content, &m.entry)
                    .with_context(|| format!("writing {}", content.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", content.display())),
        }
        let meta_path = dir.join("metadata.json");
        fs.check(&meta_path)?;
        // An intact entry keeps its metadata (and its `cachedAt`).
        let current: Option<serde_json::Value> = std::fs::read(&meta_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let intact = current.as_ref().is_some_and(|v| {
            v["hash"] == meta.hash.as_str() && v["integrity"] == meta.integrity.as_str()
        });
        if !intact {
            fs.write_atomic(&meta_path, meta.to_text().as_bytes())
                .with_context(|| format!("writing {}", meta_path.display()))?;
        }
        index.push((m.key.clone(), meta.hash));
    }
    let index_path = root.join("index.json");
    fs.check(&index_path)?;
    let existing = match std::fs::read_to_string(&index_path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", index_path.display())),
    };
    match merge_cache_index(existing.as_deref(), &index) {
        Ok(Some(text)) => fs
            .write_atomic(&index_path, text.as_bytes())
            .with_context(|| format!("writing {}", index_path.display()))?,
        Ok(None) => {}
        Err(e) => bail!("{}: {e}; it was left alone", index_path.display()),
    }
    Ok(())
}

fn read_lock(root: &Path) -> Result<Option<String>> {
    // A regular file only: a FIFO or a link leaving the project is refused.
    crate::input::read_text(&root.join(MLLD_LOCK_NAME))
}

fn lock_error(root: &Path, e: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: {e}; it was left untouched. Fix it, or set \"mlldLock\": false in .mlld/config.json to stop keeping mlld's files",
        root.join(MLLD_LOCK_NAME).display()
    )
}

/// mlld's view of the lock entries under `keys` (`mlld://user/module` or
/// `@author/name`), their entry files read back from the project cache and
/// checked against the lock. Phase-1 modules are keyed `@user/module`, with
/// the gist revision as `registryVersion` and `mlld://gist/{user}/{gist}`
/// as `source`; they have no versions, so `version` is `latest`.
pub fn modules_of(
    project: &crate::project::Project,
    lock: &mlld_schemas::LockFile,
    keys: &[String],
) -> Result<Vec<MlldModule>> {
    let mut out = Vec::new();
    for key in keys {
        if let Some(e) = lock.modules.get(key) {
            out.push(MlldModule {
                key: key.clone(),
                requested: e.requested.clone(),
                registry_version: e.version.clone(),
                source: e.resolved.clone(),
                entry: crate::versioned_cache::entry_content(project, key, e)?,
            });
        } else if let Some(e) = lock.imports.get(key) {
            let Some((user, gist)) = mlld_schemas::lock::parse_resolved(&e.resolved) else {
                continue;
            };
            let path = project
                .cache_dir(user, gist, &e.gist_revision)
                .join("content.mld");
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            if mlld_schemas::integrity_of(&bytes) != e.integrity {
                bail!(
                    "{} does not match the lock; run `mlld-registry install`",
                    path.display()
                );
            }
            let r = mlld_schemas::ModuleRef::parse(key)?;
            out.push(MlldModule {
                key: r.at_name(),
                requested: "latest".into(),
                registry_version: e.gist_revision.clone(),
                source: e.resolved.clone(),
                entry: bytes,
            });
        }
    }
    Ok(out)
}

/// [`update`] for `keys`, warnings printed to stderr.
pub fn sync(ctx: &Context, lock: &mlld_schemas::LockFile, keys: &[String]) -> Result<()> {
    if !enabled(ctx)? {
        return Ok(());
    }
    let modules = modules_of(&ctx.project, lock, keys)?;
    for w in update(ctx, &modules)? {
        eprintln!("warning: {}", crate::commands::safe(&w));
    }
    Ok(())
}

/// Removes the entries of dropped lock entries from `mlld-lock.json`:
/// `(lock key, resolved)` of each, as [`modules_of`] named them. An entry
/// mlld holds from another source stays. mlld's content cache in the home
/// directory is shared by every project and is left as it is.
pub fn forget(ctx: &Context, dropped: &[(String, String)]) -> Result<()> {
    if !enabled(ctx)? || dropped.is_empty() {
        return Ok(());
    }
    let root = ctx.project.root();
    let Some(existing) = read_lock(root)? else {
        return Ok(());
    };
    let entries: Vec<(String, String)> = dropped
        .iter()
        .map(|(key, resolved)| {
            let path = match mlld_schemas::ModuleRef::parse(key) {
                Ok(r) if key.starts_with("mlld://") => r.at_name(),
                _ => key.clone(),
            };
            (path, resolved.clone())
        })
        .collect();
    let now = format_timestamp(ctx.now);
    let removed = mlld_schemas::mlld_files::remove_from_mlld_lock(&existing, &entries, &now)
        .map_err(|e| lock_error(root, &e))?;
    if let Some(text) = removed {
        let path = root.join(MLLD_LOCK_NAME);
        ctx.project
            .fs()
            .write_atomic(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
