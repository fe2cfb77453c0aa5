//! Writing `records.bin` from a verified manifest without holding the
//! registry: the manifest is parsed as a stream, each record checked (by
//! the caller's [`ManifestCheck`]) and spilled (`spill`), then the buckets
//! assembled a group at a time. Memory is a group's records per core plus
//! the advisories, not the manifest.

use std::fmt;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mlld_schemas::shard::{self};
use mlld_schemas::{AdvisoryRecord, Member, ModuleRecord, RejectedRecord, VersionedModule};
use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::spill::Groups;

/// What the query store's head needs from the manifest, and its format.
#[derive(Debug, Default)]
pub struct Streamed {
    pub format_version: u32,
    pub serial: u64,
    pub created: String,
    pub expires: String,
    pub modules: usize,
    pub versioned: usize,
    pub advisories: usize,
}

/// What a reader of the manifest stream checks as it goes by: each record
/// before it is spilled, the members (a reader that wants them), and the
/// head once its fields are known. The first error stops the stream.
pub trait ManifestCheck {
    /// `formatVersion`, `serial` and `expires` are known (called once,
    /// before the first list when the head comes first, else at the end).
    fn head(&mut self, _head: &Streamed) -> Result<()> {
        Ok(())
    }
    fn module(&mut self, _index: usize, _m: &ModuleRecord) -> Result<()> {
        Ok(())
    }
    fn versioned(&mut self, _index: usize, _v: &VersionedModule) -> Result<()> {
        Ok(())
    }
    fn rejected(&mut self, _index: usize, _r: &RejectedRecord) -> Result<()> {
        Ok(())
    }
    fn advisory(&mut self, _index: usize, _a: &AdvisoryRecord) -> Result<()> {
        Ok(())
    }
    /// Whether [`ManifestCheck::member`] is called; otherwise members are skipped.
    fn wants_members(&self) -> bool {
        false
    }
    fn member(&mut self, _path: String, _m: Member) -> Result<()> {
        Ok(())
    }
}

/// Checks nothing: for a manifest whose every record was checked when it
/// was synced (`sync --repair` rebuilding the query store).
pub struct Unchecked;
impl ManifestCheck for Unchecked {}

/// Streams the manifest `reader` into `records` (a new `records.bin`),
/// spilling through files in `spill` (created, then removed).
pub fn write_records(reader: impl Read, records: &Path, spill: &Path) -> Result<Streamed> {
    let mut sink = RecordSpill::create(spill)?;
    parse(reader, &mut sink, &mut Unchecked)?;
    sink.finish(records)
}

/// Parses the manifest `reader` into `sink`, each record passing `check`
/// first. Nothing is assembled: the caller finishes the sink once every
/// other check has passed too.
pub fn parse(
    reader: impl Read,
    sink: &mut RecordSpill,
    check: &mut dyn ManifestCheck,
) -> Result<()> {
    let mut state = ParseState::default();
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 20, reader));
    let parsed = ManifestSeed {
        sink: &mut *sink,
        check: &mut *check,
        state: &mut state,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if let Some(e) = state.refused {
        return Err(e);
    }
    parsed.context("the signed manifest does not parse")?;
    if !state.head_checked {
        check.head(&sink.head)?;
    }
    Ok(())
}

/// The records of a manifest on their way to `records.bin`: spilled to
/// group files, the advisories held, until [`RecordSpill::finish`].
pub struct RecordSpill {
    groups: Groups,
    advisories: Vec<AdvisoryRecord>,
    head: Streamed,
    dir: PathBuf,
}

impl RecordSpill {
    /// Spills into the new directory `dir`.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            groups: Groups::create(dir)?,
            advisories: Vec::new(),
            head: Streamed::default(),
            dir: dir.to_path_buf(),
        })
    }

    /// Assembles `records` from the spill, then removes the spill.
    pub fn finish(self, records: &Path) -> Result<Streamed> {
        let Self {
            groups,
            advisories,
            mut head,
            dir,
        } = self;
        let paths = groups.finish()?;
        head.advisories = advisories.len();
        let bits = shard::bits_for(head.modules + head.versioned);
        super::spill::assemble(&paths, &advisories, bits, records)?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(head)
    }
}

/// The manifest, visited field by field: records are checked and go to
/// the spill as they parse, advisories are checked and kept, members go to
/// the check if it wants them, anything else is skipped. A check's refusal
/// is kept in `refused` (the parser's own error only says it stopped).
struct ManifestSeed<'a> {
    sink: &'a mut RecordSpill,
    check: &'a mut dyn ManifestCheck,
    state: &'a mut ParseState,
}

#[derive(Default)]
struct ParseState {
    refused: Option<anyhow::Error>,
    /// How many of `formatVersion`, `serial` and `expires` were read.
    head_fields: u32,
    head_checked: bool,
}

