//! Whether a locked module is affected by an advisory (its ranges, see
//! `mlld_schemas::advisory_scope`) and what fixes it: the version or
//! revision `update` would move to, or else the first one outside what the
//! project asked for.

use mlld_schemas::version_spec::parse_version;
use mlld_schemas::{Advisory, ModuleRecord, VersionedModule};

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

/// What fixes `a` for a gist module locked at `locked`: its newest revision
/// (where `update` moves it) when that one is not affected.
pub fn for_revision(a: &Advisory, module: &ModuleRecord, locked: &str) -> Option<Fix> {
    let current = &module.current;
    let fixed = current.revision != locked
        && !a.affects_revision(&current.revision, current.committed_at.as_deref());
    fixed.then(|| Fix {
        version: None,
        revision: Some(current.revision.clone()),
        by_update: true,
    })
}

/// What fixes `a` for a versioned module locked at `locked` and asked for
/// as `requested`: the version `update` selects, when it is not affected;
/// else the lowest unaffected version above the locked one (a stable one
/// unless the locked version is a prerelease).
pub fn for_version(
    a: &Advisory,
    module: &VersionedModule,
    locked: &str,
    requested: &str,
) -> Option<Fix> {
    let fix = |version: &str, by_update| Fix {
        version: Some(version.to_string()),
        revision: None,
        by_update,
    };
    if let Ok(target) = crate::versioned::select(module, Some(requested))
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

    #[test]
    fn update_within_the_range_or_the_first_fixed_version_beyond() {
        let module =
            crate::versioned::tests::module(&["1.0.0", "1.1.0", "2.0.0", "2.1.0-beta.1"], &[]);
        let a = advisory(serde_json::json!({"affectedVersions": "<2.0.0"}));
        assert_eq!(
            for_version(&a, &module, "1.0.0", "^1.0.0"),
            Some(Fix {
                version: Some("2.0.0".into()),
                revision: None,
                by_update: false
            })
        );
        assert_eq!(
            for_version(&a, &module, "1.0.0", "latest").map(|f| (f.version, f.by_update)),
            Some((Some("2.0.0".into()), true))
        );
        let none = advisory(serde_json::json!({}));
        assert_eq!(for_version(&none, &module, "1.0.0", "latest"), None);
    }
}
