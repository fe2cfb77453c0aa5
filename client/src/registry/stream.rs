//! Writing `records.bin` from a verified manifest without holding the
//! registry: the manifest is parsed as a stream, each record spilled to one
//! of 256 group files by the top bits of its name's hash, and the buckets
//! then assembled one group at a time. Memory is one group's records (a
//! 256th of the registry) plus the advisories, not the manifest twice over.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mlld_schemas::shard::{self, Affected, Shard};
use mlld_schemas::{AdvisoryRecord, Member, ModuleRecord, RejectedRecord, VersionedModule};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::records::RecordsWriter;

/// Spill groups: the top 8 bits of a name's hash.
const GROUP_BITS: u32 = 8;

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

/// One spilled line: a record, or a dependency edge (the shard key of the
/// module depended on, and the `user/module` depending on it).
#[derive(Serialize, Deserialize)]
enum Spilled {
    #[serde(rename = "m")]
    Module(ModuleRecord),
    #[serde(rename = "v")]
    Versioned(VersionedModule),
    #[serde(rename = "r")]
    Rejected(RejectedRecord),
    #[serde(rename = "d")]
    Dependent(String, String),
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
        assemble(&paths, &advisories, bits, records)?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(head)
    }
}

/// The 256 spill files being written.
struct Groups {
    files: Vec<BufWriter<File>>,
    paths: Vec<PathBuf>,
}

impl Groups {
    fn create(dir: &Path) -> Result<Self> {
        let paths: Vec<PathBuf> = (0..1u32 << GROUP_BITS)
            .map(|g| dir.join(format!("{g:03}.jsonl")))
            .collect();
        let files = paths
            .iter()
            .map(|p| Ok(BufWriter::with_capacity(32 << 10, File::create(p)?)))
            .collect::<Result<_>>()?;
        Ok(Self { files, paths })
    }

    fn push(&mut self, key: &str, item: &Spilled) -> std::io::Result<()> {
        let out = &mut self.files[shard::shard_of(key, GROUP_BITS) as usize];
        serde_json::to_writer(&mut *out, item)?;
        out.write_all(b"\n")
    }

    /// Spills a record as the manifest spelled it, as the [`Spilled`]
    /// variant `tag`, without serialising it again. A line ending inside
    /// the record can only be whitespace between tokens (JSON strings
    /// escape theirs), so it becomes a space and the record stays one line.
    fn push_raw(&mut self, key: &str, tag: &str, raw: &str) -> std::io::Result<()> {
        let out = &mut self.files[shard::shard_of(key, GROUP_BITS) as usize];
        write!(out, "{{\"{tag}\":")?;
        let mut rest = raw.as_bytes();
        while let Some(at) = rest.iter().position(|&b| b == b'\n') {
            out.write_all(&rest[..at])?;
            out.write_all(b" ")?;
            rest = &rest[at + 1..];
        }
        out.write_all(rest)?;
        out.write_all(b"}\n")
    }

    fn finish(self) -> Result<Vec<PathBuf>> {
        for f in self.files {
            f.into_inner().map_err(|e| e.into_error())?;
        }
        Ok(self.paths)
    }
}

