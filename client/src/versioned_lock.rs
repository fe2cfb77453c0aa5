//! Locking and installing versioned modules: the `modules` map of
//! `.mlld/mlld.lock.json` and their project cache entries.

use anyhow::{Result, bail};
use mlld_schemas::lock::VersionedLockEntry;
use mlld_schemas::version_spec::VersionSpec;
use mlld_schemas::{ModuleRef, VersionRecord, VersionedModule};

use crate::context::Context;
use crate::project::CacheState;
use crate::registry::Registry;
use crate::versioned::{self, VersionedIndex};
use crate::workflow::{Locked, Locker};
use crate::{approve, usage, versioned_cache};

impl Locker<'_> {
    /// One versioned module: its lock entry (kept while it answers what a
    /// root asks; dependencies never move a locked version) or a new one at
    /// the version the pin selects, and the dependencies of that version.
    pub(crate) fn lock_versioned(
        &mut self,
        module: &VersionedModule,
        r: &ModuleRef,
        is_root: bool,
    ) -> Result<(Locked, Vec<String>)> {
        let key = self.versioned_key(module.full_name());
        let pin = r.pin.as_deref();
        let spec = versioned::parse_spec(module, pin)?;
        let requested = pin.unwrap_or("latest").to_string();
        let existing = self.lock.modules.get(&key).cloned();
        if let Some(mut e) = existing
            .clone()
            .filter(|e| !is_root || versioned::entry_satisfies(e, spec.as_ref()))
        {
            if is_root && pin.is_some() && e.requested != requested && !self.frozen {
                e.requested = requested;
                self.lock.modules.insert(key.clone(), e.clone());
                self.changed = true;
            }
            let deps = module
                .version(&e.version)
                .map(|v| v.dependencies.clone())
                .unwrap_or_default();
            let advisories = approve::version_advisories(self.verified, module, &e.version)?;
            self.approvals.advisories_of(&key, advisories);
            return Ok((locked(&key, &e, false), deps));
        }
        if self.frozen {
            let what = match &existing {
                Some(e) => format!(
                    "{key} is locked at {} ({}), but the project asks for {requested}",
                    e.version, e.requested
                ),
                None => format!("{key} is imported but not in the lock file"),
            };
            bail!(
                "{what}; --frozen forbids changing the lock. Run `mlld-registry install` without --frozen and commit .mlld/mlld.lock.json"
            );
        }
        // Choosing content means trusting the snapshot's idea of what is newest.
        self.ctx
            .require_fresh(&format!("locking {}", module.full_name()))?;
        let record = match versioned::select(module, pin) {
            Ok(r) => r,
            Err(e) => {
                let rejected = self.verified.rejected_near(&module.author, &module.name)?;
                let serial = self.verified.serial();
                match crate::rejected::version_message(rejected, serial, module, pin) {
                    Some(message) => bail!(message),
                    None => return Err(e),
                }
            }
        };
        let entry = versioned::new_entry(module, record, &requested, self.ctx.now);
        let files = versioned_cache::read_files(self.verified, record)?;
        let advisories = approve::version_advisories(self.verified, module, &record.version)?;
        let description =
            approve::describe_versioned(&advisories, module, record, &requested, &files);
        match &existing {
            // Locked already: a pin moves it, which is no first import.
            Some(e) => crate::approve_change::approve_change(
                &description,
                &module.full_name(),
                self.ctx.yes,
                &format!(
                    "moving {key} from {} to {} (as {requested} asks) changes its content",
                    e.version, record.version
                ),
            )?,
            // Asked once for everything new, before the lock is written.
            None => self.approvals.add(crate::approval::Pending {
                key: key.clone(),
                author: module.author.clone(),
                at: format!("version {} (asked {requested})", record.version),
                size: files.iter().map(|(_, b)| b.len() as u64).sum(),
                details: description,
            }),
        }
        self.approvals.advisories_of(&key, advisories);
        self.lock.modules.insert(key.clone(), entry.clone());
        self.changed = true;
        usage::record(self.ctx, &[(key.clone(), usage::IMPORT)]);
        Ok((locked(&key, &entry, true), record.dependencies.clone()))
    }

    /// The registry's spelling of a versioned key; an entry under another
    /// case of the author moves to it unless the lock is frozen.
    fn versioned_key(&mut self, key: String) -> String {
        if self.lock.modules.contains_key(&key) {
            return key;
        }
        let Some(other) = self
            .lock
            .modules
            .keys()
            .find(|k| k.eq_ignore_ascii_case(&key))
            .cloned()
        else {
            return key;
        };
        if self.frozen {
            return other;
        }
        let entry = self.lock.modules.remove(&other).expect("just found");
        self.lock.modules.insert(key.clone(), entry);
        self.changed = true;
        key
    }
}

