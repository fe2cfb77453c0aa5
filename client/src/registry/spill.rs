//! The query store's records on their way from the manifest to
//! `records.bin`: spilled, as the manifest spells them, to one of 256 group
//! files by the top bits of their name's hash, then assembled a group at a
//! time (a group holds whole buckets). A name's record is composed from the
//! spelled records without decoding and encoding them again; only a record
//! an advisory may affect is decoded, to decide whether it does.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mlld_schemas::shard::{self, Affected, Shard};
use mlld_schemas::{AdvisoryRecord, ModuleRecord, RejectedRecord, VersionedModule};
use serde::{Deserialize, Serialize};

use super::records::RecordsWriter;

/// Spill groups: the top 8 bits of a name's hash.
const GROUP_BITS: u32 = 8;

/// What a spilled line holds, before the record as the manifest spelled it
/// (after a tab; JSON escapes tabs in strings, so the first one ends this).
#[derive(Serialize, Deserialize)]
enum Header<'a> {
    /// A gist module: what finds the advisories that may affect it.
    #[serde(rename = "m")]
    Module(
        #[serde(borrow)] Cow<'a, str>,
        #[serde(borrow)] Cow<'a, str>,
        #[serde(borrow)] Cow<'a, str>,
        #[serde(borrow)] Cow<'a, str>,
    ),
    /// A versioned module: key, author, name.
    #[serde(rename = "v")]
    Versioned(
        #[serde(borrow)] Cow<'a, str>,
        #[serde(borrow)] Cow<'a, str>,
        #[serde(borrow)] Cow<'a, str>,
    ),
    /// A rejection: key.
    #[serde(rename = "r")]
    Rejected(#[serde(borrow)] Cow<'a, str>),
    /// A dependency edge, no record: the key depended on, and the
    /// `user/module` depending on it.
    #[serde(rename = "d")]
    Dependent(#[serde(borrow)] Cow<'a, str>, #[serde(borrow)] Cow<'a, str>),
}

impl Header<'_> {
    fn key(&self) -> &str {
        match self {
            Header::Module(key, ..)
            | Header::Versioned(key, ..)
            | Header::Rejected(key)
            | Header::Dependent(key, _) => key,
        }
    }
}

/// The 256 spill files being written.
pub(super) struct Groups {
    files: Vec<BufWriter<File>>,
    paths: Vec<PathBuf>,
}

impl Groups {
    pub fn create(dir: &Path) -> Result<Self> {
        let paths: Vec<PathBuf> = (0..1u32 << GROUP_BITS)
            .map(|g| dir.join(format!("{g:03}.jsonl")))
            .collect();
        let files = paths
            .iter()
            .map(|p| Ok(BufWriter::with_capacity(32 << 10, File::create(p)?)))
            .collect::<Result<_>>()?;
        Ok(Self { files, paths })
    }

    /// A gist module spelled `raw`, and an edge for each module it depends on.
    pub fn module(&mut self, m: &ModuleRecord, raw: &str) -> std::io::Result<()> {
        let key = shard::shard_key(&m.user, &m.name);
        let (user, name, gist) = (&m.user, &m.name, &m.gist);
        let header = Header::Module(key.as_str().into(), user.into(), name.into(), gist.into());
        self.push(&header, Some(raw))?;
        let full = m.full_name();
        for dep in &m.current.dependencies {
            if let Some((user, module)) = dep.split_once('/') {
                let key = shard::shard_key(user, module);
                self.push(&Header::Dependent(key.into(), full.as_str().into()), None)?;
            }
        }
        Ok(())
    }

    pub fn versioned(&mut self, v: &VersionedModule, raw: &str) -> std::io::Result<()> {
        let key = shard::shard_key(&v.author, &v.name);
        let header = Header::Versioned(key.into(), (&v.author).into(), (&v.name).into());
        self.push(&header, Some(raw))
    }

