//! The lock and cache operations the commands share: locking a set of
//! references with their dependencies (asking for approval), and bringing
//! one lock entry into the cache.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use anyhow::{Context as _, Result, bail};
use mlld_schemas::import_ref::RefForm;
use mlld_schemas::lock::{parse_resolved, resolved_url};
use mlld_schemas::names::format_timestamp;
use mlld_schemas::{CacheMetadata, LockEntry, LockFile, ModuleRecord, ModuleRef, RevisionRecord};
use serde::Serialize;

use crate::context::Context;
use crate::project::CacheState;
use crate::registry::Registry;
use crate::resolve::{self, Lookup};
use crate::versioned::{self, Target, VersionedIndex};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Locked {
    /// The lock key: `mlld://user/module` (Phase-1) or `@author/name` (versioned).
    pub import: String,
    pub resolved: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gist_revision: Option<String>,
    /// The exact version of a versioned module.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub integrity: String,
    /// True when this run added or changed the entry (false: it was locked already).
    pub added: bool,
}

/// A reference to lock, with the form it was written in (which decides the
/// layout when a name exists in both, see `versioned`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Request {
    pub reference: ModuleRef,
    pub form: RefForm,
}

impl Request {
    /// A command-line or lock-file reference: `mlld://` names the Phase-1 module.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(Self {
            reference: ModuleRef::parse(text)?,
            form: if text.starts_with("mlld://") {
                RefForm::MlldUrl
            } else {
                RefForm::At
            },
        })
    }
}

/// Locks references and their dependencies into `lock`.
pub struct Locker<'a> {
    pub ctx: &'a Context,
    pub verified: &'a Registry,
    pub lookup: Lookup<'a>,
    pub versioned: VersionedIndex<'a>,
    pub lock: LockFile,
    /// Fail instead of changing the lock.
    pub frozen: bool,
    pub changed: bool,
    /// New entries waiting for approval, and what the screen shows of them.
    pub approvals: crate::approval::Approvals,
    /// Warnings already printed (each walk may meet a dependency again).
    warned: BTreeSet<String>,
}

impl<'a> Locker<'a> {
    pub fn new(ctx: &'a Context, verified: &'a Registry, lock: LockFile) -> Self {
        Self {
            ctx,
            verified,
            lookup: Lookup::new(verified),
            versioned: VersionedIndex::new(verified),
            lock,
            frozen: false,
            changed: false,
            approvals: Default::default(),
            warned: BTreeSet::new(),
        }
    }

    /// Asks once for every new entry the walks added (see `approval`);
    /// call before the lock is written.
    pub fn approve_pending(&mut self) -> Result<()> {
        self.approvals.confirm(self.ctx.yes)
    }

    /// Locks Phase-1 references (as `mlld://user/module`) and their dependencies.
    pub fn lock_all(&mut self, roots: &[ModuleRef]) -> Result<Vec<Locked>> {
        let roots: Vec<Request> = roots
            .iter()
            .map(|r| Request {
                reference: r.clone(),
                form: RefForm::MlldUrl,
            })
            .collect();
        self.lock_requests(&roots)
    }

    /// Locks every root and, transitively, what each imports. A lock entry
    /// stands unless a root asks for something it does not satisfy; new and
    /// changed entries need approval.
    pub fn lock_requests(&mut self, roots: &[Request]) -> Result<Vec<Locked>> {
        self.walk(roots, true)
    }

    /// Like [`Locker::lock_requests`] for what a module needs: these never
    /// move a locked entry.
    pub fn lock_dependencies(&mut self, deps: &[Request]) -> Result<Vec<Locked>> {
        self.walk(deps, false)
    }

