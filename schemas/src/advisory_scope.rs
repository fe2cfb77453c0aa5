//! Which versions or revisions an advisory affects, after RustSec's model:
//! a version in `patchedVersions` is never affected; otherwise
//! `affectedVersions` decides, and without it every unpatched version is
//! affected. For gist modules, `affectedRevisions` and `before` name the
//! affected revisions. An advisory naming neither kind of range affects
//! every version and revision, as Phase-1 advisories always did.

use crate::advisory::Advisory;
use crate::diag::JsonPath;
use crate::document::Document;
use crate::names;
use crate::version_spec::{Range, RangeError, parse_version};

/// An npm range for an advisory field (`<1.1.0`, `>=1.0.0 <2 || 3.x`).
pub fn parse_range(text: &str) -> Result<Range, String> {
    if text.trim().is_empty() {
        return Err("the range is empty".into());
    }
    crate::version_spec::parse_range(text).map_err(|e| match e {
        RangeError::Empty(set) => RangeError::empty_set(text, &set),
        RangeError::Invalid => format!(
            "`{text}` is not an npm version range (such as <1.1.0, >=1.2.3 or ^1.0.0 || ^2.0.0)"
        ),
    })
}

/// A revision (or a prefix of 7 to 40 lowercase hex digits) in `affectedRevisions`.
pub fn check_revision_prefix(rev: &str) -> Result<(), String> {
    if (7..=40).contains(&rev.len()) && names::is_lower_hex(rev) {
        Ok(())
    } else {
        Err(format!(
            "`{rev}` is not a gist revision (7 to 40 lowercase hex digits)"
        ))
    }
}

/// Checks the range fields of `adv` (at `path`) strictly; false when one is invalid.
pub(crate) fn check_scope(adv: &Advisory, path: &JsonPath, doc: &mut Document<'_>) -> bool {
    let mut ok = true;
    for (key, value) in [
        ("affectedVersions", &adv.affected_versions),
        ("patchedVersions", &adv.patched_versions),
    ] {
        if let Some(text) = value {
            ok &= doc.rule(
                path.key(key),
                parse_range(text).map(|_| ()),
                "write an npm range, e.g. \"<1.1.0\" or \">=1.1.0\"",
            );
        }
    }
    for (i, rev) in adv.affected_revisions.iter().enumerate() {
        ok &= doc.rule(
            path.key("affectedRevisions").index(i),
            check_revision_prefix(rev),
            "list gist revisions as in the gist's history (at least 7 hex digits)",
        );
    }
    if let Some(before) = &adv.before {
        ok &= doc.rule(
            path.key("before"),
            names::check_timestamp(before),
            "write the time as RFC 3339, e.g. 2024-05-28T00:00:00Z",
        );
    }
    ok
}

impl Advisory {
    /// Whether the advisory names versions (`affectedVersions` or `patchedVersions`).
    pub fn names_versions(&self) -> bool {
        self.affected_versions.is_some() || self.patched_versions.is_some()
    }

    /// Whether the advisory names revisions (`affectedRevisions` or `before`).
    pub fn names_revisions(&self) -> bool {
        !self.affected_revisions.is_empty() || self.before.is_some()
    }

    /// Whether `version` of a module the advisory names is affected.
    /// Prereleases compare by precedence; anything unreadable counts as
    /// affected (an advisory must never be hidden by a typo).
    pub fn affects_version(&self, version: &str) -> bool {
        let Ok(v) = parse_version(version) else {
            return true;
        };
        let holds = |range: &Option<String>| {
            range
                .as_deref()
                .map(|r| parse_range(r).map(|r| r.satisfies_with_prerelease(&v, true)))
        };
        if let Some(Ok(true)) = holds(&self.patched_versions) {
            return false;
        }
        match holds(&self.affected_versions) {
            Some(Ok(affected)) => affected,
            _ => true,
        }
    }

    /// Whether `revision` (committed at `committed_at`, if known) of a gist
    /// module the advisory names is affected. An unknown commit time counts
    /// as before any `before`.
    pub fn affects_revision(&self, revision: &str, committed_at: Option<&str>) -> bool {
        if !self.names_revisions() {
            return true;
        }
        let listed = self
            .affected_revisions
            .iter()
            .any(|r| revision.starts_with(r.as_str()));
        let early = self.before.as_deref().is_some_and(|before| {
            match (
                names::parse_timestamp(before),
                committed_at.map(names::parse_timestamp),
            ) {
                (Ok(before), Some(Ok(at))) => at < before,
                _ => true,
            }
        });
        listed || early
    }
}

#[cfg(test)]
mod tests {
    use crate::advisory::check_advisories;

    fn advisory(extra: &str) -> crate::Advisory {
        let src = format!(
            r#"{{"version":"1.0.0","author":"a","advisories":[{{"id":"1","created":"2024-01-01T00:00:00Z","severity":"low","affects":["m"],"type":"t","description":"d"{extra}}}]}}"#
        );
        let checked = check_advisories("a/advisories.json", "a", &src);
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        checked.value.unwrap().advisories.remove(0)
    }

    #[test]
    fn no_range_affects_everything() {
        let a = advisory("");
        assert!(a.affects_version("0.1.0") && a.affects_version("9.9.9"));
        assert!(a.affects_revision("abc", None));
    }

    #[test]
    fn patched_wins_and_affected_bounds() {
        let a = advisory(r#","affectedVersions":"<1.1.0","patchedVersions":">=1.1.0""#);
        assert!(a.affects_version("1.0.0"));
        assert!(!a.affects_version("1.1.0"));
        assert!(!a.affects_version("2.0.0"));
        let only_patched = advisory(r#","patchedVersions":"^1.2.3 || >=2.0.1""#);
        assert!(only_patched.affects_version("2.0.0"));
        assert!(!only_patched.affects_version("1.3.0"));
        let pre = advisory(r#","affectedVersions":"<1.3.0""#);
        assert!(pre.affects_version("1.3.0-beta.1"));
    }

    #[test]
    fn revisions_by_list_or_time() {
        let a = advisory(r#","affectedRevisions":["996153b"],"before":"2024-05-01T00:00:00Z""#);
        assert!(a.affects_revision("996153bec98057662b4922d7f556dd79c64deec9", None));
        assert!(a.affects_revision("f00", Some("2024-04-30T00:00:00Z")));
        assert!(!a.affects_revision("f00", Some("2024-05-02T00:00:00Z")));
        assert!(a.affects_revision("f00", None));
    }

    #[test]
    fn bad_fields_are_errors_with_their_path_and_position() {
        let src = "{\"version\":\"1.0.0\",\"author\":\"a\",\"advisories\":[{\"id\":\"1\",\"created\":\"2024-01-01T00:00:00Z\",\"severity\":\"low\",\"affects\":[\"m\"],\"type\":\"t\",\"description\":\"d\",\n\"patchedVersions\":\"not a range!\",\n\"affectedRevisions\":[\"xyz\"],\"before\":\"yesterday\"}]}";
        let checked = check_advisories("a/advisories.json", "a", src);
        let errors: Vec<String> = checked.errors().map(|d| d.to_string()).collect();
        let all = errors.join("\n");
        assert_eq!(errors.len(), 3, "{all}");
        assert!(all.contains("$.advisories[0].patchedVersions"), "{all}");
        assert!(all.contains("a/advisories.json:2:"), "{all}");
        assert!(
            all.contains("$.advisories[0].affectedRevisions[0]"),
            "{all}"
        );
        assert!(all.contains("$.advisories[0].before"), "{all}");
        assert!(checked.value.unwrap().advisories.is_empty());
    }
}
