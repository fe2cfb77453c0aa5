//! Versioned modules of today's registry (`@author/name` with versions,
//! ranges and dist-tags), resolved offline from the verified snapshot.
//!
//! Which module a reference names, when a name exists in both layouts:
//! `mlld://user/module` and a revision pin (`@user/module@b20e54d`, 4 to 40
//! lowercase hex digits) name the Phase-1 gist module; every other
//! reference names the versioned module when the snapshot has one, else
//! the Phase-1 module. A version, range or tag on a Phase-1-only module is
//! an error.

use anyhow::{Result, bail};
use mlld_schemas::import_ref::RefForm;
use mlld_schemas::lock::{VersionedLockEntry, registry_url};
use mlld_schemas::names::format_timestamp;
use mlld_schemas::{ModuleRef, VersionRecord, VersionSpec, VersionedModule};

use crate::registry::Registry;
use crate::resolve::Lookup;

/// Versioned modules by `(author, name)`, authors case-insensitively.
#[derive(Clone, Copy)]
pub struct VersionedIndex<'m> {
    registry: &'m Registry,
}

impl<'m> VersionedIndex<'m> {
    pub fn new(registry: &'m Registry) -> Self {
        Self { registry }
    }

    /// The registry it indexes (whose gist modules share its names).
    pub fn registry(&self) -> &'m Registry {
        self.registry
    }

    pub fn get(&self, author: &str, name: &str) -> Result<Option<&'m VersionedModule>> {
        self.registry.versioned(author, name)
    }
}

/// Which layout a reference resolves in.
pub enum Target<'m> {
    Gist,
    Versioned(&'m VersionedModule),
}

/// Applies the name-collision rule (see the module docs).
pub fn route<'m>(
    versioned: &VersionedIndex<'m>,
    gists: &Lookup<'_>,
    reference: &ModuleRef,
    form: RefForm,
) -> Result<Target<'m>> {
    if form == RefForm::MlldUrl || reference.revision_prefix().is_some() {
        return Ok(Target::Gist);
    }
    if let Some(m) = versioned.get(&reference.user, &reference.module)? {
        return Ok(Target::Versioned(m));
    }
    if let (Some(pin), Some(m)) = (
        reference.pin.as_deref(),
        gists.get(&reference.user, &reference.module)?,
    ) {
        bail!(
            "{} is a Phase-1 gist module without versions, so `@{pin}` (a version, range or tag) cannot select anything; pin a gist revision instead (4 to 40 hex digits, e.g. @{}/{}@{}) or drop the pin",
            m.full_name(),
            m.user,
            m.name,
            &m.current.revision[..7],
            pin = crate::commands::safe(pin),
        );
    }
    Ok(Target::Gist)
}

/// What a pin asks for: `None` is `latest`.
pub fn parse_spec(module: &VersionedModule, pin: Option<&str>) -> Result<Option<VersionSpec>> {
    match pin {
        None => Ok(None),
        Some(pin) => VersionSpec::parse(pin).map(Some).map_err(|e| {
            anyhow::anyhow!("{}@{}: {e}", module.full_name(), crate::commands::safe(pin))
        }),
    }
}

/// The version `pin` selects, or an error listing what there is.
pub fn select<'m>(module: &'m VersionedModule, pin: Option<&str>) -> Result<&'m VersionRecord> {
    let spec = parse_spec(module, pin)?;
    if let Some(found) = module.select(spec.as_ref()) {
        return Ok(found);
    }
    let asked = pin.unwrap_or("latest");
    bail!(
        "{}@{} matches none of the versions in this snapshot ({}; tags: {}); pick another, or run `mlld-registry sync` if it was published recently",
        module.full_name(),
        crate::commands::safe(asked),
        available(module),
        tags(module)
    )
}

/// `1.2.0, 1.1.0, …` (at most 12, highest first).
pub fn available(module: &VersionedModule) -> String {
    let mut names = module.version_names();
    mlld_schemas::version_spec::sort_descending(&mut names);
    let more = names.len().saturating_sub(12);
    names.truncate(12);
    let mut text = names.join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    if text.is_empty() {
        text = "none".into();
    }
    text
}

