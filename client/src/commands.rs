//! `resolve` and `install`: the project workflow over a verified snapshot.

use std::collections::{BTreeMap, VecDeque};

use anyhow::{Context as _, Result, bail};
use mlld_schemas::lock::{parse_resolved, resolved_url};
use mlld_schemas::names::format_timestamp;
use mlld_schemas::{CacheMetadata, LockEntry, LockFile, ModuleRecord, ModuleRef, RevisionRecord};
use serde::Serialize;

use crate::context::Context;
use crate::project::CacheState;
use crate::{approve, resolve};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Locked {
    pub import: String,
    pub resolved: String,
    pub gist_revision: String,
    pub integrity: String,
    /// True when this run added the entry (false: it was locked already).
    pub added: bool,
}

/// Resolves `reference` and its dependencies, records them in the lock file
/// and caches their content.
pub fn resolve(ctx: &Context, reference: &str) -> Result<Vec<Locked>> {
    let reference = ModuleRef::parse(reference)?;
    let manifest = &ctx.manifest()?.manifest;
    let _guard = ctx.project.exclusive()?;
    let mut lock = ctx.project.read_lock()?;
    let mut out = Vec::new();
    let mut queue = VecDeque::from([reference]);
    let mut first = true;
    while let Some(r) = queue.pop_front() {
        let module = resolve::find_module(manifest, &r)?;
        let import = ModuleRef {
            user: module.user.clone(),
            module: module.name.clone(),
            pin: None,
        }
        .import_path();
        let existing = lock.imports.get(&import).cloned();
        // A lock entry stands, unless the user explicitly pins the reference they asked for.
        let revision = match existing.as_ref().filter(|_| !(first && r.pin.is_some())) {
            Some(e) => resolve::locked_revision(module, &e.gist_revision)
                .with_context(|| missing_locked(module, &e.gist_revision))?,
            None => resolve::pick_revision(module, &r)?,
        };
        first = false;
        let content = ctx.store.read_blob(hex_of(&revision.integrity))?;
        let added = existing
            .as_ref()
            .is_none_or(|e| e.gist_revision != revision.revision);
        if added {
            approve::approve(
                &approve::describe(manifest, module, revision, &content),
                &module.full_name(),
                ctx.yes,
            )?;
            lock.imports
                .insert(import.clone(), new_entry(module, revision, ctx));
            ctx.project.write_lock(&lock)?;
        }
        ensure_cached(ctx, module, revision, &import, &content)?;
        let entry = &lock.imports[&import];
        out.push(Locked {
            import: import.clone(),
            resolved: entry.resolved.clone(),
            gist_revision: entry.gist_revision.clone(),
            integrity: entry.integrity.clone(),
            added,
        });
        for dep in &revision.dependencies {
            let dep_ref = ModuleRef::parse(dep)?;
            if !lock.imports.contains_key(&dep_ref.import_path()) && !queue.contains(&dep_ref) {
                queue.push_back(dep_ref);
            }
        }
    }
    Ok(out)
}

fn hex_of(integrity: &str) -> &str {
    integrity.strip_prefix("sha256:").unwrap_or(integrity)
}

fn missing_locked(module: &ModuleRecord, revision: &str) -> String {
    format!(
        "{} is locked at revision {revision}, which this snapshot does not hold; sync a newer snapshot, or run `mlld-registry update {}`",
        module.full_name(),
        module.full_name()
    )
}

fn new_entry(module: &ModuleRecord, revision: &RevisionRecord, ctx: &Context) -> LockEntry {
    LockEntry {
        resolved: resolved_url(&module.user, &module.gist),
        gist_revision: revision.revision.clone(),
        integrity: revision.integrity.clone(),
        approved_at: format_timestamp(ctx.now),
        extra: BTreeMap::new(),
    }
}

/// Writes the cache entry unless a valid one is there; returns the state found.
fn ensure_cached(
    ctx: &Context,
    module: &ModuleRecord,
    revision: &RevisionRecord,
    import: &str,
    content: &[u8],
) -> Result<CacheState> {
    let state = ctx.project.cache_state(
        &module.user,
        &module.gist,
        &revision.revision,
        &revision.integrity,
    );
    if state != CacheState::Valid {
        let meta = CacheMetadata {
            import_path: import.to_string(),
            gist_revision: revision.revision.clone(),
            integrity: revision.integrity.clone(),
            cached_at: format_timestamp(ctx.now),
            size: content.len() as u64,
        };
        ctx.project
            .write_cache(&module.user, &module.gist, content, &meta)?;
    }
    Ok(state)
}

#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallReport {
    /// Entries written to the cache for the first time.
    pub installed: Vec<String>,
    /// Entries already cached and intact.
    pub cached: Vec<String>,
    /// Entries whose cached files were missing parts or damaged, now rewritten.
    pub repaired: Vec<String>,
}

/// Installs every lock entry into the cache at its locked revision.
pub fn install(ctx: &Context) -> Result<InstallReport> {
    let manifest = &ctx.manifest()?.manifest;
    let _guard = ctx.project.exclusive()?;
    let lock: LockFile = ctx.project.read_lock()?;
    let mut report = InstallReport::default();
    for (import, entry) in &lock.imports {
        if !import.starts_with("mlld://") || import.starts_with("mlld://gist/") {
            continue;
        }
        let reference = ModuleRef::parse(import)?;
        let module = resolve::find_module(manifest, &reference)?;
        let revision = resolve::locked_revision(module, &entry.gist_revision)
            .with_context(|| missing_locked(module, &entry.gist_revision))?;
        if revision.integrity != entry.integrity {
            bail!(
                "{import}: the lock says revision {} has integrity {}, but the signed snapshot says {}; the lock file was edited or the module's history was rewritten. Review it, then remove the entry and resolve again",
                entry.gist_revision,
                entry.integrity,
                revision.integrity
            );
        }
        if parse_resolved(&entry.resolved).map(|(_, gist)| gist) != Some(module.gist.as_str()) {
            bail!(
                "{import}: the lock resolves to {}, but the registry now maps it to gist {}; run `mlld-registry update {}`",
                entry.resolved,
                module.gist,
                module.full_name()
            );
        }
        let content = ctx.store.read_blob(hex_of(&revision.integrity))?;
        match ensure_cached(ctx, module, revision, import, &content)? {
            CacheState::Valid => report.cached.push(import.clone()),
            CacheState::Missing => report.installed.push(import.clone()),
            CacheState::Tampered | CacheState::BadMetadata => report.repaired.push(import.clone()),
        }
    }
    Ok(report)
}
