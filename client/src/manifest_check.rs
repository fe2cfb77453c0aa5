//! Every field of a signed manifest, checked with the registry's own naming
//! rules before the snapshot can become current.
//!
//! A signature says who published a manifest, not that its values are
//! sane: a record whose gist id or revision is `../..` would become a cache
//! path and a lock entry that the lock reader refuses. So user, module,
//! gist id, revision, integrity, file names, dependencies, advisory
//! targets and every versioned record (author, name, version, file paths,
//! digests) must pass the same checks as the registry's files; the first
//! failure refuses the snapshot with its JSON path.

use anyhow::Result;
use mlld_schemas::snapshot::RevisionRecord;
use mlld_schemas::snapshot_versioned::VersionedModule;
use mlld_schemas::version_spec::parse_version;
use mlld_schemas::versioned::check_relative_path;
use mlld_schemas::{AdvisoryRecord, ModuleRecord, RejectedRecord, names};

/// `modules[index]`: every field checked; the error names the first bad one.
pub(crate) fn module(index: usize, m: &ModuleRecord) -> Result<()> {
    refuse("modules", index, check_module(m))
}

/// `advisories[index]`.
pub(crate) fn advisory(index: usize, a: &AdvisoryRecord) -> Result<()> {
    refuse("advisories", index, check_advisory(a))
}

/// `versioned[index]`.
pub(crate) fn versioned(index: usize, v: &VersionedModule) -> Result<()> {
    refuse("versioned", index, check_versioned(v))
}

/// `rejected[index]`.
pub(crate) fn rejected(index: usize, r: &RejectedRecord) -> Result<()> {
    refuse("rejected", index, check_rejected(r))
}

/// Every record of a sparse shard, checked as a full sync checks the
/// manifest's: a signature says who published a record, not that its
/// values are safe to become paths and lock entries.
pub(crate) fn shard(shard: &mlld_schemas::shard::Shard) -> Result<()> {
    let first_bad = || -> Result<(), String> {
        for (i, m) in shard.modules.iter().enumerate() {
            invalid("modules", i, check_module(m))?;
        }
        for (i, v) in shard.versioned.iter().enumerate() {
            invalid("versioned", i, check_versioned(v))?;
        }
        for (i, a) in shard.advisories.iter().enumerate() {
            invalid("advisories", i, check_advisory(a))?;
        }
        for (i, r) in shard.rejected.iter().enumerate() {
            invalid("rejected", i, check_rejected(r))?;
        }
        Ok(())
    };
    first_bad().map_err(|e| {
        anyhow::anyhow!(
            "its {e}; nothing was written (the registry's publisher must fix the record)"
        )
    })
}

fn refuse(list: &str, index: usize, checked: Result<(), FieldError>) -> Result<()> {
    invalid(list, index, checked).map_err(|e| {
        anyhow::anyhow!(
            "the signed manifest's {e}; the snapshot was refused and nothing was written (the registry's publisher must fix the record)"
        )
    })
}

/// `{list}[{index}].{field} is invalid: {why}`, for the first bad field.
fn invalid(list: &str, index: usize, checked: Result<(), FieldError>) -> Result<(), String> {
    checked.map_err(|(field, why)| format!("{list}[{index}].{field} is invalid: {why}"))
}

/// A field's path below its record, and why it is invalid.
type FieldError = (String, String);

fn field(name: &str, r: Result<(), String>) -> Result<(), FieldError> {
    r.map_err(|e| (name.to_string(), e))
}

/// [`field`] for a path built only if the field is invalid (a manifest has
/// millions of fields, checked on every full sync).
fn field_at(name: impl FnOnce() -> String, r: Result<(), String>) -> Result<(), FieldError> {
    r.map_err(|e| (name(), e))
}

