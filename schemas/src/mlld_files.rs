//! The mlld interpreter's own files, which the client keeps current so that
//! `mlld` runs a project offline: `mlld-lock.json` at the project root and
//! the content cache `~/.mlld/cache/sha256/`.
//!
//! mlld writes them with `JSON.stringify(value, null, 2)`: two-space
//! indentation and no final newline; so do we. mlld treats an integrity
//! other than `sha256-<base64>` in the cache as corruption, so the forms
//! here are exact.

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value};

pub const MLLD_LOCK_NAME: &str = "mlld-lock.json";
pub const MLLD_LOCK_VERSION: u64 = 1;

/// One entry of `mlld-lock.json`'s `modules`, for a registry module.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MlldLockEntry {
    /// What the project asked for: a range, a tag, or `latest`.
    pub version: String,
    /// The exact version installed.
    pub registry_version: String,
    /// SHA-256 hex of the entry file.
    pub resolved: String,
    /// `registry://@author/name@<exact>`.
    pub source: String,
    /// `sha256:<hex>` of the entry file.
    pub integrity: String,
    pub fetched_at: String,
}

impl MlldLockEntry {
    pub fn registry_source(import_path: &str, version: &str) -> String {
        format!("registry://{import_path}@{version}")
    }
}

/// Merges `entries` (import path → entry) into the text of an existing
/// `mlld-lock.json` (or a new one), keeping every entry and field this
/// client does not own. An entry whose owned fields are unchanged keeps its
/// `fetchedAt`. Returns the new text, or `None` when nothing changed.
pub fn merge_mlld_lock(
    existing: Option<&str>,
    entries: &[(String, MlldLockEntry)],
    now: &str,
) -> Result<Option<String>, String> {
    let mut root: Map<String, Value> = match existing {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err("it is not a JSON object".into()),
            Err(e) => return Err(format!("invalid JSON at {}:{}: {e}", e.line(), e.column())),
        },
    };
    let before = Value::Object(root.clone());
    match root.get("lockfileVersion") {
        None => {
            root.insert("lockfileVersion".into(), MLLD_LOCK_VERSION.into());
        }
        Some(v) if v.as_u64() == Some(MLLD_LOCK_VERSION) => {}
        Some(v) => {
            return Err(format!(
                "lockfileVersion {v} is not one this client writes (1)"
            ));
        }
    }
    let modules = root
        .entry("modules")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(modules) = modules else {
        return Err("`modules` is not an object".into());
    };
    for (path, entry) in entries {
        let fresh = serde_json::to_value(entry).expect("entries serialize");
        let Value::Object(fresh) = fresh else {
            unreachable!("a struct serializes as an object")
        };
        let slot = modules
            .entry(path.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(current) = slot else {
            unreachable!("just made an object")
        };
        let unchanged = fresh
            .iter()
            .filter(|(k, _)| *k != "fetchedAt")
            .all(|(k, v)| current.get(k) == Some(v));
        for (k, v) in fresh {
            if k == "fetchedAt" && unchanged && current.contains_key("fetchedAt") {
                continue;
            }
            current.insert(k, v);
        }
    }
    if Value::Object(root.clone()) == before {
        return Ok(None);
    }
    let metadata = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = metadata {
        meta.entry("createdAt").or_insert_with(|| now.into());
        meta.insert("updatedAt".into(), now.into());
    }
    Ok(Some(to_js_json(&Value::Object(root))))
}

/// `metadata.json` of one entry of mlld's content cache.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MlldCacheMetadata {
    pub hash: String,
    /// `sha256-<base64 of the digest>`.
    pub integrity: String,
    pub source: String,
    pub cached_at: String,
    pub size: u64,
    pub import_path: String,
}

impl MlldCacheMetadata {
    pub fn new(content: &[u8], source: &str, import_path: &str, cached_at: &str) -> Self {
        Self {
            hash: crate::sha256_hex(content),
            integrity: sri_integrity(content),
            source: source.into(),
            cached_at: cached_at.into(),
            size: content.len() as u64,
            import_path: import_path.into(),
        }
    }

    pub fn to_text(&self) -> String {
        to_js_json(&serde_json::to_value(self).expect("metadata serializes"))
    }
}

/// `sha256-<base64>`: the integrity form of mlld's cache.
pub fn sri_integrity(content: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(content);
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The directory of a cache entry, relative to the cache root
/// (`~/.mlld/cache/sha256`): `{hex[0:2]}/{hex[2:]}`.
pub fn cache_entry_dir(hex: &str) -> String {
    format!("{}/{}", &hex[..2], &hex[2..])
}

/// Sets `import_path → hash` in the text of the cache's `index.json`.
pub fn merge_cache_index(
    existing: Option<&str>,
    entries: &[(String, String)],
) -> Result<Option<String>, String> {
    let mut index: Map<String, Value> = match existing {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            _ => return Err("it is not a JSON object".into()),
        },
    };
    let before = index.clone();
    for (path, hash) in entries {
        index.insert(path.clone(), Value::String(hash.clone()));
    }
    Ok((index != before).then(|| to_js_json(&Value::Object(index))))
}

