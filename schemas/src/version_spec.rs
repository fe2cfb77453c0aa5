//! What a reference asks of a versioned module: an exact version, an
//! npm-style range (npm's rules, prereleases included only when the range
//! names one) or a dist-tag; and which published version that selects.

use std::collections::BTreeMap;
use std::fmt;

pub use nodejs_semver::{Range, Version};

/// A parsed pin of a versioned module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionSpec {
    Exact(Version),
    Range(Range),
    Tag(String),
}

/// A strict `MAJOR.MINOR.PATCH[-pre][+build]` version.
pub fn parse_version(text: &str) -> Result<Version, String> {
    let strict = text
        .split(['-', '+'])
        .next()
        .unwrap_or("")
        .split('.')
        .count()
        == 3
        && text.starts_with(|c: char| c.is_ascii_digit());
    match Version::parse(text) {
        Ok(v) if strict => Ok(v),
        _ => Err(format!("`{text}` is not a version (MAJOR.MINOR.PATCH)")),
    }
}

/// Why [`parse_range`] refused a range.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeError {
    /// Not npm range syntax.
    Invalid,
    /// A set of bounds no version meets (`>=1.1.0 <1.0.0`), as written.
    Empty(String),
}

impl RangeError {
    /// Why `text` (a pin or an advisory's range) was refused, when a set of
    /// its bounds matches nothing: the one wording for both.
    pub(crate) fn empty_set(text: &str, set: &str) -> String {
        format!("`{text}`: the set `{set}` matches no version (its bounds exclude each other)")
    }
}

/// An npm range, the one parser for pins and advisory ranges. A set whose
/// bounds exclude each other is refused: nodejs-semver 7 reads
/// `>=1.1.0 <1.0.0` as `>=1.1.0 || <1.0.0`, which would select the newest
/// version (or mark every version affected) where npm matches none.
pub fn parse_range(text: &str) -> Result<Range, RangeError> {
    let range = Range::parse(text).map_err(|_| RangeError::Invalid)?;
    for set in text.split("||") {
        let one = Range::parse(set).map_err(|_| RangeError::Invalid)?;
        if one.to_string().contains("||") {
            return Err(RangeError::Empty(set.trim().to_string()));
        }
    }
    Ok(range)
}

impl VersionSpec {
    /// Parses a pin: an exact version, a dist-tag (a name that starts with a
    /// letter and is no range, like `latest` or `beta`), else a range.
    pub fn parse(pin: &str) -> Result<Self, String> {
        let pin = pin.trim();
        if let Ok(v) = parse_version(pin) {
            return Ok(Self::Exact(v));
        }
        let rest = pin.get(1..).unwrap_or("");
        let is_range_letter = pin.starts_with(['x', 'X', 'v', 'V'])
            && (rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_digit() || c == '.'))
            && pin != "v"
            && pin != "V";
        if crate::versioned::check_tag_name(pin).is_ok() && !is_range_letter {
            return Ok(Self::Tag(pin.to_string()));
        }
        match parse_range(pin) {
            Ok(r) => Ok(Self::Range(r)),
            Err(RangeError::Empty(set)) => Err(format!(
                "{}; write a range such as >=1.0.0 <2",
                RangeError::empty_set(pin, &set)
            )),
            Err(RangeError::Invalid) => Err(format!(
                "`{pin}` is not a version, a range (such as ^1.2 or >=1.0.0 <2) or a dist-tag"
            )),
        }
    }

    /// The version this spec selects among `versions` (as published), with
    /// the module's dist-tags. No spec means `latest`.
    pub fn select<'v>(
        spec: Option<&Self>,
        versions: &'v [String],
        tags: &BTreeMap<String, String>,
    ) -> Option<&'v str> {
        let parsed: Vec<(Version, &'v str)> = versions
            .iter()
            .filter_map(|v| parse_version(v).ok().map(|p| (p, v.as_str())))
            .collect();
        match spec {
            None => latest(&parsed, tags),
            Some(Self::Tag(tag)) if tag == "latest" => latest(&parsed, tags),
            Some(Self::Tag(tag)) => {
                let wanted = tags.get(tag)?;
                parsed.iter().find(|(_, s)| *s == wanted).map(|(_, s)| *s)
            }
            Some(Self::Exact(v)) => parsed.iter().find(|(p, _)| p == v).map(|(_, s)| *s),
            Some(Self::Range(r)) => parsed
                .iter()
                .filter(|(p, _)| r.satisfies(p))
                .max_by(|a, b| a.0.cmp(&b.0))
                .map(|(_, s)| *s),
        }
    }

    /// Whether `version` satisfies this spec (tags compare by what they name).
    pub fn matches(&self, version: &str, tags: &BTreeMap<String, String>) -> bool {
        let Ok(v) = parse_version(version) else {
            return false;
        };
        match self {
            Self::Exact(e) => *e == v,
            Self::Range(r) => r.satisfies(&v),
            Self::Tag(t) => tags.get(t).is_some_and(|named| named == version),
        }
    }
}