    fn walk(&mut self, start: &[Request], as_roots: bool) -> Result<Vec<Locked>> {
        // Each request with whether it is a root and the key that needs it.
        let mut queue: VecDeque<(Request, bool, Option<String>)> =
            start.iter().map(|r| (r.clone(), as_roots, None)).collect();
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        while let Some((req, is_root, via)) = queue.pop_front() {
            let r = &req.reference;
            let key = (
                r.user.to_ascii_lowercase(),
                r.module.clone(),
                r.pin.clone(),
                req.form,
                is_root,
            );
            if !seen.insert(key) {
                continue;
            }
            let target = match versioned::route(&self.versioned, &self.lookup, r, req.form) {
                Ok(t) => t,
                // A module's range on a Phase-1 dependency: the dependency
                // stands at its locked or newest revision.
                Err(_) if !is_root => Target::Gist,
                Err(e) => return Err(e),
            };
            match target {
                Target::Versioned(module) => {
                    let (locked, deps) = self.lock_versioned(module, r, is_root)?;
                    self.approvals.note(&locked.import, via.as_deref());
                    if let (Some(via), Some(pin), Some(version)) = (&via, &r.pin, &locked.version)
                        && let Some(w) =
                            crate::versioned_lock::unmet_range(&locked.import, version, pin, via)
                        && self.warned.insert(w.clone())
                    {
                        eprintln!("{w}");
                    }
                    for dep in deps {
                        let parent = Some(locked.import.clone());
                        queue.push_back((Request::parse(&dep)?, false, parent));
                    }
                    once_each(&mut out, locked);
                }
                Target::Gist => {
                    let (locked, deps) = self.lock_gist(r, is_root)?;
                    self.approvals.note(&locked.import, via.as_deref());
                    for dep in deps {
                        let reference = ModuleRef::parse(&dep)?;
                        let form = RefForm::MlldUrl;
                        let parent = Some(locked.import.clone());
                        queue.push_back((Request { reference, form }, false, parent));
                    }
                    once_each(&mut out, locked);
                }
            }
        }
        Ok(out)
    }
}

/// Adds `locked` to what a walk locked, once a lock key: a module named by
/// two spellings of one range (a version file's `^1.0.0`, its entry file's
/// `^1.0`) is walked for each, so that each range is checked, but it is one
/// entry, reported (and installed) once, as it stands after the later visit.
fn once_each(out: &mut Vec<Locked>, locked: Locked) {
    match out.iter_mut().find(|l| l.import == locked.import) {
        Some(first) => {
            let added = first.added || locked.added;
            *first = Locked { added, ..locked };
        }
        None => out.push(locked),
    }
}

pub fn new_entry(module: &ModuleRecord, revision: &RevisionRecord, ctx: &Context) -> LockEntry {
    LockEntry {
        resolved: resolved_url(&module.user, &module.gist),
        gist_revision: revision.revision.clone(),
        integrity: revision.integrity.clone(),
        approved_at: format_timestamp(ctx.now),
        extra: BTreeMap::new(),
    }
}

pub fn missing_locked(module: &ModuleRecord, revision: &str) -> String {
    format!(
        "{} is locked at revision {revision}, which this snapshot does not hold; sync a newer snapshot, or run `mlld-registry update {}`",
        module.full_name(),
        module.full_name()
    )
}

/// Whether a lock key is a registry import (mlld may lock other kinds).
pub fn is_registry_import(import: &str) -> bool {
    import.starts_with("mlld://") && !import.starts_with("mlld://gist/")
}

/// Brings one lock entry into the cache at its locked revision; returns
/// what the cache held before. A valid entry needs no snapshot at all.
pub fn install_entry(
    ctx: &Context,
    verified: Option<&Registry>,
    lookup: Option<&Lookup<'_>>,
    import: &str,
    entry: &LockEntry,
) -> Result<CacheState> {
    let state = cache_state_of(&ctx.project, import, entry)?;
    let prepared = prepare_entry(ctx, verified, lookup, import, entry, state)?;
    prepared.write(&ctx.project)?;
    Ok(prepared.state)
}

/// A lock entry's cache state and, unless it is valid, what to write.
pub struct Prepared {
    pub state: CacheState,
    write: Option<(String, String, Vec<u8>, CacheMetadata)>,
}

impl Prepared {
    /// Writes the cache entry, if one is needed. Only touches the project's
    /// cache, so entries may be written from several threads.
    pub fn write(&self, project: &crate::project::Project) -> Result<()> {
        match &self.write {
            Some((user, gist, content, meta)) => project.write_cache(user, gist, content, meta),
            None => Ok(()),
        }
    }
}

