//! The previous snapshot's manifest, read as a stream: its module records
//! go to a [`RecordSpill`] as they are parsed, its members into compact
//! [`Members`], everything else into a [`Manifest`] whose `modules` and
//! `members` stay empty. At a million modules the records
//! are gigabytes as Rust values; the build takes each one once, by name.

use std::fmt;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use mlld_schemas::snapshot::{Manifest, ModuleRecord};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

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
    let writer = RecordSpill::create(spill)?;
    let reader = std::io::BufReader::with_capacity(1 << 20, reader);
    let mut de = serde_json::Deserializer::from_reader(reader);
    let (manifest, members, writer) = ManifestSeed(writer)
        .deserialize(&mut de)
        .context("the previous manifest is malformed")?;
    de.end().context("the previous manifest is malformed")?;
    let records = writer.finish()?;
    Ok(PreviousManifest {
        manifest,
        members,
        records,
    })
}

struct ManifestSeed(SpillWriter);

impl<'de> DeserializeSeed<'de> for ManifestSeed {
    type Value = (Manifest, Members, SpillWriter);

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ManifestSeed {
    type Value = (Manifest, Members, SpillWriter);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a snapshot manifest")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error as _;
        let mut writer = self.0;
        let mut m = Manifest {
            format_version: 0,
            serial: 0,
            created: String::new(),
            expires: String::new(),
            modules: Vec::new(),
            advisories: Vec::new(),
            versioned: Vec::new(),
            members: Default::default(),
            rejected: Vec::new(),
        };
        let mut members = Members::default();
        let mut seen_modules = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "formatVersion" => m.format_version = map.next_value()?,
                "serial" => m.serial = map.next_value()?,
                "created" => m.created = map.next_value()?,
                "expires" => m.expires = map.next_value()?,
                "modules" => {
                    writer = map.next_value_seed(RecordsSeed(writer))?;
                    seen_modules = true;
                }
                "advisories" => m.advisories = map.next_value()?,
                "versioned" => m.versioned = map.next_value()?,
                "members" => members = map.next_value()?,
                "rejected" => m.rejected = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !seen_modules || m.created.is_empty() {
            return Err(A::Error::custom("missing field `modules` or `created`"));
        }
        Ok((m, members, writer))
    }
}

/// The `modules` array, each record pushed to the spill as it is parsed.
struct RecordsSeed(SpillWriter);

impl<'de> DeserializeSeed<'de> for RecordsSeed {
    type Value = SpillWriter;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed {
    type Value = SpillWriter;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of module records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error as _;
        let mut writer = self.0;
        // Spilled as spelled: an indexer writes the manifest from its own
        // spill, one compact record a line, and signs it; a record is
        // decoded when the crawl takes it. One spelled over several lines
        // is re-spelled.
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            let json = raw.get();
            let pushed = if json.contains('\n') {
                let record: ModuleRecord = serde_json::from_str(json).map_err(A::Error::custom)?;
                writer.push(&record)
            } else {
                writer.push_raw(json.as_bytes())
            };
            pushed.map_err(A::Error::custom)?;
        }
        Ok(writer)
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