/// The `latest` tag, or else the highest stable version, or else the highest.
fn latest<'v>(parsed: &[(Version, &'v str)], tags: &BTreeMap<String, String>) -> Option<&'v str> {
    if let Some(tagged) = tags.get("latest") {
        return parsed.iter().find(|(_, s)| *s == tagged).map(|(_, s)| *s);
    }
    let stable = parsed
        .iter()
        .filter(|(p, _)| !p.is_prerelease())
        .max_by(|a, b| a.0.cmp(&b.0));
    stable
        .or_else(|| parsed.iter().max_by(|a, b| a.0.cmp(&b.0)))
        .map(|(_, s)| *s)
}

impl fmt::Display for VersionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(v) => write!(f, "{v}"),
            Self::Range(r) => write!(f, "{r}"),
            Self::Tag(t) => f.write_str(t),
        }
    }
}

/// Sorts version strings from highest to lowest by semver precedence;
/// strings that are no version go last, in text order.
pub fn sort_descending(versions: &mut [String]) {
    versions.sort_by(|a, b| match (parse_version(a), parse_version(b)) {
        (Ok(x), Ok(y)) => y.cmp(&x),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_whose_bounds_exclude_each_other_is_refused() {
        for empty in [
            ">=1.1.0 <1.0.0",
            ">=2 <1",
            ">1.0.0 <1.0.0",
            ">=3 <0",
            "^1 || >=2 <1",
        ] {
            assert!(
                matches!(parse_range(empty), Err(RangeError::Empty(_))),
                "{empty}"
            );
            let err = VersionSpec::parse(empty).unwrap_err();
            assert!(err.contains("matches no version"), "{empty}: {err}");
        }
        for fine in ["^1.0", ">=1.0.0 <2", "1.x || >=3", "1 - 2", "*", "~1.2.3"] {
            assert!(parse_range(fine).is_ok(), "{fine}");
        }
        assert_eq!(parse_range("not a range").unwrap_err(), RangeError::Invalid);
        assert_eq!(
            parse_range("^1 || >=2 <1").unwrap_err(),
            RangeError::Empty(">=2 <1".into())
        );
    }

    fn pick(spec: &str, tags: &[(&str, &str)]) -> Option<String> {
        let versions: Vec<String> = [
            "1.0.0",
            "1.2.0",
            "1.2.5",
            "1.4.1",
            "1.5.0",
            "2.0.0-beta.1",
            "2.0.0",
            "2.1.0-rc.1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let tags = tags
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let spec = (!spec.is_empty()).then(|| VersionSpec::parse(spec).unwrap());
        VersionSpec::select(spec.as_ref(), &versions, &tags).map(str::to_string)
    }

    #[test]
    fn ranges_follow_npm() {
        assert_eq!(pick("^1.2", &[]).as_deref(), Some("1.5.0"));
        assert_eq!(pick("~1.2.3", &[]).as_deref(), Some("1.2.5"));
        assert_eq!(pick(">=1.0.0 <2", &[]).as_deref(), Some("1.5.0"));
        assert_eq!(pick("1.x", &[]).as_deref(), Some("1.5.0"));
        assert_eq!(pick("1.2 - 1.4", &[]).as_deref(), Some("1.4.1"));
        assert_eq!(pick("1.0.0 || ^1.2.0 <1.3", &[]).as_deref(), Some("1.2.5"));
        assert_eq!(pick("1.2.0", &[]).as_deref(), Some("1.2.0"));
        assert_eq!(pick("^3", &[]), None);
        // Prereleases only when the range names one on the same version.
        assert_eq!(
            pick(">=2.0.0-beta.0 <2.0.0", &[]).as_deref(),
            Some("2.0.0-beta.1")
        );
        assert_eq!(pick("^2.0.0", &[]).as_deref(), Some("2.0.0"));
        assert_eq!(pick("^2.1.0-rc.0", &[]).as_deref(), Some("2.1.0-rc.1"));
    }

    #[test]
    fn tags_and_latest() {
        assert_eq!(pick("", &[]).as_deref(), Some("2.0.0"));
        assert_eq!(pick("latest", &[]).as_deref(), Some("2.0.0"));
        assert_eq!(pick("", &[("latest", "1.5.0")]).as_deref(), Some("1.5.0"));
        assert_eq!(
            pick("stable", &[("stable", "1.4.1")]).as_deref(),
            Some("1.4.1")
        );
        assert_eq!(pick("beta", &[]), None);
        assert!(matches!(
            VersionSpec::parse("beta"),
            Ok(VersionSpec::Tag(_))
        ));
        assert!(matches!(VersionSpec::parse("x"), Ok(VersionSpec::Range(_))));
        assert!(matches!(
            VersionSpec::parse("1.2.3"),
            Ok(VersionSpec::Exact(_))
        ));
        assert!(VersionSpec::parse("^^1").is_err());
    }

    #[test]
    fn versions_sort_by_precedence() {
        let mut v: Vec<String> = ["1.10.0", "1.2.0", "2.0.0-rc.1", "2.0.0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        sort_descending(&mut v);
        assert_eq!(v, ["2.0.0", "2.0.0-rc.1", "1.10.0", "1.2.0"]);
    }
}