    /// A rejection naming no module is held by no name, and not spilled.
    pub fn rejected(&mut self, r: &RejectedRecord, raw: &str) -> std::io::Result<()> {
        let Some(key) = r.user_and_name().map(|(u, n)| shard::shard_key(u, n)) else {
            return Ok(());
        };
        self.push(&Header::Rejected(key.into()), Some(raw))
    }

    /// One line: the header, then the record as spelled. A line ending
    /// inside the record can only be whitespace between tokens (JSON
    /// strings escape theirs), so it becomes a space and the record stays
    /// one line.
    fn push(&mut self, header: &Header<'_>, raw: Option<&str>) -> std::io::Result<()> {
        let out = &mut self.files[shard::shard_of(header.key(), GROUP_BITS) as usize];
        serde_json::to_writer(&mut *out, header)?;
        if let Some(raw) = raw {
            out.write_all(b"\t")?;
            let mut rest = raw.as_bytes();
            while let Some(at) = rest.iter().position(|&b| b == b'\n') {
                out.write_all(&rest[..at])?;
                out.write_all(b" ")?;
                rest = &rest[at + 1..];
            }
            out.write_all(rest)?;
        }
        out.write_all(b"\n")
    }

    pub fn finish(self) -> Result<Vec<PathBuf>> {
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
pub(super) fn assemble(
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
    let ctx = Assembly {
        bits,
        affected: &affected,
        advisories,
    };
    for window in numbered.chunks(workers) {
        let built: Vec<Result<Vec<Bucket>>> = std::thread::scope(|s| {
            let handles: Vec<_> = window
                .iter()
                .map(|&(g, chunk)| {
                    let first = g * per_chunk;
                    s.spawn(move || ctx.build(chunk, first..first + per_chunk))
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

/// What building a bucket needs besides its spill lines.
#[derive(Clone, Copy)]
struct Assembly<'a> {
    bits: u32,
    affected: &'a Affected<'a>,
    advisories: &'a [AdvisoryRecord],
}

/// One name's records as the manifest spelled them, in manifest order,
/// and the advisories that may affect them.
#[derive(Default)]
struct Name {
    modules: Vec<Vec<u8>>,
    versioned: Vec<Vec<u8>>,
    rejected: Vec<Vec<u8>>,
    dependents: Vec<String>,
    candidates: Vec<usize>,
}

impl Assembly<'_> {
    /// The buckets `range`, all held by the spill files `chunk`, in order.
    fn build(&self, chunk: &[PathBuf], range: std::ops::Range<u32>) -> Result<Vec<Bucket>> {
        let mut buckets = self.read_names(chunk)?;
        range
            .map(|b| {
                let names = buckets.remove(&b).unwrap_or_default();
                let mut records = names
                    .into_iter()
                    .map(|(key, name)| {
                        let record = self.compose(&key, name)?;
                        Ok((mlld_schemas::sha256_bytes(key.as_bytes()), record))
                    })
                    .collect::<Result<Bucket>>()?;
                records.sort_unstable_by_key(|(k, _)| *k);
                Ok(records)
            })
            .collect()
    }

    /// The names of the spill files `paths`: bucket → shard key → its records.
    fn read_names(&self, paths: &[PathBuf]) -> Result<BTreeMap<u32, BTreeMap<String, Name>>> {
        let mut out: BTreeMap<u32, BTreeMap<String, Name>> = BTreeMap::new();
        let mut line = Vec::new();
        for path in paths {
            let mut file = BufReader::with_capacity(1 << 20, File::open(path)?);
            loop {
                line.clear();
                if file.read_until(b'\n', &mut line)? == 0 {
                    break;
                }
                self.read_line(&line, &mut out)
                    .with_context(|| format!("reading back {}", path.display()))?;
            }
        }
        for names in out.values_mut().flat_map(|b| b.values_mut()) {
            names.dependents.sort();
            names.dependents.dedup();
        }
        Ok(out)
    }

    fn read_line(
        &self,
        line: &[u8],
        out: &mut BTreeMap<u32, BTreeMap<String, Name>>,
    ) -> Result<()> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let (header, raw) = match line.iter().position(|&b| b == b'\t') {
            Some(tab) => (&line[..tab], line[tab + 1..].to_vec()),
            None => (line, Vec::new()),
        };
        let header: Header<'_> = serde_json::from_slice(header)?;
        let key = header.key();
        let name = out
            .entry(shard::shard_of(key, self.bits))
            .or_default()
            .entry(key.to_string())
            .or_default();
        match header {
            Header::Module(_, user, module, gist) => {
                name.candidates
                    .extend(self.affected.by_name(&user, &module));
                name.candidates.extend(self.affected.by_gist(&gist));
                name.modules.push(raw);
            }
            Header::Versioned(_, author, module) => {
                name.candidates
                    .extend(self.affected.by_name(&author, &module));
                name.versioned.push(raw);
            }
            Header::Rejected(_) => name.rejected.push(raw),
            Header::Dependent(_, dependent) => name.dependents.push(dependent.into_owned()),
        }
        Ok(())
    }

    /// A name's record: a [`Shard`] of its records, written from their
    /// spelling (field order aside, what `serde_json` would write for it).
    fn compose(&self, key: &str, mut name: Name) -> Result<Vec<u8>> {
        let advisories = self.advisories_of(&mut name)?;
        let mut out = Vec::with_capacity(
            name.modules
                .iter()
                .chain(&name.versioned)
                .chain(&name.rejected)
                .map(Vec::len)
                .sum::<usize>()
                + 64,
        );
        let mut fields = 0;
        let mut open = |out: &mut Vec<u8>, field: &str| {
            out.extend_from_slice(if fields == 0 { b"{\"" } else { b",\"" });
            out.extend_from_slice(field.as_bytes());
            out.extend_from_slice(b"\":");
            fields += 1;
        };
        for (field, list) in [("modules", &name.modules), ("versioned", &name.versioned)] {
            if !list.is_empty() {
                open(&mut out, field);
                raw_list(&mut out, list);
            }
        }
        if !advisories.is_empty() {
            open(&mut out, "advisories");
            serde_json::to_writer(&mut out, &advisories)?;
        }
        if !name.rejected.is_empty() {
            open(&mut out, "rejected");
            raw_list(&mut out, &name.rejected);
        }
        if !name.dependents.is_empty() {
            open(&mut out, "dependents");
            serde_json::to_writer(&mut out, &BTreeMap::from([(key, &name.dependents)]))?;
        }
        if fields == 0 {
            bail!("the spill holds an empty record for `{key}`");
        }
        out.push(b'}');
        Ok(out)
    }

    /// The advisories affecting a name's records, in manifest order (as the
    /// shard-wide list holds them; see `mlld_schemas::shard::split`). Only
    /// a name an advisory names is decoded, to check the advisory's scope.
    fn advisories_of(&self, name: &mut Name) -> Result<Vec<AdvisoryRecord>> {
        if name.candidates.is_empty() {
            return Ok(Vec::new());
        }
        name.candidates.sort_unstable();
        name.candidates.dedup();
        let shard = Shard {
            modules: decode::<ModuleRecord>(&name.modules)?,
            versioned: decode::<VersionedModule>(&name.versioned)?,
            ..Shard::default()
        };
        Ok(name
            .candidates
            .iter()
            .map(|&i| &self.advisories[i])
            .filter(|a| shard.affected_by(a))
            .cloned()
            .collect())
    }
}

fn decode<T: for<'de> Deserialize<'de>>(raw: &[Vec<u8>]) -> Result<Vec<T>> {
    raw.iter()
        .map(|r| serde_json::from_slice(r).context("a spilled record does not parse"))
        .collect()
}

/// `[a,b,…]` of records already spelled as JSON.
fn raw_list(out: &mut Vec<u8>, list: &[Vec<u8>]) {
    out.push(b'[');
    for (i, r) in list.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(r);
    }
    out.push(b']');
}