fn check_module(m: &ModuleRecord) -> Result<(), FieldError> {
    field("user", names::check_user(&m.user))?;
    field("name", names::check_module(&m.name))?;
    field("gist", names::check_gist_id(&m.gist))?;
    for (key, ts) in [("created", &m.created), ("updated", &m.updated)] {
        if let Some(ts) = ts {
            field(key, names::check_timestamp(ts))?;
        }
    }
    check_revision(&m.current)?;
    for (i, r) in m.history.iter().enumerate() {
        check_revision(r).map_err(|(f, e)| (format!("history[{i}].{f}"), e))?;
    }
    Ok(())
}

fn check_revision(r: &RevisionRecord) -> Result<(), FieldError> {
    field("revision", names::check_revision(&r.revision))?;
    field("integrity", names::check_integrity(&r.integrity))?;
    if let Some(ts) = &r.committed_at {
        field("committedAt", names::check_timestamp(ts))?;
    }
    field("file", check_file_name(&r.file))?;
    for (i, f) in r.files.iter().enumerate() {
        field_at(|| format!("files[{i}].name"), check_file_name(&f.name))?;
        field_at(
            || format!("files[{i}].sha256"),
            names::check_sha256_hex(&f.sha256),
        )?;
    }
    for (i, d) in r.dependencies.iter().enumerate() {
        field_at(|| format!("dependencies[{i}]"), check_full_name(d))?;
    }
    Ok(())
}

/// A gist's file name: one safe path component.
fn check_file_name(name: &str) -> Result<(), String> {
    check_relative_path(name)?;
    if name.contains('/') {
        return Err(format!("`{name}` is not a file name (it holds `/`)"));
    }
    Ok(())
}

/// `user/module`.
fn check_full_name(name: &str) -> Result<(), String> {
    let (user, module) = name
        .split_once('/')
        .ok_or_else(|| format!("`{name}` is not `user/module`"))?;
    names::check_user(user)?;
    names::check_module(module)
}

/// A rejection names a module in either layout (and a version), and gives
/// a reason short enough for one message.
fn check_rejected(r: &RejectedRecord) -> Result<(), FieldError> {
    let name = r.module.strip_prefix('@').unwrap_or(&r.module);
    field("module", check_full_name(name))?;
    if let Some(v) = &r.version {
        field("version", parse_version(v).map(|_| ()))?;
    }
    let long = r.reason.chars().count() > 2000;
    field(
        "reason",
        if long {
            Err("longer than 2000 characters".into())
        } else {
            Ok(())
        },
    )
}

fn check_advisory(a: &AdvisoryRecord) -> Result<(), FieldError> {
    field("user", names::check_user(&a.user))?;
    for (i, m) in a.advisory.affects.iter().enumerate() {
        field_at(|| format!("affects[{i}]"), names::check_module(m))?;
    }
    for (i, g) in a.advisory.gists.iter().enumerate() {
        field_at(|| format!("gists[{i}]"), names::check_gist_id(g))?;
    }
    use mlld_schemas::advisory_scope::{check_revision_prefix, parse_range};
    for (key, range) in [
        ("affectedVersions", &a.advisory.affected_versions),
        ("patchedVersions", &a.advisory.patched_versions),
    ] {
        if let Some(range) = range {
            field(key, parse_range(range).map(|_| ()))?;
        }
    }
    for (i, r) in a.advisory.affected_revisions.iter().enumerate() {
        field_at(
            || format!("affectedRevisions[{i}]"),
            check_revision_prefix(r),
        )?;
    }
    if let Some(before) = &a.advisory.before {
        field("before", names::check_timestamp(before))?;
    }
    Ok(())
}

