//! The previous snapshot's manifest, read as a stream: its module records
//! go to a [`RecordSpill`] as they are parsed, its members into compact
//! [`Members`], everything else into a [`Manifest`] whose `modules` and
//! `members` stay empty. At a million modules the records
//! are gigabytes as Rust values; the build takes each one once, by name.

use std::io::Read;
use std::path::Path;

use anyhow::{Result, bail};
use mlld_schemas::snapshot::{Manifest, ModuleRecord};
use mlld_site_contract::json_stream::{self, Field, ObjectVisitor, Value};

use crate::members::Members;
use crate::record_spill::{RecordSpill, SpillWriter};

/// The previous manifest, in three parts.
pub struct PreviousManifest {
    /// Without `modules` and `members`.
    pub manifest: Manifest,
    pub members: Members,
    pub records: RecordSpill,
}

/// Parses the manifest JSON from `reader`; its records are spilled to `spill`.
pub fn read(reader: impl Read, spill: &Path) -> Result<PreviousManifest> {
    let mut visitor = PreviousVisitor {
        writer: RecordSpill::create(spill)?,
        manifest: Manifest {
            format_version: 0,
            serial: 0,
            created: String::new(),
            expires: String::new(),
            modules: Vec::new(),
            advisories: Vec::new(),
            versioned: Vec::new(),
            members: Default::default(),
            rejected: Vec::new(),
        },
        members: Members::default(),
        seen_modules: false,
    };
    json_stream::read_object(reader, "the previous manifest", &mut visitor)?;
    let PreviousVisitor {
        writer,
        manifest,
        mut members,
        seen_modules,
    } = visitor;
    members.seal();
    if !seen_modules || manifest.created.is_empty() {
        bail!("the previous manifest is malformed: missing field `modules` or `created`");
    }
    Ok(PreviousManifest {
        manifest,
        members,
        records: writer.finish()?,
    })
}

/// A member as the manifest spells it, its digest borrowed when it can be.
#[derive(serde::Deserialize)]
struct SpelledMember<'a> {
    #[serde(borrow)]
    sha256: std::borrow::Cow<'a, str>,
    size: u64,
}

/// The manifest field by field: records to the spill, members into
/// [`Members`], the rest into a [`Manifest`].
struct PreviousVisitor {
    writer: SpillWriter,
    manifest: Manifest,
    members: Members,
    seen_modules: bool,
}

impl ObjectVisitor for PreviousVisitor {
    fn field(&mut self, key: &str) -> Result<Field> {
        Ok(match key {
            "modules" => {
                self.seen_modules = true;
                Field::Elements
            }
            "members" => Field::Elements,
            "formatVersion" | "serial" | "created" | "expires" | "advisories" | "versioned"
            | "rejected" => Field::Whole,
            _ => Field::Skip,
        })
    }

    fn value(&mut self, key: &str, value: Value<'_>) -> Result<()> {
        let m = &mut self.manifest;
        match key {
            "formatVersion" => m.format_version = value.parse()?,
            "serial" => m.serial = value.parse()?,
            "created" => m.created = value.parse()?,
            "expires" => m.expires = value.parse()?,
            "advisories" => m.advisories = value.parse()?,
            "versioned" => m.versioned = value.parse()?,
            "rejected" => m.rejected = value.parse()?,
            _ => {}
        }
        Ok(())
    }

    /// Records are spilled as spelled: an indexer writes the manifest from
    /// its own spill, one compact record a line, and signs it; a record is
    /// decoded when the crawl takes it. One spelled over several lines is
    /// re-spelled.
    fn element(
        &mut self,
        key: &str,
        _index: usize,
        name: Option<&str>,
        value: Value<'_>,
    ) -> Result<()> {
        match (key, name) {
            ("modules", None) if value.raw().contains('\n') => {
                let record: ModuleRecord = value.parse()?;
                self.writer.push(&record)?;
            }
            ("modules", None) => {
                value.check()?;
                self.writer.push_raw(value.raw().as_bytes())?;
            }
            ("members", Some(path)) => {
                let member: SpelledMember<'_> = value.parse()?;
                // Sealed once all are in (see `read`).
                (self.members).insert_spelled(path, &member.sha256, member.size);
            }
            _ => bail!("the previous manifest's {key:?} is not a list of records"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_go_to_the_spill_and_the_rest_is_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let record = |name: &str| {
            serde_json::json!({
                "user": "u", "name": name, "gist": "g", "description": "d", "tags": [],
                "revision": "r", "file": "m.mld", "size": 1, "integrity": "sha256:00",
                "files": [], "dependencies": []
            })
        };
        let json = serde_json::json!({
            "formatVersion": 1, "serial": 4, "created": "c", "expires": "e",
            "modules": [record("a"), record("b")], "advisories": [],
            "members": {"blobs/00/00": {"sha256": "00", "size": 1}, "index/meta.json": {"sha256": "01", "size": 2}},
            "somethingNewer": {"ignored": true}
        });
        let whole: Manifest = serde_json::from_value(json.clone()).unwrap();
        let bytes = serde_json::to_vec(&json).unwrap();
        let read_back = read(&bytes[..], &dir.path().join("s")).unwrap();
        let records = read_back.records.iter().unwrap();
        assert_eq!(records.collect::<Result<Vec<_>>>().unwrap(), whole.modules);
        let m = &read_back.manifest;
        assert_eq!((m.modules.len(), m.members.len(), m.serial), (0, 0, 4));
        let members: std::collections::BTreeMap<_, _> = read_back.members.iter().collect();
        assert_eq!(members, whole.members);
        // Spelled over many lines: the same records, each re-spelled on one.
        let pretty = serde_json::to_vec_pretty(&json).unwrap();
        let read_back = read(&pretty[..], &dir.path().join("p")).unwrap();
        let records = read_back.records.iter().unwrap();
        assert_eq!(records.collect::<Result<Vec<_>>>().unwrap(), whole.modules);
        let lines = read_back.records.lines().unwrap();
        let lines: Vec<Vec<u8>> = lines.collect::<Result<_>>().unwrap();
        assert_eq!(lines[1], serde_json::to_vec(&whole.modules[1]).unwrap());
        // Truncated or trailing garbage: an error, not a partial manifest.
        assert!(read(&bytes[..bytes.len() - 3], &dir.path().join("t")).is_err());
        let mut extra = bytes.clone();
        extra.extend_from_slice(b"{}");
        assert!(read(&extra[..], &dir.path().join("x")).is_err());
        assert!(read(&b"{\"serial\":1}"[..], &dir.path().join("y")).is_err());
    }
}