/// Writes every bucket in order. With at least [`GROUP_BITS`] bits each
/// group holds whole buckets; with fewer the registry is small (under
/// 16,384 names) and is assembled in one go. Groups are built on every
/// core, a window at a time, and written in order: memory is one group's
/// records per core.
fn assemble(
    groups: &[PathBuf],
    advisories: &[AdvisoryRecord],
    bits: u32,
    out: &Path,
) -> Result<()> {
    let affected = Affected::new(advisories);
    let mut writer = RecordsWriter::create(out, bits)?;
    // Each chunk of spill files holds the buckets `[g × per_chunk, (g + 1) × per_chunk)`.
    let (chunks, per_chunk): (Vec<&[PathBuf]>, u32) = if bits >= GROUP_BITS {
        (groups.chunks(1).collect(), 1 << (bits - GROUP_BITS))
    } else {
        (vec![groups], 1 << bits)
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let numbered: Vec<(u32, &[PathBuf])> = (0..).zip(chunks).collect();
    for window in numbered.chunks(workers) {
        let built: Vec<Result<Vec<Bucket>>> = std::thread::scope(|s| {
            let handles: Vec<_> = window
                .iter()
                .map(|&(g, chunk)| {
                    let first = g * per_chunk;
                    let affected = &affected;
                    s.spawn(move || {
                        build_buckets(chunk, first..first + per_chunk, bits, affected, advisories)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("building buckets does not panic"))
                .collect()
        });
        for buckets in built {
            for bucket in buckets? {
                writer.push_bucket(bucket)?;
            }
        }
    }
    writer.finish()
}

/// One bucket's records: the digest of each name's key, and its record.
type Bucket = Vec<([u8; 32], Vec<u8>)>;

/// The buckets `range`, all held by the spill files `chunk`, in order.
fn build_buckets(
    chunk: &[PathBuf],
    range: std::ops::Range<u32>,
    bits: u32,
    affected: &Affected<'_>,
    advisories: &[AdvisoryRecord],
) -> Result<Vec<Bucket>> {
    let mut buckets = read_names(chunk, bits)?;
    range
        .map(|b| {
            let names = buckets.remove(&b).unwrap_or_default();
            let mut records = names
                .into_iter()
                .map(|(key, mut r)| {
                    r.advisories = advisories_of(&r, affected, advisories);
                    Ok((
                        mlld_schemas::sha256_bytes(key.as_bytes()),
                        serde_json::to_vec(&r)?,
                    ))
                })
                .collect::<Result<Bucket>>()?;
            records.sort_unstable_by_key(|(k, _)| *k);
            Ok(records)
        })
        .collect()
}

/// The names of the spill files `paths`: bucket → shard key → its records.
fn read_names(paths: &[PathBuf], bits: u32) -> Result<BTreeMap<u32, BTreeMap<String, Shard>>> {
    let mut out: BTreeMap<u32, BTreeMap<String, Shard>> = BTreeMap::new();
    let mut line = Vec::new();
    for path in paths {
        let mut file = BufReader::with_capacity(1 << 20, File::open(path)?);
        loop {
            line.clear();
            if file.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            let item: Spilled = serde_json::from_slice(&line)
                .with_context(|| format!("reading back {}", path.display()))?;
            let (key, dependent) = match &item {
                Spilled::Module(m) => (shard::shard_key(&m.user, &m.name), None),
                Spilled::Versioned(v) => (shard::shard_key(&v.author, &v.name), None),
                Spilled::Rejected(x) => match x.user_and_name() {
                    Some((u, n)) => (shard::shard_key(u, n), None),
                    None => continue,
                },
                Spilled::Dependent(key, name) => (key.clone(), Some(name.clone())),
            };
            let b = shard::shard_of(&key, bits);
            let record = out.entry(b).or_default().entry(key.clone()).or_default();
            match item {
                Spilled::Module(m) => record.modules.push(m),
                Spilled::Versioned(v) => record.versioned.push(v),
                Spilled::Rejected(x) => record.rejected.push(x),
                Spilled::Dependent(..) => {
                    record.dependents.entry(key).or_default().extend(dependent);
                }
            }
        }
    }
    for names in out.values_mut().flat_map(|b| b.values_mut()) {
        for list in names.dependents.values_mut() {
            list.sort();
            list.dedup();
        }
    }
    Ok(out)
}

/// The advisories affecting a name's records, in manifest order (as the
/// shard-wide list holds them; see `mlld_schemas::shard::split`).
fn advisories_of(
    r: &Shard,
    affected: &Affected<'_>,
    all: &[AdvisoryRecord],
) -> Vec<AdvisoryRecord> {
    let mut picked: Vec<usize> = r.modules.iter().flat_map(|m| affected.module(m)).collect();
    for v in &r.versioned {
        picked.extend(affected.by_name(&v.author, &v.name));
    }
    picked.sort_unstable();
    picked.dedup();
    picked
        .into_iter()
        .map(|i| &all[i])
        .filter(|a| r.affected_by(a))
        .cloned()
        .collect()
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

/// A record the spill takes: its check, its shard key and what is spilled of it.
trait Spill: for<'de> Deserialize<'de> {
    /// Its [`Spilled`] variant's tag.
    const TAG: &'static str;
    fn check(&self, index: usize, check: &mut dyn ManifestCheck) -> Result<()>;
    /// Its shard key; `None` for a record no name holds.
    fn key(&self) -> Option<String>;
    /// Spills what the record adds to other names (dependency edges).
    fn spill_edges(&self, _groups: &mut Groups) -> std::io::Result<()> {
        Ok(())
    }
}

impl Spill for ModuleRecord {
    const TAG: &'static str = "m";

    fn check(&self, index: usize, check: &mut dyn ManifestCheck) -> Result<()> {
        check.module(index, self)
    }

    fn key(&self) -> Option<String> {
        Some(shard::shard_key(&self.user, &self.name))
    }

    fn spill_edges(&self, groups: &mut Groups) -> std::io::Result<()> {
        let name = self.full_name();
        for dep in &self.current.dependencies {
            if let Some((user, module)) = dep.split_once('/') {
                let key = shard::shard_key(user, module);
                groups.push(&key, &Spilled::Dependent(key.clone(), name.clone()))?;
            }
        }
        Ok(())
    }
}

impl Spill for VersionedModule {
    const TAG: &'static str = "v";

    fn check(&self, index: usize, check: &mut dyn ManifestCheck) -> Result<()> {
        check.versioned(index, self)
    }

    fn key(&self) -> Option<String> {
        Some(shard::shard_key(&self.author, &self.name))
    }
}

impl Spill for RejectedRecord {
    const TAG: &'static str = "r";

    fn check(&self, index: usize, check: &mut dyn ManifestCheck) -> Result<()> {
        check.rejected(index, self)
    }

    fn key(&self) -> Option<String> {
        self.user_and_name().map(|(u, n)| shard::shard_key(u, n))
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
            let groups = &mut self.seed.sink.groups;
            if let Some(key) = record.key() {
                groups
                    .push_raw(&key, T::TAG, raw.get())
                    .map_err(A::Error::custom)?;
                record.spill_edges(groups).map_err(A::Error::custom)?;
            }
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
