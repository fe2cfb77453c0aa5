//! Whether a locked module is affected by an advisory (its ranges, see
//! `mlld_schemas::advisory_scope`) and what fixes it: the version or
//! revision `update` would move to, or else the first one outside what the
//! project asked for.

use mlld_schemas::version_spec::parse_version;
use mlld_schemas::{Advisory, ModuleRecord, RevisionRecord, VersionRecord, VersionedModule};

use crate::resolve;
pub use mlld_schemas::output::Fix;

/// Whether the locked `revision` of the gist module `module` (when the
/// snapshot knows it: its commit time) is affected by `a`.
pub fn revision_affected(a: &Advisory, module: Option<&ModuleRecord>, revision: &str) -> bool {
    let committed = module
        .and_then(|m| resolve::locked_revision(m, revision))
        .and_then(|r| r.committed_at.as_deref());
    a.affects_revision(revision, committed)
}

/// What fixes `a` for a gist module locked at `locked`: `wanted`, the
/// revision `update` moves it to (the newest the source pins allow), when
/// that one is not affected; else the module's current revision, when a
/// pin holds the module below it ("change the pin").
pub fn for_revision(
    a: &Advisory,
    module: &ModuleRecord,
    wanted: Option<&RevisionRecord>,
    locked: &str,
) -> Option<Fix> {
    let fixes = |r: &RevisionRecord| {
        r.revision != locked && !a.affects_revision(&r.revision, r.committed_at.as_deref())
    };
    let fix = |r: &RevisionRecord, by_update| Fix {
        version: None,
        revision: Some(r.revision.clone()),
        by_update,
    };
    match wanted {
        Some(w) if fixes(w) => Some(fix(w, true)),
        _ => fixes(&module.current).then(|| fix(&module.current, false)),
    }
}

/// What fixes `a` for a versioned module locked at `locked`: `wanted`, the
/// version `update` selects (within the source pins, else the range the
/// lock asked for), when it is not affected;
/// else the lowest unaffected version above the locked one (a stable one
/// unless the locked version is a prerelease).
pub fn for_version(
    a: &Advisory,
    module: &VersionedModule,
    locked: &str,
    wanted: Option<&VersionRecord>,
) -> Option<Fix> {
    let fix = |version: &str, by_update| Fix {
        version: Some(version.to_string()),
        revision: None,
        by_update,
    };
    if let Some(target) = wanted
        && target.version != locked
        && !a.affects_version(&target.version)
    {
        return Some(fix(&target.version, true));
    }
    let locked = parse_version(locked).ok()?;
    module
        .versions
        .iter()
        .filter_map(|r| parse_version(&r.version).ok().map(|v| (v, &r.version)))
        .filter(|(v, _)| *v > locked && (locked.is_prerelease() || !v.is_prerelease()))
        .filter(|(_, text)| !a.affects_version(text))
        .min_by(|x, y| x.0.cmp(&y.0))
        .map(|(_, text)| fix(text, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advisory(extra: serde_json::Value) -> Advisory {
        let mut base = serde_json::json!({
            "id": "1", "created": "2024-01-01T00:00:00Z", "severity": "low",
            "affects": ["tool"], "type": "t", "description": "d"
        });
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn wanted<'m>(module: &'m VersionedModule, requested: &str) -> Option<&'m VersionRecord> {
        crate::versioned::select(module, Some(requested)).ok()
    }

    #[test]
    fn update_within_the_range_or_the_first_fixed_version_beyond() {
        let module =
            crate::versioned::tests::module(&["1.0.0", "1.1.0", "2.0.0", "2.1.0-beta.1"], &[]);
        let a = advisory(serde_json::json!({"affectedVersions": "<2.0.0"}));
        assert_eq!(
            for_version(&a, &module, "1.0.0", wanted(&module, "^1.0.0")),
            Some(Fix {
                version: Some("2.0.0".into()),
                revision: None,
                by_update: false
            })
        );
        assert_eq!(
            for_version(&a, &module, "1.0.0", wanted(&module, "latest"))
                .map(|f| (f.version, f.by_update)),
            Some((Some("2.0.0".into()), true))
        );
        let none = advisory(serde_json::json!({}));
        assert_eq!(
            for_version(&none, &module, "1.0.0", wanted(&module, "latest")),
            None
        );
    }
}