/// Removes from the text of `mlld-lock.json` each entry `(import path,
/// source)` whose `source` is that source (an entry another tool wrote, or
/// one now locked from elsewhere, stays). Returns the new text, or `None`
/// when nothing was removed.
pub fn remove_from_mlld_lock(
    existing: &str,
    entries: &[(String, String)],
    now: &str,
) -> Result<Option<String>, String> {
    let mut root: Map<String, Value> = match serde_json::from_str::<Value>(existing) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err("it is not a JSON object".into()),
        Err(e) => return Err(format!("invalid JSON at {}:{}: {e}", e.line(), e.column())),
    };
    let Some(Value::Object(modules)) = root.get_mut("modules") else {
        return Ok(None);
    };
    let mut removed = false;
    for (path, source) in entries {
        if modules
            .get(path)
            .is_some_and(|e| e["source"].as_str() == Some(source.as_str()))
        {
            modules.shift_remove(path);
            removed = true;
        }
    }
    if !removed {
        return Ok(None);
    }
    if let Some(Value::Object(meta)) = root.get_mut("metadata") {
        meta.insert("updatedAt".into(), now.into());
    }
    Ok(Some(to_js_json(&Value::Object(root))))
}

/// `JSON.stringify(value, null, 2)`.
fn to_js_json(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("JSON values serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: &str) -> MlldLockEntry {
        MlldLockEntry {
            version: "^1.0.0".into(),
            registry_version: version.into(),
            resolved: "ab".repeat(32),
            source: MlldLockEntry::registry_source("@alice/tool", version),
            integrity: format!("sha256:{}", "ab".repeat(32)),
            fetched_at: "2026-01-02T00:00:00Z".into(),
        }
    }

    #[test]
    fn a_new_lock_has_mlld_shape() {
        let text = merge_mlld_lock(
            None,
            &[("@alice/tool".into(), entry("1.2.0"))],
            "2026-01-02T00:00:00Z",
        )
        .unwrap()
        .unwrap();
        let expected = format!(
            "{{\n  \"lockfileVersion\": 1,\n  \"modules\": {{\n    \"@alice/tool\": {{\n      \"version\": \"^1.0.0\",\n      \"registryVersion\": \"1.2.0\",\n      \"resolved\": \"{h}\",\n      \"source\": \"registry://@alice/tool@1.2.0\",\n      \"integrity\": \"sha256:{h}\",\n      \"fetchedAt\": \"2026-01-02T00:00:00Z\"\n    }}\n  }},\n  \"metadata\": {{\n    \"createdAt\": \"2026-01-02T00:00:00Z\",\n    \"updatedAt\": \"2026-01-02T00:00:00Z\"\n  }}\n}}",
            h = "ab".repeat(32)
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn foreign_entries_and_fields_are_kept() {
        let existing = r#"{"lockfileVersion":1,"modules":{"@bob/x":{"version":"1.0.0","mine":true},"@alice/tool":{"extra":1}},"metadata":{"createdAt":"2025-01-01T00:00:00Z","mlldVersion":"2.1.0"},"config":{}}"#;
        let text = merge_mlld_lock(
            Some(existing),
            &[("@alice/tool".into(), entry("1.2.0"))],
            "2026-01-02T00:00:00Z",
        )
        .unwrap()
        .unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["modules"]["@bob/x"]["mine"], true);
        assert_eq!(v["modules"]["@alice/tool"]["extra"], 1);
        assert_eq!(v["modules"]["@alice/tool"]["registryVersion"], "1.2.0");
        assert_eq!(v["metadata"]["createdAt"], "2025-01-01T00:00:00Z");
        assert_eq!(v["metadata"]["mlldVersion"], "2.1.0");
        assert_eq!(v["config"], serde_json::json!({}));
        // Nothing new: nothing written.
        let mut later = entry("1.2.0");
        later.fetched_at = "2026-02-01T00:00:00Z".into();
        assert_eq!(
            merge_mlld_lock(
                Some(&text),
                &[("@alice/tool".into(), later)],
                "2026-02-01T00:00:00Z"
            ),
            Ok(None)
        );
        assert!(merge_mlld_lock(Some("{"), &[], "t").is_err());
    }

    #[test]
    fn cache_metadata_uses_sri_integrity() {
        let meta = MlldCacheMetadata::new(
            b"hello",
            "registry://@a/b@1.0.0",
            "@a/b",
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(
            meta.hash,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(
            meta.integrity,
            "sha256-LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
        );
        assert!(meta.to_text().starts_with("{\n  \"hash\": \"2cf24d"));
        assert!(meta.to_text().ends_with("\"importPath\": \"@a/b\"\n}"));
        assert_eq!(
            cache_entry_dir(&meta.hash),
            format!("2c/{}", &meta.hash[2..])
        );
    }
}

#[cfg(test)]
mod removal_tests {
    use super::*;

    #[test]
    fn only_entries_with_the_named_source_are_removed() {
        let existing = r#"{"lockfileVersion":1,"modules":{"@a/x":{"source":"registry://@a/x@1.0.0","mine":1},"@a/y":{"source":"mlld://gist/a/0123456789abcdef"},"@b/z":{"source":"other"}},"metadata":{"createdAt":"c"}}"#;
        let text = remove_from_mlld_lock(
            existing,
            &[
                ("@a/x".into(), "registry://@a/x@1.0.0".into()),
                ("@b/z".into(), "registry://@b/z@1.0.0".into()),
            ],
            "now",
        )
        .unwrap()
        .unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&String> = v["modules"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["@a/y", "@b/z"]);
        assert_eq!(v["metadata"]["updatedAt"], "now");
        assert_eq!(v["metadata"]["createdAt"], "c");
        assert_eq!(
            remove_from_mlld_lock(&text, &[("@q/q".into(), "s".into())], "t"),
            Ok(None)
        );
        assert!(remove_from_mlld_lock("[", &[], "t").is_err());
    }
}
