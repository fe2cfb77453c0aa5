//! The signed manifest, verified and read once: its signature is checked
//! over the staged file, then one streaming pass checks every record
//! (`manifest_check`), spills it for the query store and keeps the member
//! list compactly ([`Members`]). Nothing of the registry is held whole, so
//! a full sync costs the same memory at any registry size.

use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{Context, Result, bail};
use mlld_schemas::snapshot::SNAPSHOT_FORMAT;
use mlld_schemas::{AdvisoryRecord, Member, ModuleRecord, RejectedRecord, VersionedModule};

use crate::manifest_check;
use crate::registry::{ManifestCheck, RecordSpill, Streamed};
use crate::sync::members::Members;
use crate::sync::verify::{Accept, check_expiry};
use crate::trust::TrustedKeys;

/// What a verified manifest leaves: its head, its members, and its records
/// spilled for the query store (finished by the caller into `records.bin`).
pub(crate) struct CheckedManifest {
    pub key_id: String,
    pub members: Members,
    pub spill: RecordSpill,
}

/// Verifies the signature `sig` over the staged manifest at `path`, then
/// reads it once: every policy check, every record spilled into `spill_dir`.
pub(crate) fn verify_and_spill(
    path: &Path,
    sig: &str,
    keys: &TrustedKeys,
    fresh_at: Option<time::OffsetDateTime>,
    accept: Accept<'_>,
    spill_dir: &Path,
) -> Result<CheckedManifest> {
    let open = || -> std::io::Result<Box<dyn Read>> {
        Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            mlld_fsutil::open_regular(path)?,
        )))
    };
    let key_id = keys
        .verify_stream_with_key("snapshot manifest", &open, sig)?
        .key_id;
    // Parsed only after the signature verified, from the same staged file.
    let mut check = SignedCheck {
        key_id: &key_id,
        fresh_at,
        accept,
        members: Members::default(),
        named: Vec::new(),
    };
    let mut spill = RecordSpill::create(spill_dir)?;
    crate::registry::parse_manifest(open()?, &mut spill, &mut check)?;
    let members = check.finish()?;
    Ok(CheckedManifest {
        key_id,
        members,
        spill,
    })
}

/// The checks of a signed manifest, record by record.
struct SignedCheck<'a> {
    key_id: &'a str,
    fresh_at: Option<time::OffsetDateTime>,
    accept: Accept<'a>,
    members: Members,
    /// The content each module revision names, with the record's index:
    /// checked against the members once they are all read (they follow
    /// the modules in the manifest).
    named: Vec<([u8; 32], u32)>,
}

impl SignedCheck<'_> {
    /// Every blob a module record names must be a member.
    fn finish(mut self) -> Result<Members> {
        self.members.finish()?;
        self.named.sort_unstable();
        self.named.dedup_by_key(|(d, _)| *d);
        if let Some((digest, i)) = self.named.iter().find(|(d, _)| !self.members.has_blob(d)) {
            bail!(
                "the signed manifest's modules[{i}] names content sha256:{} that is not in the snapshot",
                hex::encode(digest)
            );
        }
        Ok(self.members)
    }
}

