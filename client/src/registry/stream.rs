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
use mlld_schemas::{AdvisoryRecord, ModuleRecord, RejectedRecord, VersionedModule};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::records::RecordsWriter;

/// Spill groups: the top 8 bits of a name's hash.
const GROUP_BITS: u32 = 8;

/// What the query store's head needs from the manifest.
#[derive(Debug, Default)]
pub struct Streamed {
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

/// Streams the manifest `reader` into `records` (a new `records.bin`),
/// spilling through files in `spill` (created, then removed).
pub fn write_records(reader: impl Read, records: &Path, spill: &Path) -> Result<Streamed> {
    std::fs::create_dir_all(spill)?;
    let mut groups = Groups::create(spill)?;
    let mut advisories = Vec::new();
    let mut head = Streamed::default();
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 20, reader));
    ManifestSeed {
        groups: &mut groups,
        advisories: &mut advisories,
        head: &mut head,
    }
    .deserialize(&mut de)
    .context("the verified manifest does not parse")?;
    de.end()
        .context("the verified manifest has trailing bytes")?;
    let paths = groups.finish()?;
    head.advisories = advisories.len();
    let bits = shard::bits_for(head.modules + head.versioned);
    assemble(&paths, &advisories, bits, records)?;
    let _ = std::fs::remove_dir_all(spill);
    Ok(head)
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

    fn finish(self) -> Result<Vec<PathBuf>> {
        for f in self.files {
            f.into_inner().map_err(|e| e.into_error())?;
        }
        Ok(self.paths)
    }
}

/// Writes every bucket in order. With at least [`GROUP_BITS`] bits each
/// group holds whole buckets; with fewer the registry is small (under
/// 16,384 names) and is assembled in one go.
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
    for (g, chunk) in chunks.into_iter().enumerate() {
        let mut buckets = read_names(chunk, bits)?;
        let first = g as u32 * per_chunk;
        for b in first..first + per_chunk {
            let names = buckets.remove(&b).unwrap_or_default();
            let mut records = names
                .into_iter()
                .map(|(key, mut r)| {
                    r.advisories = advisories_of(&r, &affected, advisories);
                    Ok((
                        mlld_schemas::sha256_bytes(key.as_bytes()),
                        serde_json::to_vec(&r)?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            records.sort_unstable_by_key(|(k, _)| *k);
            writer.push_bucket(records)?;
        }
    }
    writer.finish()
}

/// The names of the spill files `paths`: bucket → shard key → its records.
fn read_names(paths: &[PathBuf], bits: u32) -> Result<BTreeMap<u32, BTreeMap<String, Shard>>> {
    let mut out: BTreeMap<u32, BTreeMap<String, Shard>> = BTreeMap::new();
    for path in paths {
        let file = BufReader::new(File::open(path)?);
        for line in file.lines() {
            let item: Spilled = serde_json::from_str(&line?)
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

/// The manifest, visited field by field: records go to the spill as they
/// parse, advisories are kept, everything else is skipped.
struct ManifestSeed<'a> {
    groups: &'a mut Groups,
    advisories: &'a mut Vec<AdvisoryRecord>,
    head: &'a mut Streamed,
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

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(field) = map.next_key::<String>()? {
            match field.as_str() {
                "serial" => self.head.serial = map.next_value()?,
                "created" => self.head.created = map.next_value()?,
                "expires" => self.head.expires = map.next_value()?,
                "advisories" => *self.advisories = map.next_value()?,
                "modules" => {
                    self.head.modules =
                        map.next_value_seed(Records::<ModuleRecord>::new(self.groups))?
                }
                "versioned" => {
                    self.head.versioned =
                        map.next_value_seed(Records::<VersionedModule>::new(self.groups))?
                }
                "rejected" => {
                    map.next_value_seed(Records::<RejectedRecord>::new(self.groups))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A record the spill takes: its shard key and what is spilled of it.
trait Spill: for<'de> Deserialize<'de> {
    fn spill(self, groups: &mut Groups) -> std::io::Result<()>;
}

impl Spill for ModuleRecord {
    fn spill(self, groups: &mut Groups) -> std::io::Result<()> {
        let name = self.full_name();
        for dep in &self.current.dependencies {
            if let Some((user, module)) = dep.split_once('/') {
                let key = shard::shard_key(user, module);
                groups.push(&key, &Spilled::Dependent(key.clone(), name.clone()))?;
            }
        }
        groups.push(
            &shard::shard_key(&self.user, &self.name),
            &Spilled::Module(self),
        )
    }
}

impl Spill for VersionedModule {
    fn spill(self, groups: &mut Groups) -> std::io::Result<()> {
        groups.push(
            &shard::shard_key(&self.author, &self.name),
            &Spilled::Versioned(self),
        )
    }
}

impl Spill for RejectedRecord {
    fn spill(self, groups: &mut Groups) -> std::io::Result<()> {
        let Some(key) = self.user_and_name().map(|(u, n)| shard::shard_key(u, n)) else {
            return Ok(());
        };
        groups.push(&key, &Spilled::Rejected(self))
    }
}

/// An array of records, each spilled as it parses; yields the count.
struct Records<'a, T> {
    groups: &'a mut Groups,
    _t: std::marker::PhantomData<T>,
}

impl<'a, T> Records<'a, T> {
    fn new(groups: &'a mut Groups) -> Self {
        Self {
            groups,
            _t: std::marker::PhantomData,
        }
    }
}

impl<'de, T: Spill> DeserializeSeed<'de> for Records<'_, T> {
    type Value = usize;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: Spill> Visitor<'de> for Records<'_, T> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while let Some(record) = seq.next_element::<T>()? {
            record
                .spill(self.groups)
                .map_err(serde::de::Error::custom)?;
            n += 1;
        }
        Ok(n)
    }
}