/// `latest → 1.2.0, beta → 2.0.0-beta.1`.
pub fn tags(module: &VersionedModule) -> String {
    if module.tags.is_empty() {
        return "none".into();
    }
    module
        .tags
        .iter()
        .map(|(t, v)| format!("{t} → {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a lock entry still answers what is asked: any version for
/// `latest`, the same tag, or a version the range or exact pin accepts.
pub fn entry_satisfies(entry: &VersionedLockEntry, spec: Option<&VersionSpec>) -> bool {
    match spec {
        None => true,
        Some(VersionSpec::Tag(t)) => entry.requested == *t,
        Some(s) => s.matches(&entry.version, &Default::default()),
    }
}

/// A lock entry for `record` of `module`.
pub fn new_entry(
    module: &VersionedModule,
    record: &VersionRecord,
    requested: &str,
    now: time::OffsetDateTime,
) -> VersionedLockEntry {
    let content_hash = mlld_schemas::content_hash::parse_content_hash(&record.content_hash)
        .unwrap_or(&record.content_hash)
        .to_string();
    VersionedLockEntry {
        resolved: registry_url(&module.author, &module.name, &record.version),
        version: record.version.clone(),
        requested: requested.to_string(),
        content_hash,
        integrity: record.integrity.clone(),
        approved_at: format_timestamp(now),
        extra: Default::default(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use mlld_schemas::{Manifest, SourceRecord, VersionFileRecord};

    pub fn module(versions: &[&str], tags: &[(&str, &str)]) -> VersionedModule {
        VersionedModule {
            author: "Alice".into(),
            name: "tool".into(),
            about: String::new(),
            owners: vec![],
            maintainers: vec![],
            created: None,
            tags: tags
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            versions: versions.iter().map(|v| record(v)).collect(),
        }
    }

    fn record(version: &str) -> VersionRecord {
        let hex = mlld_schemas::sha256_hex(version.as_bytes());
        VersionRecord {
            version: version.into(),
            published_at: None,
            published_by: None,
            needs: vec![],
            license: None,
            mlld_version: None,
            kind: None,
            keywords: vec![],
            repo: None,
            bugs: None,
            homepage: None,
            source: SourceRecord {
                kind: "github".into(),
                url: String::new(),
                repository: None,
                commit: "0".repeat(40),
                path: "index.mld".into(),
            },
            content_hash: format!("sha256:{hex}"),
            entry: "index.mld".into(),
            integrity: format!("sha256:{hex}"),
            size: 1,
            files: vec![VersionFileRecord {
                path: "index.mld".into(),
                sha256: hex,
                size: 1,
            }],
            dependencies: vec![],
        }
    }

    fn manifest(versioned: Vec<VersionedModule>) -> Manifest {
        Manifest {
            format_version: 1,
            serial: 1,
            created: "2026-01-01T00:00:00Z".into(),
            expires: "2026-01-15T00:00:00Z".into(),
            modules: vec![],
            advisories: vec![],
            versioned,
            members: Default::default(),
            rejected: vec![],
        }
    }

    const VERSIONS: [&str; 7] = [
        "2.1.0-rc.1",
        "2.0.0",
        "2.0.0-beta.1",
        "1.5.0",
        "1.4.1",
        "1.2.5",
        "1.0.0",
    ];

    fn pick(pin: Option<&str>) -> String {
        let m = module(&VERSIONS, &[("stable", "1.4.1"), ("beta", "2.1.0-rc.1")]);
        select(&m, pin).unwrap().version.clone()
    }

    #[test]
    fn ranges_tags_and_pins_select_offline() {
        assert_eq!(pick(None), "2.0.0");
        assert_eq!(pick(Some("latest")), "2.0.0");
        assert_eq!(pick(Some("stable")), "1.4.1");
        assert_eq!(pick(Some("beta")), "2.1.0-rc.1");
        assert_eq!(pick(Some("^1.2")), "1.5.0");
        assert_eq!(pick(Some("~1.2.3")), "1.2.5");
        assert_eq!(pick(Some(">=1.0.0 <2")), "1.5.0");
        assert_eq!(pick(Some("1.x")), "1.5.0");
        assert_eq!(pick(Some("1.2 - 1.4")), "1.4.1");
        assert_eq!(pick(Some("1.0.0 || ~1.2")), "1.2.5");
        assert_eq!(pick(Some("1.0.0")), "1.0.0");
        assert_eq!(pick(Some("^2.0.0-beta.0")), "2.0.0");
        assert_eq!(pick(Some(">=2.0.0-beta.0 <2.0.0")), "2.0.0-beta.1");
        let m = module(&VERSIONS, &[]);
        let err = select(&m, Some("^3")).unwrap_err().to_string();
        assert!(
            err.contains("@Alice/tool@^3 matches none") && err.contains("2.1.0-rc.1, 2.0.0"),
            "{err}"
        );
        let err = select(&m, Some("nightly")).unwrap_err().to_string();
        assert!(err.contains("tags: none"), "{err}");
        assert!(select(&m, Some("^^1")).is_err());
    }

    #[test]
    fn the_name_collision_rule() {
        let m = Registry::from_manifest(manifest(vec![module(&["1.0.0"], &[])]));
        let (index, gists) = (VersionedIndex::new(&m), Lookup::new(&m));
        let at = |s: &str| ModuleRef::parse(s).unwrap();
        let versioned = |r: &str, form| {
            matches!(
                route(&index, &gists, &at(r), form).unwrap(),
                Target::Versioned(_)
            )
        };
        assert!(
            versioned("@alice/tool", RefForm::At),
            "authors case-insensitively"
        );
        assert!(versioned("@ALICE/tool@^1", RefForm::At));
        assert!(versioned("@alice/tool@latest", RefForm::At));
        assert!(!versioned("@alice/tool", RefForm::MlldUrl));
        assert!(!versioned("@alice/tool@b20e54d", RefForm::At));
        assert!(!versioned("@bob/other", RefForm::At));
    }

    #[test]
    fn lock_entries_answer_their_request() {
        let m = module(&VERSIONS, &[("stable", "1.4.1")]);
        let e = new_entry(
            &m,
            m.version("1.4.1").unwrap(),
            "stable",
            time::OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(e.resolved, "registry://@Alice/tool@1.4.1");
        assert!(!e.content_hash.starts_with("sha256:"));
        let spec = |s: &str| VersionSpec::parse(s).unwrap();
        assert!(entry_satisfies(&e, None));
        assert!(entry_satisfies(&e, Some(&spec("stable"))));
        assert!(!entry_satisfies(&e, Some(&spec("beta"))));
        assert!(entry_satisfies(&e, Some(&spec("^1.2"))));
        assert!(!entry_satisfies(&e, Some(&spec("^2"))));
    }
}
