//! `update` for versioned modules: each moves to the newest version its
//! requested range or tag selects now; changed content needs approval.

use anyhow::Result;
use mlld_schemas::{LockFile, ModuleRef};

use crate::approve_change::approve_change;
use crate::commands::update::{Change, short_diff};
use crate::context::Context;
use crate::pins::{self, SourcePins};
use crate::registry::Registry;
use crate::versioned::{self, VersionedIndex};
use crate::{approve, versioned_cache};

/// Moves the versioned entries of `lock` (only `only`, when given) and
/// returns what changed; the caller writes the lock and the caches.
pub fn update(
    ctx: &Context,
    verified: &Registry,
    lock: &mut LockFile,
    only: Option<&ModuleRef>,
    pins: &SourcePins,
    held: &mut Vec<String>,
) -> Result<Vec<Change>> {
    let index = VersionedIndex::new(verified);
    let mut changes = Vec::new();
    let keys: Vec<String> = lock.modules.keys().cloned().collect();
    for key in keys {
        let r = ModuleRef::parse(&key)?;
        if only.is_some_and(|o| !o.user.eq_ignore_ascii_case(&r.user) || o.module != r.module) {
            continue;
        }
        let Some(module) = index.get(&r.user, &r.module)? else {
            eprintln!(
                "note: {key} is no longer in the registry snapshot; it stays at its locked version"
            );
            continue;
        };
        let entry = lock.modules[&key].clone();
        // The source pins bound the move (all of them at once: `install
        // --frozen` checks each), else the range or tag the lock asked for.
        let source_pins = pins.of(&key);
        let (new, requested) = pins::wanted_version(module, &entry.requested, source_pins)?;
        let latest = module
            .latest()
            .map_or(new.version.as_str(), |l| l.version.as_str());
        let outside = pins::outside_note(
            latest,
            &new.version,
            &pins::describe_bound(source_pins, Some(&entry.requested)),
            pins::newer(latest, &new.version),
        );
        if new.version == entry.version {
            if let Some(note) = outside {
                held.push(format!("{key} {} {note}", entry.version));
            }
            continue;
        }
        let files = versioned_cache::read_files(verified, new)?;
        let new_entry_bytes = files
            .iter()
            .find(|(p, _)| *p == new.entry)
            .map(|(_, b)| b.clone())
            .unwrap_or_default();
        let old = module.version(&entry.version);
        let old_bytes = versioned_cache::entry_content(&ctx.project, &key, &entry)
            .ok()
            .or_else(|| old.and_then(|o| verified.read_blob(&o.integrity).ok()));
        let content_changed = entry.content_hash
            != mlld_schemas::content_hash::parse_content_hash(&new.content_hash)
                .unwrap_or(&new.content_hash);
        let advisories = verified.versioned_advisories(module)?;
        let change = Change {
            import: key.clone(),
            from: entry.version.clone(),
            to: new.version.clone(),
            from_date: old.and_then(|o| o.published_at.clone()),
            to_date: new.published_at.clone(),
            from_size: old
                .map(|o| o.size)
                .or(old_bytes.as_ref().map(|b| b.len() as u64)),
            to_size: new.size,
            content_changed,
            new_advisories: super::update::advisories_since(
                advisories.iter().copied(),
                &entry.approved_at,
            ),
            diff: match &old_bytes {
                Some(old) => short_diff(old, &new_entry_bytes, 40),
                None => "(the old entry file is in neither the snapshot nor the cache)\n".into(),
            },
            requested: Some(requested.clone()),
            outside,
        };
        if !ctx.json {
            crate::out!("{}", crate::commands::update::render(&change));
        }
        if content_changed {
            approve_change(
                &approve::describe_versioned(&advisories, module, new, &requested, &files),
                &module.full_name(),
                ctx.yes,
                &format!(
                    "moving {key} from {} to {} changes its content",
                    entry.version, new.version
                ),
            )?;
        }
        let mut fresh = versioned::new_entry(module, new, &requested, ctx.now);
        if !content_changed {
            fresh.approved_at = entry.approved_at.clone();
        }
        fresh.extra = entry.extra.clone();
        lock.modules.insert(key.clone(), fresh);
        changes.push(change);
    }
    Ok(changes)
}
