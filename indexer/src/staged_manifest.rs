//! The manifest as the build holds it: everything but the gist modules'
//! records in memory, those in a [`RecordSpill`]. It is written out as the
//! same bytes `serde_json::to_vec(&Manifest)` gives, record by record.

use std::io::Write;

use anyhow::Result;
use mlld_schemas::snapshot::{AdvisoryRecord, RejectedRecord};
use mlld_schemas::snapshot_versioned::VersionedModule;

use crate::members::Members;
use crate::record_spill::RecordSpill;

/// [`mlld_schemas::Manifest`], its `modules` in a spill.
#[derive(Debug)]
pub struct StagedManifest {
    pub format_version: u32,
    pub serial: u64,
    pub created: String,
    pub expires: String,
    /// Accepted modules, sorted by user then name.
    pub modules: RecordSpill,
    pub advisories: Vec<AdvisoryRecord>,
    pub versioned: Vec<VersionedModule>,
    pub members: Members,
    pub rejected: Vec<RejectedRecord>,
}

impl StagedManifest {
    /// Writes the manifest's JSON (no newline) to `out`: the fields in the
    /// order and spelling of [`mlld_schemas::Manifest`]'s serialisation.
    pub fn write_json(&self, out: &mut impl Write) -> Result<()> {
        write!(
            out,
            "{{\"formatVersion\":{},\"serial\":{},\"created\":",
            self.format_version, self.serial
        )?;
        serde_json::to_writer(&mut *out, &self.created)?;
        out.write_all(b",\"expires\":")?;
        serde_json::to_writer(&mut *out, &self.expires)?;
        out.write_all(b",\"modules\":[")?;
        for (i, line) in self.modules.lines()?.enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            out.write_all(&line?)?;
        }
        out.write_all(b"],\"advisories\":")?;
        serde_json::to_writer(&mut *out, &self.advisories)?;
        if !self.versioned.is_empty() {
            out.write_all(b",\"versioned\":")?;
            serde_json::to_writer(&mut *out, &self.versioned)?;
        }
        out.write_all(b",\"members\":")?;
        self.members.write_json(&mut *out)?;
        if !self.rejected.is_empty() {
            out.write_all(b",\"rejected\":")?;
            serde_json::to_writer(&mut *out, &self.rejected)?;
        }
        out.write_all(b"}")?;
        Ok(())
    }

    /// The whole manifest in memory (tests only).
    #[cfg(test)]
    pub fn to_manifest(&self) -> Result<mlld_schemas::Manifest> {
        let mut json = Vec::new();
        self.write_json(&mut json)?;
        Ok(serde_json::from_slice(&json)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlld_schemas::Manifest;

    /// A manifest with every optional part present, or none of them.
    fn manifest(full: bool) -> Manifest {
        let record = |name: &str| {
            serde_json::json!({
                "user": "u", "name": name, "gist": "g", "description": "say \"hi\" ✓",
                "tags": ["a"], "revision": "r", "file": "m.mld", "size": 1, "integrity": "sha256:00",
                "files": [{"name": "m.mld", "sha256": "00", "size": 1}], "dependencies": ["u/x"]
            })
        };
        let mut m = serde_json::json!({
            "formatVersion": 1, "serial": 7, "created": "2026-01-01T00:00:00Z",
            "expires": "2026-01-15T00:00:00Z",
            "modules": [record("a"), record("b")],
            "advisories": [],
            "members": {"blobs/00/00": {"sha256": "00", "size": 1}}
        });
        if full {
            m["rejected"] = serde_json::json!([{"module": "u/z", "reason": "bad"}]);
            m["versioned"] = serde_json::json!([{
                "author": "a", "name": "n", "versions": [], "tags": {}
            }]);
        }
        serde_json::from_value(m).unwrap()
    }

    #[test]
    fn the_streamed_manifest_is_the_bytes_serde_gives() {
        let dir = tempfile::tempdir().unwrap();
        for full in [false, true] {
            let m = manifest(full);
            let staged = StagedManifest {
                format_version: m.format_version,
                serial: m.serial,
                created: m.created.clone(),
                expires: m.expires.clone(),
                modules: RecordSpill::from_records(&dir.path().join("s"), &m.modules).unwrap(),
                advisories: m.advisories.clone(),
                versioned: m.versioned.clone(),
                members: serde_json::from_value(serde_json::to_value(&m.members).unwrap()).unwrap(),
                rejected: m.rejected.clone(),
            };
            let mut streamed = Vec::new();
            staged.write_json(&mut streamed).unwrap();
            assert_eq!(
                String::from_utf8(streamed).unwrap(),
                serde_json::to_string(&m).unwrap()
            );
            assert_eq!(staged.to_manifest().unwrap(), m);
        }
    }
}