impl ManifestSeed<'_> {
    fn refuse<E: serde::de::Error>(&mut self, e: anyhow::Error) -> E {
        self.state.refused = Some(e);
        E::custom("refused by a check")
    }

    /// Checks the head before the first list, once all its fields are read.
    fn head_known<E: serde::de::Error>(&mut self) -> Result<(), E> {
        if self.state.head_fields == 3 && !self.state.head_checked {
            self.state.head_checked = true;
            if let Err(e) = self.check.head(&self.sink.head) {
                return Err(self.refuse(e));
            }
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for ManifestSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ManifestSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a manifest")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(field) = map.next_key::<String>()? {
            match field.as_str() {
                "formatVersion" => {
                    self.sink.head.format_version = map.next_value()?;
                    self.state.head_fields += 1;
                }
                "serial" => {
                    self.sink.head.serial = map.next_value()?;
                    self.state.head_fields += 1;
                }
                "expires" => {
                    self.sink.head.expires = map.next_value()?;
                    self.state.head_fields += 1;
                }
                "created" => self.sink.head.created = map.next_value()?,
                "advisories" => {
                    self.head_known()?;
                    let advisories: Vec<AdvisoryRecord> = map.next_value()?;
                    for (i, a) in advisories.iter().enumerate() {
                        if let Err(e) = self.check.advisory(i, a) {
                            return Err(self.refuse(e));
                        }
                    }
                    self.sink.advisories = advisories;
                }
                "modules" => {
                    self.head_known()?;
                    self.sink.head.modules =
                        map.next_value_seed(Records::<ModuleRecord>::new(&mut self, "modules"))?;
                }
                "versioned" => {
                    self.head_known()?;
                    self.sink.head.versioned = map
                        .next_value_seed(Records::<VersionedModule>::new(&mut self, "versioned"))?;
                }
                "rejected" => {
                    self.head_known()?;
                    map.next_value_seed(Records::<RejectedRecord>::new(&mut self, "rejected"))?;
                }
                "members" if self.check.wants_members() => {
                    self.head_known()?;
                    map.next_value_seed(Members(&mut self))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A record the spill takes: its check, and where it is spilled.
trait Spill: for<'de> Deserialize<'de> {
    fn check(&self, index: usize, check: &mut dyn ManifestCheck) -> Result<()>;
    /// Spills the record, spelled `raw` in the manifest.
    fn spill(&self, groups: &mut Groups, raw: &str) -> std::io::Result<()>;
}

impl Spill for ModuleRecord {
    fn check(&self, index: usize, check: &mut dyn ManifestCheck) -> Result<()> {
        check.module(index, self)
    }

    fn spill(&self, groups: &mut Groups, raw: &str) -> std::io::Result<()> {
        groups.module(self, raw)
    }
}

impl Spill for VersionedModule {
    fn check(&self, index: usize, check: &mut dyn ManifestCheck) -> Result<()> {
        check.versioned(index, self)
    }

    fn spill(&self, groups: &mut Groups, raw: &str) -> std::io::Result<()> {
        groups.versioned(self, raw)
    }
}

impl Spill for RejectedRecord {
    fn check(&self, index: usize, check: &mut dyn ManifestCheck) -> Result<()> {
        check.rejected(index, self)
    }

    fn spill(&self, groups: &mut Groups, raw: &str) -> std::io::Result<()> {
        groups.rejected(self, raw)
    }
}

/// An array of records, each checked and spilled as it parses; yields the count.
struct Records<'s, 'a, T> {
    seed: &'s mut ManifestSeed<'a>,
    /// The list's name in the manifest, for errors.
    list: &'static str,
    _t: std::marker::PhantomData<T>,
}

impl<'s, 'a, T> Records<'s, 'a, T> {
    fn new(seed: &'s mut ManifestSeed<'a>, list: &'static str) -> Self {
        Self {
            seed,
            list,
            _t: std::marker::PhantomData,
        }
    }
}

impl<'de, T: Spill> DeserializeSeed<'de> for Records<'_, '_, T> {
    type Value = usize;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: Spill> Visitor<'de> for Records<'_, '_, T> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of records")
    }

    /// Each record is taken as the manifest spells it, parsed from that
    /// text, checked, and spilled as it was spelled (not serialised again).
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        use serde::de::Error as _;
        let mut n = 0;
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            let record: T = serde_json::from_str(raw.get())
                .map_err(|e| A::Error::custom(format_args!("{}[{n}]: {e}", self.list)))?;
            if let Err(e) = record.check(n, &mut *self.seed.check) {
                return Err(self.seed.refuse(e));
            }
            record
                .spill(&mut self.seed.sink.groups, raw.get())
                .map_err(A::Error::custom)?;
            n += 1;
        }
        Ok(n)
    }
}

/// The members map, each entry handed to the check as it parses.
struct Members<'s, 'a>(&'s mut ManifestSeed<'a>);

impl<'de> DeserializeSeed<'de> for Members<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Members<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of members")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(path) = map.next_key::<String>()? {
            let member: Member = map.next_value()?;
            if let Err(e) = self.0.check.member(path, member) {
                return Err(self.0.refuse(e));
            }
        }
        Ok(())
    }
}
