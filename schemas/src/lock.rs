//! The project lock file `.mlld/mlld.lock.json` and the cache's `metadata.json`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diag::JsonPath;
use crate::document::{self, Checked};
use crate::import_ref::ModuleRef;
use crate::names;

pub const LOCK_VERSION: &str = "1.0.0";

/// `.mlld/mlld.lock.json`, exactly as in the registry guide.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LockFile {
    pub version: String,
    /// Import path (`mlld://user/module`) to its pinned resolution.
    #[serde(default)]
    pub imports: BTreeMap<String, LockEntry>,
    /// Versioned modules of today's registry: `@author/name` to the exact
    /// version locked. Absent while the project locks none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub modules: BTreeMap<String, VersionedLockEntry>,
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: BTreeMap<String, Value>,
}

/// A versioned module pinned to one exact version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionedLockEntry {
    /// `registry://@author/name@<version>`.
    pub resolved: String,
    /// The exact version locked.
    pub version: String,
    /// What the project asked for: a range, a dist-tag, or `latest`.
    pub requested: String,
    /// The registry's content hash of the version (SHA-256 hex).
    #[schemars(regex(pattern = "^[0-9a-f]{64}$"))]
    pub content_hash: String,
    /// `sha256:` and the hex digest of the entry file.
    #[schemars(regex(pattern = "^sha256:[0-9a-f]{64}$"))]
    pub integrity: String,
    #[schemars(extend("format" = "date-time"))]
    pub approved_at: String,
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: BTreeMap<String, Value>,
}

/// `registry://@author/name@version`.
pub fn registry_url(author: &str, name: &str, version: &str) -> String {
    format!("registry://@{author}/{name}@{version}")
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockEntry {
    /// `mlld://gist/{user}/{gist id}`.
    pub resolved: String,
    /// The gist revision (40 hex digits).
    #[schemars(regex(pattern = "^[0-9a-f]{40}$"))]
    pub gist_revision: String,
    /// `sha256:` and the hex digest of the module's content.
    #[schemars(regex(pattern = "^sha256:[0-9a-f]{64}$"))]
    pub integrity: String,
    #[schemars(extend("format" = "date-time"))]
    pub approved_at: String,
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: BTreeMap<String, Value>,
}

impl LockFile {
    pub fn new() -> Self {
        Self {
            version: LOCK_VERSION.into(),
            ..Self::default()
        }
    }

    /// The file's bytes: 2-space pretty JSON with a final newline, as mlld writes it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("lock files always serialize");
        out.push(b'\n');
        out
    }
}

/// `mlld://gist/{user}/{gist}` split into its parts.
pub fn parse_resolved(resolved: &str) -> Option<(&str, &str)> {
    let rest = resolved.strip_prefix("mlld://gist/")?;
    let (user, gist) = rest.split_once('/')?;
    (names::check_user(user).is_ok() && names::check_gist_id(gist).is_ok()).then_some((user, gist))
}

pub fn resolved_url(user: &str, gist: &str) -> String {
    format!("mlld://gist/{user}/{gist}")
}

/// Reads a lock file strictly: any invalid registry entry makes it an error,
/// because silently dropping a pin would change what gets installed.
pub fn check_lock(file: &str, src: &str) -> Checked<LockFile> {
    let mut doc = match document::parse(file, src) {
        Ok(doc) => doc,
        Err(diagnostics) => {
            return Checked {
                value: None,
                diagnostics,
            };
        }
    };
    let root = JsonPath::root();
    let value = std::mem::take(&mut doc.value);
    let Some(lock) = doc.take::<LockFile>(value, &root, "lock file") else {
        return doc.finish(None);
    };
    for (key, entry) in &lock.imports {
        let path = root.key("imports").key(key.clone());
        if !key.starts_with("mlld://") || key.starts_with("mlld://gist/") {
            // Not a registry import: mlld may lock other kinds; keep them untouched.
            continue;
        }
        let fix_key = "write the key as mlld://user/module";
        let parsed = ModuleRef::parse(key).map_err(|e| e.to_string());
        doc.rule(path.clone(), parsed.map(|_| ()), fix_key);
        doc.rule(
            path.key("resolved"),
            parse_resolved(&entry.resolved).map(|_| ()).ok_or_else(|| {
                format!(
                    "`{}` is not a gist reference (mlld://gist/user/id)",
                    entry.resolved
                )
            }),
            "run `mlld-registry install` after removing this entry to resolve it again",
        );
        doc.rule(
            path.key("gistRevision"),
            names::check_revision(&entry.gist_revision),
            "remove this entry and resolve the module again",
        );
        doc.rule(
            path.key("integrity"),
            names::check_integrity(&entry.integrity),
            "remove this entry and resolve the module again",
        );
        doc.rule(
            path.key("approvedAt"),
            names::check_timestamp(&entry.approved_at),
            "write the time as RFC 3339",
        );
    }
    for (key, entry) in &lock.modules {
        check_versioned_entry(&mut doc, &root.key("modules").key(key.clone()), key, entry);
    }
    let ok = !doc.sink.has_errors();
    doc.finish(ok.then_some(lock))
}

