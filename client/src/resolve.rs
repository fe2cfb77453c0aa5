//! Finding a module and a revision in a verified snapshot.

use anyhow::{Result, bail};
use mlld_schemas::{ModuleRecord, ModuleRef, RevisionRecord};

use crate::registry::Registry;

/// Up to `limit` of the `user/module` names in `names` closest to `wanted`
/// (a full name or a bare module name), closest first.
pub fn closest_names(
    wanted: &str,
    names: impl IntoIterator<Item = String>,
    limit: usize,
) -> Vec<String> {
    let wanted = wanted.to_ascii_lowercase();
    let wanted_name = wanted.rsplit('/').next().unwrap_or(&wanted).to_string();
    let mut scored: Vec<(f64, String)> = names
        .into_iter()
        .map(|full| {
            let lower = full.to_ascii_lowercase();
            let name = lower.rsplit('/').next().unwrap_or(&lower);
            let score =
                strsim::jaro_winkler(&wanted, &lower).max(strsim::jaro_winkler(&wanted_name, name));
            (score, full)
        })
        .filter(|(score, _)| *score > 0.8)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    scored.into_iter().take(limit).map(|(_, n)| n).collect()
}

/// The revision a pin selects, or the newest.
pub fn pick_revision<'m>(
    module: &'m ModuleRecord,
    reference: &ModuleRef,
) -> Result<&'m RevisionRecord> {
    let Some(pin) = reference.pin.as_deref() else {
        return Ok(&module.current);
    };
    let Some(prefix) = reference.revision_prefix() else {
        bail!(
            "`@{pin}` is not a revision prefix: this registry pins gist revisions (4 to 40 hex digits, e.g. @{}/{}@{})",
            module.user,
            module.name,
            crate::commands::short_to(&module.current.revision, 7)
        );
    };
    let matches: Vec<_> = module
        .revisions()
        .filter(|r| r.revision.starts_with(prefix))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => {
            let known: Vec<_> = module
                .revisions()
                .map(|r| crate::commands::short_to(&r.revision, 7))
                .collect();
            bail!(
                "{} has no revision starting with `{prefix}` in this snapshot (known: {})",
                module.full_name(),
                known.join(", ")
            )
        }
        _ => bail!(
            "revision prefix `{prefix}` is ambiguous for {}; give more digits",
            module.full_name()
        ),
    }
}

/// The revision record with exactly this id.
pub fn locked_revision<'m>(module: &'m ModuleRecord, revision: &str) -> Option<&'m RevisionRecord> {
    module.revisions().find(|r| r.revision == revision)
}

/// Module lookup by name over a registry (each lookup reads one shard).
#[derive(Clone, Copy)]
pub struct Lookup<'m> {
    registry: &'m Registry,
}

impl<'m> Lookup<'m> {
    pub fn new(registry: &'m Registry) -> Self {
        Self { registry }
    }

    pub fn registry(&self) -> &'m Registry {
        self.registry
    }

    pub fn get(&self, user: &str, name: &str) -> Result<Option<&'m ModuleRecord>> {
        self.registry.module(user, name)
    }

    /// The module, or an error suggesting near names.
    pub fn find(&self, reference: &ModuleRef) -> Result<&'m ModuleRecord> {
        self.registry.find(reference)
    }
}
