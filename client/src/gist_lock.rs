//! Locking Phase-1 gist modules: the `imports` map of `.mlld/mlld.lock.json`,
//! keyed `mlld://user/module` in the registry's spelling of the user.

use anyhow::{Result, bail};
use mlld_schemas::{LockEntry, ModuleRecord, ModuleRef, RevisionRecord};

use crate::workflow::{Locked, Locker, new_entry};
use crate::{approve, resolve, usage};

impl Locker<'_> {
    /// One Phase-1 module: its lock entry (kept, or added at the pinned or
    /// newest revision) and the dependencies of the locked revision. The
    /// key is the registry's spelling of the name.
    pub(crate) fn lock_gist(
        &mut self,
        r: &ModuleRef,
        is_root: bool,
    ) -> Result<(Locked, Vec<String>)> {
        let pin = if is_root { r.revision_prefix() } else { None };
        let found = self.lookup.get(&r.user, &r.module)?;
        let import = match found {
            Some(m) => format!("mlld://{}/{}", m.user, m.name),
            None => r.import_path(),
        };
        let import = self.gist_key(import);
        let existing = self.lock.imports.get(&import).cloned();
        // A pin that is no revision prefix (`@v1.0`) is an error, locked or not.
        let bad_pin = is_root && r.pin.is_some() && pin.is_none();
        let keep = existing
            .as_ref()
            .filter(|e| !bad_pin && pin.is_none_or(|p| e.gist_revision.starts_with(p)));
        let module = match (found, keep) {
            (Some(m), _) => m,
            // Locked, and gone from the registry: the entry stands; its cache entry may still serve.
            (None, Some(e)) => return Ok((locked(&import, e, false), Vec::new())),
            (None, None) => return Err(self.verified.missing(&r.user, &r.module)),
        };
        if bad_pin {
            resolve::pick_revision(module, r)?;
        }
        let (revision, added) = match keep {
            Some(e) => match resolve::locked_revision(module, &e.gist_revision) {
                Some(rev) => (rev, false),
                None => return Ok((locked(&import, e, false), Vec::new())),
            },
            None => {
                if self.frozen {
                    bail!(frozen_message(&import, existing.as_ref(), pin));
                }
                // Choosing content means trusting the snapshot's idea of what is newest.
                self.ctx
                    .require_fresh(&format!("locking {}", r.full_name()))?;
                let rev = if is_root {
                    resolve::pick_revision(module, r)?
                } else {
                    &module.current
                };
                self.add(module, rev, &import, existing.as_ref())?;
                (rev, true)
            }
        };
        let advisories = approve::gist_advisories(self.verified, module, revision)?;
        self.approvals.advisories_of(&import, advisories);
        let entry = &self.lock.imports[&import];
        Ok((locked(&import, entry, added), revision.dependencies.clone()))
    }

    /// `import`, or the key of an entry that differs from it only in the
    /// user's case (user names compare case-insensitively): that entry
    /// moves to the registry's spelling unless the lock is frozen.
    fn gist_key(&mut self, import: String) -> String {
        if self.lock.imports.contains_key(&import) {
            return import;
        }
        let other = self
            .lock
            .imports
            .keys()
            .find(|k| k.eq_ignore_ascii_case(&import))
            .cloned();
        let Some(other) = other else {
            return import;
        };
        if self.frozen {
            return other;
        }
        let entry = self
            .lock
            .imports
            .remove(&other)
            .expect("the key was just found");
        self.lock.imports.insert(import.clone(), entry);
        self.changed = true;
        import
    }

    fn add(
        &mut self,
        module: &ModuleRecord,
        revision: &RevisionRecord,
        import: &str,
        existing: Option<&LockEntry>,
    ) -> Result<()> {
        let content = self.verified.read_blob(&revision.integrity)?;
        let advisories = approve::gist_advisories(self.verified, module, revision)?;
        let description = approve::describe(&advisories, module, revision, &content);
        match existing.filter(|e| e.integrity != revision.integrity) {
            // Locked already: a pin moves it, which is no first import.
            Some(e) => crate::approve_change::approve_change(
                &description,
                &module.full_name(),
                self.ctx.yes,
                &format!(
                    "moving {import} from revision {} to {} (as a pin asks) changes its content",
                    crate::commands::short_to(&e.gist_revision, 7),
                    crate::commands::short_to(&revision.revision, 7)
                ),
            )?,
            // Asked once for everything new, before the lock is written.
            None => self.approvals.add(crate::approval::Pending {
                key: import.to_string(),
                author: module.user.clone(),
                at: format!("revision {}", crate::commands::short(&revision.revision)),
                size: content.len() as u64,
                details: description,
            }),
        }
        self.lock
            .imports
            .insert(import.to_string(), new_entry(module, revision, self.ctx));
        self.changed = true;
        usage::record(self.ctx, &[(import.to_string(), usage::IMPORT)]);
        Ok(())
    }
}

fn frozen_message(import: &str, existing: Option<&LockEntry>, pin: Option<&str>) -> String {
    let what = match (existing, pin) {
        (Some(e), Some(p)) => format!(
            "{import} is locked at {}, but a pin asks for {p}",
            crate::commands::short_to(&e.gist_revision, 16)
        ),
        _ => format!("{import} is imported but not in the lock file"),
    };
    format!(
        "{what}; --frozen forbids changing the lock. Run `mlld-registry install` without --frozen and commit .mlld/mlld.lock.json"
    )
}

pub(crate) fn locked(import: &str, e: &LockEntry, added: bool) -> Locked {
    Locked {
        import: import.to_string(),
        resolved: e.resolved.clone(),
        gist_revision: Some(e.gist_revision.clone()),
        version: None,
        integrity: e.integrity.clone(),
        added,
    }
}
