//! Pins written in the project's sources (`@user/module@b20e54d` on a gist
//! module, `@author/name@^1.2` on a versioned one) and what they allow:
//! `update` moves within them, `outdated` reports the newest they allow
//! (wanted) beside the newest there is (latest).

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use mlld_schemas::version_spec::parse_version;
use mlld_schemas::{
    LockFile, ModuleRecord, RevisionRecord, VersionRecord, VersionSpec, VersionedModule,
};

use crate::context::Context;
use crate::lock_graph::{self, key_of};
use crate::resolve::Lookup;
use crate::versioned::VersionedIndex;

/// One pin, where it is written.
#[derive(Clone, Debug)]
pub struct Pin {
    /// A revision prefix, a version, a range or a dist-tag.
    pub spec: String,
    /// `file:line`.
    pub at: String,
}

/// The pins of the project's sources, by lock key.
#[derive(Default)]
pub struct SourcePins {
    by_key: BTreeMap<String, Vec<Pin>>,
}

impl SourcePins {
    /// Scans the project's files and `mlld-config.json` (problems are
    /// `install`'s to report; the pins found stand).
    pub fn scan(
        ctx: &Context,
        lock: &LockFile,
        lookup: &Lookup<'_>,
        index: &VersionedIndex<'_>,
    ) -> Result<Self> {
        let prefixes = ctx.project_config()?.prefixes.clone();
        let (found, _) = lock_graph::project_roots(&ctx.project, &prefixes)?;
        let mut by_key: BTreeMap<String, Vec<Pin>> = BTreeMap::new();
        for f in found {
            let Some(spec) = f.request.reference.pin.clone() else {
                continue;
            };
            if let Some(key) = key_of(lock, lookup, index, &f.request) {
                let at = format!("{}:{}", f.file.display(), f.line);
                by_key.entry(key).or_default().push(Pin { spec, at });
            }
        }
        Ok(Self { by_key })
    }

    pub fn of(&self, key: &str) -> &[Pin] {
        self.by_key.get(key).map_or(&[], Vec::as_slice)
    }
}

/// The bound on one module: the source pins, else what the lock asked for.
pub fn describe_bound(pins: &[Pin], requested: Option<&str>) -> String {
    match (pins, requested) {
        ([], Some(r)) => format!("{r} (as locked)"),
        ([], None) => "no pin".into(),
        (pins, _) => pins
            .iter()
            .map(|p| format!("{} pinned at {}", p.spec, p.at))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The newest revision of a gist module the pins allow: the current one
/// without a pin, else the one every revision prefix selects.
pub fn wanted_revision<'m>(module: &'m ModuleRecord, pins: &[Pin]) -> Result<&'m RevisionRecord> {
    let Some(longest) = pins.iter().max_by_key(|p| p.spec.len()) else {
        return Ok(&module.current);
    };
    let mut r = mlld_schemas::ModuleRef::parse(&module.full_name())?;
    r.pin = Some(longest.spec.clone());
    let revision = crate::resolve::pick_revision(module, &r)?;
    if let Some(other) = pins
        .iter()
        .find(|p| !revision.revision.starts_with(p.spec.as_str()))
    {
        bail!(
            "{} is pinned to revision {} at {} and {} at {}; make the pins agree",
            module.full_name(),
            longest.spec,
            longest.at,
            other.spec,
            other.at
        );
    }
    Ok(revision)
}

/// The newest version of a versioned module the pins allow (every pin at
/// once), else what `requested` selects; and what the lock should record
/// as requested.
pub fn wanted_version<'m>(
    module: &'m VersionedModule,
    requested: &str,
    pins: &[Pin],
) -> Result<(&'m VersionRecord, String)> {
    if pins.is_empty() || pins.iter().all(|p| p.spec == pins[0].spec) {
        let asked = pins.first().map_or(requested, |p| p.spec.as_str());
        let record = crate::versioned::select(module, Some(asked))?;
        return Ok((record, asked.to_string()));
    }
    let specs: Vec<VersionSpec> = pins
        .iter()
        .map(|p| crate::versioned::parse_spec(module, Some(&p.spec)).map(Option::unwrap))
        .collect::<Result<_>>()?;
    let mut names = module.version_names();
    mlld_schemas::version_spec::sort_descending(&mut names);
    let allowed = |v: &str| {
        specs.iter().all(|s| match s {
            VersionSpec::Tag(_) => VersionSpec::select(Some(s), &names, &module.tags) == Some(v),
            _ => s.matches(v, &module.tags),
        })
    };
    let Some(record) = names
        .iter()
        .find(|v| allowed(v))
        .and_then(|v| module.version(v))
    else {
        let all = describe_bound(pins, None);
        bail!(
            "no version of {} satisfies every pin ({all}); make the pins agree",
            module.full_name()
        );
    };
    // The lock keeps what it asked for when a source still asks for it.
    let asked = pins
        .iter()
        .find(|p| p.spec == requested)
        .unwrap_or(&pins[0])
        .spec
        .clone();
    Ok((record, asked))
}

/// Whether version `a` is higher than `b` (semver precedence).
pub fn newer(a: &str, b: &str) -> bool {
    match (parse_version(a), parse_version(b)) {
        (Ok(a), Ok(b)) => a > b,
        _ => false,
    }
}

/// `(2.0.0 available outside ^1.2 pinned at main.mld:3)`, or nothing when
/// the newest there is is what the pins allow.
pub fn outside_note(latest: &str, wanted: &str, bound: &str, later: bool) -> Option<String> {
    (later && latest != wanted).then(|| format!("({latest} available outside {bound})"))
}