/// A dependency's range (or exact version) that the version the project
/// locked does not meet: the lock wins (a dependency never moves a locked
/// version), but the user hears of it, once, with who asks and the way to
/// follow it. Tags name no range and are not checked.
pub(crate) fn unmet_range(key: &str, version: &str, pin: &str, via: &str) -> Option<String> {
    let spec = VersionSpec::parse(pin).ok()?;
    if matches!(spec, VersionSpec::Tag(_)) || spec.matches(version, &Default::default()) {
        return None;
    }
    let safe = crate::commands::safe;
    let (key, pin, version) = (safe(key), safe(pin), safe(version));
    Some(format!(
        "warning: {} asks for {key}@{pin}, which the locked {version} does not satisfy; the lock keeps {version} (a dependency never moves a version the project locked). To follow it: mlld-registry resolve '{key}@{pin}'",
        safe(via)
    ))
}

pub fn locked(key: &str, e: &VersionedLockEntry, added: bool) -> Locked {
    Locked {
        import: key.to_string(),
        resolved: e.resolved.clone(),
        gist_revision: None,
        version: Some(e.version.clone()),
        integrity: e.integrity.clone(),
        added,
    }
}

/// The snapshot's record of a locked version, checked against the lock.
pub fn locked_record<'m>(
    index: &VersionedIndex<'m>,
    key: &str,
    entry: &VersionedLockEntry,
) -> Result<(&'m VersionedModule, &'m VersionRecord)> {
    let r = ModuleRef::parse(key)?;
    let Some(module) = index.get(&r.user, &r.module)? else {
        bail!(
            "{key} is locked, but this snapshot has no such versioned module; sync a newer snapshot or remove the entry"
        );
    };
    let Some(record) = module.version(&entry.version) else {
        bail!(
            "{key} is locked at version {}, which this snapshot does not hold (it has {}); sync a newer snapshot, or run `mlld-registry update {key}`",
            entry.version,
            versioned::available(module)
        );
    };
    let hash = mlld_schemas::content_hash::parse_content_hash(&record.content_hash)
        .unwrap_or(&record.content_hash);
    if record.integrity != entry.integrity || hash != entry.content_hash {
        bail!(
            "{key}: the lock says version {} has contentHash {} and integrity {}, but the signed snapshot says {hash} and {}; the lock file was edited or the version was republished. Review it, then remove the entry and resolve again",
            entry.version,
            entry.content_hash,
            entry.integrity,
            record.integrity
        );
    }
    Ok((module, record))
}

/// Brings a versioned lock entry into the project cache, every file
/// verified; returns what the cache held before. A valid entry needs no
/// snapshot.
pub fn install_entry(
    ctx: &Context,
    snapshot: Option<(&Registry, &VersionedIndex<'_>)>,
    key: &str,
    entry: &VersionedLockEntry,
) -> Result<CacheState> {
    let state = versioned_cache::state(&ctx.project, key, entry);
    if state == CacheState::Valid {
        return Ok(state);
    }
    let Some((verified, index)) = snapshot else {
        bail!("{key} is not cached and there is no snapshot to install it from");
    };
    let (_, record) = locked_record(index, key, entry)?;
    let files = versioned_cache::read_files(verified, record)?;
    versioned_cache::write(ctx, key, entry, record, &files)?;
    Ok(state)
}