/// What the cache holds for a lock entry. Only touches the project, so
/// entries may be checked from several threads.
pub fn cache_state_of(
    project: &crate::project::Project,
    import: &str,
    entry: &LockEntry,
) -> Result<CacheState> {
    let Some((user, gist)) = parse_resolved(&entry.resolved) else {
        bail!("{import}: `{}` is not a gist reference", entry.resolved);
    };
    Ok(project.cache_state(user, gist, &entry.gist_revision, &entry.integrity))
}

/// Given a lock entry's cache `state` (from [`cache_state_of`]), reads the
/// locked content from the store (re-hashed) when the entry is missing or
/// damaged, for [`Prepared::write`].
pub fn prepare_entry(
    ctx: &Context,
    verified: Option<&Registry>,
    lookup: Option<&Lookup<'_>>,
    import: &str,
    entry: &LockEntry,
    state: CacheState,
) -> Result<Prepared> {
    let Some((user, gist)) = parse_resolved(&entry.resolved) else {
        bail!("{import}: `{}` is not a gist reference", entry.resolved);
    };
    if state == CacheState::Valid {
        return Ok(Prepared { state, write: None });
    }
    let (Some(verified), Some(lookup)) = (verified, lookup) else {
        bail!("{import} is not cached and there is no snapshot to install it from");
    };
    let reference = ModuleRef::parse(import)?;
    let module = lookup.find(&reference);
    let revision = module
        .as_ref()
        .ok()
        .and_then(|m| resolve::locked_revision(m, &entry.gist_revision));
    let content = match (module, revision) {
        (Ok(module), Some(revision)) => {
            if revision.integrity != entry.integrity {
                bail!(
                    "{import}: the lock says revision {} has integrity {}, but the signed snapshot says {}; the lock file was edited or the module's history was rewritten. Review it, then remove the entry and resolve again",
                    entry.gist_revision,
                    entry.integrity,
                    revision.integrity
                );
            }
            if gist != module.gist {
                bail!(
                    "{import}: the lock resolves to {}, but the registry now maps it to gist {}; run `mlld-registry update {}`",
                    entry.resolved,
                    module.gist,
                    module.full_name()
                );
            }
            verified.read_blob(&revision.integrity)?
        }
        // An old lock: the current snapshot no longer holds this revision. Any
        // stored snapshot that has content with the locked integrity will do.
        _ => ctx
            .stored_blob(&entry.integrity)?
            .with_context(|| match lookup.find(&reference) {
                Ok(m) => missing_locked(m, &entry.gist_revision),
                Err(e) => format!("{e:#}"),
            })?,
    };
    let meta = cache_metadata(ctx, &entry.gist_revision, import, &content);
    Ok(Prepared {
        state,
        write: Some((user.to_string(), gist.to_string(), content, meta)),
    })
}

fn cache_metadata(ctx: &Context, revision: &str, import: &str, content: &[u8]) -> CacheMetadata {
    CacheMetadata {
        import_path: import.to_string(),
        gist_revision: revision.to_string(),
        integrity: mlld_schemas::integrity_of(content),
        cached_at: format_timestamp(ctx.now),
        size: content.len() as u64,
    }
}

/// Writes a cache entry for content already checked against its integrity.
fn write_cache_raw(
    ctx: &Context,
    user: &str,
    gist: &str,
    revision: &str,
    import: &str,
    content: &[u8],
) -> Result<()> {
    let meta = cache_metadata(ctx, revision, import, content);
    ctx.project.write_cache(user, gist, content, &meta)
}

/// Writes the cache entry for `revision` of `module`.
pub fn write_cache(
    ctx: &Context,
    module: &ModuleRecord,
    revision: &RevisionRecord,
    import: &str,
    content: &[u8],
) -> Result<()> {
    write_cache_raw(
        ctx,
        &module.user,
        &module.gist,
        &revision.revision,
        import,
        content,
    )
}