fn check_versioned(v: &VersionedModule) -> Result<(), FieldError> {
    field("author", names::check_user(&v.author))?;
    field("name", names::check_module(&v.name))?;
    for (tag, version) in &v.tags {
        field_at(|| format!("tags.{tag}"), parse_version(version).map(|_| ()))?;
    }
    for (i, r) in v.versions.iter().enumerate() {
        let at = |f: &str| format!("versions[{i}].{f}");
        field_at(|| at("version"), parse_version(&r.version).map(|_| ()))?;
        field_at(|| at("entry"), check_relative_path(&r.entry))?;
        field_at(|| at("integrity"), names::check_integrity(&r.integrity))?;
        field_at(
            || at("contentHash"),
            names::check_sha256_hex(&r.content_hash),
        )?;
        for (j, f) in r.files.iter().enumerate() {
            field_at(
                || at(&format!("files[{j}].path")),
                check_relative_path(&f.path),
            )?;
            field_at(
                || at(&format!("files[{j}].sha256")),
                names::check_sha256_hex(&f.sha256),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(module: serde_json::Value) -> ModuleRecord {
        serde_json::from_value(module).unwrap()
    }

    fn module() -> serde_json::Value {
        serde_json::json!({
            "user": "sarah-k", "name": "llm-cache", "gist": "a1f3e09a42db6c680b454f6f93efa9d8",
            "description": "", "tags": [], "size": 1,
            "revision": "b".repeat(40), "integrity": format!("sha256:{}", "e".repeat(64)),
            "file": "llm-cache.mld", "files": [{"name": "llm-cache.mld", "sha256": "e".repeat(64), "size": 1}],
            "dependencies": ["jdoe/date-fmt"]
        })
    }

    #[test]
    fn a_valid_record_passes_and_each_bad_field_is_named() {
        super::module(0, &record(module())).unwrap();
        for (key, bad, path) in [
            ("gist", "../..", "modules[3].gist"),
            ("revision", "../..", "modules[3].revision"),
            ("revision", "abc", "modules[3].revision"),
            ("user", "../x", "modules[3].user"),
            ("name", "..", "modules[3].name"),
            ("integrity", "sha256:zz", "modules[3].integrity"),
            ("file", "../x.mld", "modules[3].file"),
        ] {
            let mut m = module();
            m[key] = serde_json::json!(bad);
            let err = super::module(3, &record(m)).unwrap_err().to_string();
            assert!(err.contains(path), "{key}: {err}");
        }
        let mut m = module();
        m["dependencies"] = serde_json::json!(["../etc"]);
        let err = super::module(0, &record(m)).unwrap_err().to_string();
        assert!(err.contains("modules[0].dependencies[0]"), "{err}");
        let mut m = module();
        m["history"] = serde_json::json!([{"revision": "../..", "integrity": format!("sha256:{}", "e".repeat(64)), "file": "a.mld", "size": 1, "files": [], "dependencies": []}]);
        let err = super::module(0, &record(m)).unwrap_err().to_string();
        assert!(err.contains("modules[0].history[0].revision"), "{err}");
    }

    #[test]
    fn versioned_records_are_checked() {
        let record: VersionedModule = serde_json::from_value(serde_json::json!({
            "author": "alice", "name": "tool", "tags": {"latest": "1.0.0"},
            "versions": [{
                "version": "1.0.0",
                "source": {"type": "gist", "url": "x", "commit": "b".repeat(40)},
                "contentHash": "e".repeat(64), "entry": "index.mld",
                "integrity": format!("sha256:{}", "e".repeat(64)), "size": 1,
                "files": [{"path": "index.mld", "sha256": "e".repeat(64), "size": 1}],
                "dependencies": []
            }]
        }))
        .unwrap();
        versioned(0, &record).unwrap();
        let mut bad = record.clone();
        bad.versions[0].files[0].path = "../../etc/passwd".into();
        let err = versioned(0, &bad).unwrap_err().to_string();
        assert!(
            err.contains("versioned[0].versions[0].files[0].path"),
            "{err}"
        );
        let mut bad = record;
        bad.versions[0].version = "v1".into();
        let err = versioned(2, &bad).unwrap_err().to_string();
        assert!(err.contains("versioned[2].versions[0].version"), "{err}");
    }
}