impl ManifestCheck for SignedCheck<'_> {
    fn head(&mut self, head: &Streamed) -> Result<()> {
        if head.format_version != SNAPSHOT_FORMAT {
            bail!(
                "snapshot format {} is not supported (this client reads format {SNAPSHOT_FORMAT}); upgrade mlld-registry",
                head.format_version
            );
        }
        if let Some(now) = self.fresh_at {
            check_expiry(head.serial, &head.expires, now)?;
        }
        (self.accept)(self.key_id, head.serial)
    }

    fn module(&mut self, index: usize, m: &ModuleRecord) -> Result<()> {
        manifest_check::module(index, m)?;
        for r in std::iter::once(&m.current).chain(&m.history) {
            let mut digest = [0u8; 32];
            let hex = r.integrity.strip_prefix("sha256:").unwrap_or_default();
            hex::decode_to_slice(hex, &mut digest).context("a checked integrity is hex")?;
            self.named.push((digest, index as u32));
        }
        Ok(())
    }

    fn versioned(&mut self, index: usize, v: &VersionedModule) -> Result<()> {
        manifest_check::versioned(index, v)
    }

    fn rejected(&mut self, index: usize, r: &RejectedRecord) -> Result<()> {
        manifest_check::rejected(index, r)
    }

    fn advisory(&mut self, index: usize, a: &AdvisoryRecord) -> Result<()> {
        manifest_check::advisory(index, a)
    }

    fn wants_members(&self) -> bool {
        true
    }

    fn member(&mut self, path: String, m: Member) -> Result<()> {
        self.members.insert(path, m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlld_schemas::snapshot::blob_path;
    use serde_json::json;

    const EXPIRES: &str = "2099-01-01T00:00:00Z";

    fn module(name: &str, digest: &str) -> serde_json::Value {
        json!({
            "user": "sarah-k", "name": name, "gist": "a1f3e09a42db6c680b454f6f93efa9d8",
            "description": "", "tags": [], "size": 1,
            "revision": "b".repeat(40), "integrity": format!("sha256:{digest}"),
            "file": "x.mld", "files": [], "dependencies": []
        })
    }

    fn manifest(modules: Vec<serde_json::Value>, members: &[&str]) -> serde_json::Value {
        let members: serde_json::Map<String, serde_json::Value> = members
            .iter()
            .map(|d| (blob_path(d), json!({"sha256": d, "size": 1})))
            .collect();
        json!({
            "formatVersion": SNAPSHOT_FORMAT, "serial": 7, "created": "2026-01-01T00:00:00Z",
            "expires": EXPIRES, "modules": modules, "advisories": [], "members": members
        })
    }

    /// Streams `manifest` through the checks a signed manifest gets; the
    /// accepted serials are recorded.
    fn check(
        manifest: &serde_json::Value,
        refuse_serial: Option<u64>,
    ) -> Result<(Members, Vec<u64>)> {
        let dir = tempfile::tempdir()?;
        let seen = std::sync::Mutex::new(Vec::new());
        let accept = |_: &str, serial: u64| {
            seen.lock().unwrap().push(serial);
            match refuse_serial {
                Some(s) if s == serial => bail!("serial {serial} is a rollback"),
                _ => Ok(()),
            }
        };
        let mut check = SignedCheck {
            key_id: "k",
            fresh_at: Some(time::OffsetDateTime::now_utc()),
            accept: &accept,
            members: Members::default(),
            named: Vec::new(),
        };
        let mut spill = RecordSpill::create(&dir.path().join("spill"))?;
        let bytes = serde_json::to_vec(manifest)?;
        crate::registry::parse_manifest(&bytes[..], &mut spill, &mut check)?;
        let members = check.finish()?;
        let head = spill.finish(&dir.path().join("records.bin"))?;
        assert_eq!(head.serial, 7);
        Ok((members, seen.into_inner().unwrap()))
    }

    #[test]
    fn a_consistent_manifest_passes_with_its_members() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let m = manifest(vec![module("one", &a), module("two", &b)], &[&a, &b]);
        let (members, accepted) = check(&m, None).unwrap();
        assert_eq!(members.len(), 2);
        assert!(members.get(&blob_path(&a)).is_some());
        assert_eq!(accepted, [7], "the serial is offered once");
    }

    #[test]
    fn content_no_member_holds_is_refused_with_the_record() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let m = manifest(vec![module("one", &a), module("two", &b)], &[&a]);
        let err = check(&m, None).unwrap_err().to_string();
        assert!(
            err.contains("modules[1] names content sha256:bbbb"),
            "{err}"
        );
    }

    #[test]
    fn the_head_is_checked_before_any_record() {
        let a = "a".repeat(64);
        // The bad record would be refused too; the rollback is found first.
        let m = manifest(vec![module("..", &a)], &[&a]);
        let err = check(&m, Some(7)).unwrap_err().to_string();
        assert!(err.contains("rollback"), "{err}");
        let mut m = manifest(vec![module("one", &a)], &[&a]);
        m["formatVersion"] = json!(SNAPSHOT_FORMAT + 1);
        let err = check(&m, None).unwrap_err().to_string();
        assert!(err.contains("upgrade mlld-registry"), "{err}");
        let mut m = manifest(vec![module("one", &a)], &[&a]);
        m["expires"] = json!("2001-01-01T00:00:00Z");
        let err = check(&m, None).unwrap_err().to_string();
        assert!(err.contains("expired"), "{err}");
    }

    #[test]
    fn a_head_after_the_records_is_still_checked() {
        let a = "a".repeat(64);
        let m = manifest(vec![module("one", &a)], &[&a]);
        // Keys in another order: the records come before the head fields.
        let text = format!(
            r#"{{"modules":{},"members":{},"advisories":[],"formatVersion":{},"serial":7,"created":"x","expires":"{EXPIRES}"}}"#,
            m["modules"], m["members"], SNAPSHOT_FORMAT
        );
        let reordered: serde_json::Value = serde_json::from_str(&text).unwrap();
        let err = check(&reordered, Some(7)).unwrap_err().to_string();
        assert!(err.contains("rollback"), "{err}");
        assert!(check(&reordered, None).is_ok());
    }

    #[test]
    fn bad_records_and_members_are_refused_by_path() {
        let a = "a".repeat(64);
        let mut bad = module("two", &a);
        bad["gist"] = json!("../..");
        let m = manifest(vec![module("one", &a), bad], &[&a]);
        let err = check(&m, None).unwrap_err().to_string();
        assert!(err.contains("modules[1].gist"), "{err}");
        let mut bad = module("two", &a);
        bad["size"] = json!("large");
        let m = manifest(vec![module("one", &a), bad], &[&a]);
        let err = format!("{:#}", check(&m, None).unwrap_err());
        assert!(err.contains("modules[1] (line 1, column "), "{err}");
        assert!(err.contains("invalid type"), "{err}");
        let mut m = manifest(vec![module("one", &a)], &[&a]);
        m["members"]["etc/passwd"] = json!({"sha256": a, "size": 1});
        let err = check(&m, None).unwrap_err().to_string();
        assert!(err.contains("`etc/passwd` is neither"), "{err}");
    }
}
