//! Finding a module and a revision in a verified manifest.

use anyhow::{Result, bail};
use mlld_schemas::{Manifest, ModuleRecord, ModuleRef, RevisionRecord};

/// The module `reference` names, or an error that suggests near names.
pub fn find_module<'m>(manifest: &'m Manifest, reference: &ModuleRef) -> Result<&'m ModuleRecord> {
    if let Some(m) = manifest.find(&reference.user, &reference.module) {
        return Ok(m);
    }
    if let Some(message) =
        crate::rejected::module_message(manifest, &reference.user, &reference.module)
    {
        bail!("{message}");
    }
    let near = near_names(manifest, &reference.full_name(), 3);
    let hint = if near.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", near.join(", "))
    };
    bail!(
        "module {} is not in the registry snapshot (serial {}){hint} If it was registered recently, run `mlld-registry sync`.",
        reference.full_name(),
        manifest.serial
    )
}

/// Up to `limit` module names closest to `wanted`, closest first.
pub fn near_names(manifest: &Manifest, wanted: &str, limit: usize) -> Vec<String> {
    closest_names(
        wanted,
        manifest.modules.iter().map(|m| m.full_name()),
        limit,
    )
}

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

/// Constant-time module lookup over a manifest (snapshots hold up to
/// hundreds of thousands of modules; `Manifest::find` is a linear scan).
pub struct Lookup<'m> {
    manifest: &'m Manifest,
    by_name: std::collections::HashMap<(String, &'m str), &'m ModuleRecord>,
}

impl<'m> Lookup<'m> {
    pub fn new(manifest: &'m Manifest) -> Self {
        let by_name = manifest
            .modules
            .iter()
            .map(|m| ((m.user.to_ascii_lowercase(), m.name.as_str()), m))
            .collect();
        Self { manifest, by_name }
    }

    pub fn manifest(&self) -> &'m Manifest {
        self.manifest
    }

    pub fn get(&self, user: &str, name: &str) -> Option<&'m ModuleRecord> {
        self.by_name
            .get(&(user.to_ascii_lowercase(), name))
            .copied()
    }

    /// Like [`find_module`], fast.
    pub fn find(&self, reference: &ModuleRef) -> Result<&'m ModuleRecord> {
        match self.get(&reference.user, &reference.module) {
            Some(m) => Ok(m),
            None => find_module(self.manifest, reference),
        }
    }
}