fn check_versioned_entry(
    doc: &mut document::Document<'_>,
    path: &JsonPath,
    key: &str,
    entry: &VersionedLockEntry,
) {
    let again = "remove this entry and resolve the module again";
    let parsed = ModuleRef::parse(key)
        .map_err(|e| e.to_string())
        .and_then(|r| match (key.starts_with('@'), &r.pin) {
            (true, None) => Ok(r),
            _ => Err(format!("`{key}` is not a module name (@author/name)")),
        });
    let name_ok = doc.key_rule(
        path.clone(),
        parsed.clone().map(|_| ()),
        "write the key as @author/name",
    );
    doc.rule(
        path.key("version"),
        crate::version_spec::parse_version(&entry.version).map(|_| ()),
        again,
    );
    if let (true, Ok(r)) = (name_ok, parsed) {
        let expected = registry_url(&r.user, &r.module, &entry.version);
        doc.rule(
            path.key("resolved"),
            if entry.resolved == expected {
                Ok(())
            } else {
                Err(format!("`{}` should be `{expected}`", entry.resolved))
            },
            again,
        );
    }
    doc.rule(
        path.key("contentHash"),
        names::check_sha256_hex(&entry.content_hash),
        again,
    );
    doc.rule(
        path.key("integrity"),
        names::check_integrity(&entry.integrity),
        again,
    );
    doc.rule(
        path.key("approvedAt"),
        names::check_timestamp(&entry.approved_at),
        "write the time as RFC 3339",
    );
}

/// `.mlld/cache/registry/{author}/{name}/{version}/metadata.json`: a
/// versioned module's files are beside it under `files/`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionedCacheMetadata {
    pub import_path: String,
    pub version: String,
    pub content_hash: String,
    /// The entry file, relative to `files/`.
    pub entry: String,
    /// Integrity of the entry file.
    pub integrity: String,
    pub cached_at: String,
    /// Total size of the files.
    pub size: u64,
}

impl VersionedCacheMetadata {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("metadata always serializes");
        out.push(b'\n');
        out
    }
}

/// `.mlld/cache/gist/{user}/{gist}/{revision}/metadata.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheMetadata {
    pub import_path: String,
    pub gist_revision: String,
    pub integrity: String,
    pub cached_at: String,
    pub size: u64,
}

impl CacheMetadata {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("metadata always serializes");
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
  "version": "1.0.0",
  "imports": {
    "mlld://adamavenir/json-utils": {
      "resolved": "mlld://gist/adamavenir/a1f3e09a42db6c680b454f6f93efa9d8",
      "gistRevision": "b20e54d6dbf422252b7b670af492632f2fa6c1a2",
      "integrity": "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      "approvedAt": "2024-05-28T10:00:00Z"
    }
  }
}
"#;

    #[test]
    fn guide_example_round_trips_byte_for_byte() {
        let checked = check_lock("mlld.lock.json", GOOD);
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        assert_eq!(
            String::from_utf8(checked.value.unwrap().to_bytes()).unwrap(),
            GOOD
        );
    }

    #[test]
    fn bad_revision_is_located() {
        let src = GOOD.replace("b20e54d6dbf422252b7b670af492632f2fa6c1a2", "main");
        let checked = check_lock(".mlld/mlld.lock.json", &src);
        assert!(checked.value.is_none());
        let d = checked.errors().next().unwrap();
        assert_eq!(
            d.path.to_string(),
            r#"$.imports["mlld://adamavenir/json-utils"].gistRevision"#
        );
        assert_eq!((d.line, d.column), (6, 23));
        assert!(
            d.to_string()
                .starts_with(".mlld/mlld.lock.json:6:23: error:"),
            "{d}"
        );
    }

    #[test]
    fn syntax_error_has_position() {
        let checked = check_lock("l.json", "{\n  \"version\": \"1.0.0\",\n}");
        let d = &checked.diagnostics[0];
        assert_eq!(d.line, 3);
        assert!(d.message.contains("invalid JSON"));
    }

    #[test]
    fn unknown_fields_survive_a_rewrite() {
        let src = GOOD.replace(
            "\"version\": \"1.0.0\",",
            "\"version\": \"1.0.0\",\n  \"config\": {\"x\": 1},",
        );
        let lock = check_lock("l", &src).value.unwrap();
        assert!(
            String::from_utf8(lock.to_bytes())
                .unwrap()
                .contains("\"config\"")
        );
    }
}
