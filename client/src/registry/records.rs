//! `records.bin`: every name's records, each read and checked on its own.
//!
//! ```text
//! "MLLDREC2" | bits: u32 | 0: u32 | (offset: u64, count: u64) × 2^bits      the bucket table
//! bucket n:  SHA-256 (32 bytes) of (n: u32 | entries) | entries             its directory
//!            entry: key: SHA-256 of the shard key | offset: u64 | length: u64 | SHA-256 of the record
//!            then its records, each the JSON of the `Shard` of one name
//! ```
//!
//! Integers are little-endian. A name's bucket is its shard
//! (`mlld_schemas::shard::shard_of`, about 64 names); a lookup reads the
//! bucket's table entry, its directory (a few kilobytes, hashed), and the
//! one record it needs (hashed against the directory's digest) — not the
//! records of the other names in the bucket. The directory's digest covers
//! the bucket's number, so a damaged table cannot pass one bucket off as
//! another; a name absent from a directory that checks is absent from the
//! snapshot, never a damaged read.

use std::cell::OnceCell;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mlld_schemas::shard::{self, Shard};

use super::tables::damaged;

pub const RECORDS_NAME: &str = "records.bin";
const MAGIC: &[u8; 8] = b"MLLDREC2";
const HEADER: u64 = 16;
const TABLE_ENTRY: u64 = 16;
const DIR_ENTRY: usize = 80;
/// No bucket lists more names than this (a guard against a damaged table).
const MAX_BUCKET_NAMES: u64 = 1 << 20;
/// No record is larger than this.
const MAX_RECORD_BYTES: u64 = 64 * 1024 * 1024;

/// One name's place in the file, from a directory whose digest checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    key: [u8; 32],
    offset: u64,
    length: u64,
    digest: [u8; 32],
}

/// The SHA-256 of a shard key: what a directory lists names by.
pub fn key_digest(user: &str, name: &str) -> [u8; 32] {
    mlld_schemas::sha256_bytes(shard::shard_key(user, name).as_bytes())
}

/// Writes every shard's records, one per name, into one file: one file and
/// one fsync however large the registry. Buckets are written as they are
/// encoded and the table last, so only one bucket's bytes are held at once.
#[cfg(test)]
pub fn write(path: &Path, bits: u32, shards: &[Shard]) -> Result<()> {
    if shards.len() != 1usize << bits {
        bail!("{} shards for {bits} bits", shards.len());
    }
    let mut writer = RecordsWriter::create(path, bits)?;
    for s in shards {
        let records = split_by_name(s)
            .into_iter()
            .map(|(key, r)| Ok((key, serde_json::to_vec(&r)?)))
            .collect::<Result<Vec<_>>>()?;
        writer.push_bucket(records)?;
    }
    writer.finish()
}

/// Writes `records.bin` one bucket at a time, in bucket order.
pub struct RecordsWriter {
    out: BufWriter<File>,
    buckets: u64,
    table: Vec<u8>,
    offset: u64,
}

impl RecordsWriter {
    pub fn create(path: &Path, bits: u32) -> Result<Self> {
        let buckets = 1u64 << bits;
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(MAGIC)?;
        out.write_all(&bits.to_le_bytes())?;
        out.write_all(&0u32.to_le_bytes())?;
        out.write_all(&vec![0u8; (buckets * TABLE_ENTRY) as usize])?;
        Ok(Self {
            out,
            buckets,
            table: Vec::with_capacity((buckets * TABLE_ENTRY) as usize),
            offset: HEADER + TABLE_ENTRY * buckets,
        })
    }

    /// The next bucket's records: (key digest, the JSON of that name's
    /// `Shard`), sorted by key digest.
    pub fn push_bucket(&mut self, records: Vec<([u8; 32], Vec<u8>)>) -> Result<()> {
        let n = (self.table.len() as u64 / TABLE_ENTRY) as u32;
        if u64::from(n) >= self.buckets {
            bail!("more buckets than the {} the table has", self.buckets);
        }
        let mut at = self.offset + 32 + (records.len() * DIR_ENTRY) as u64;
        let mut entries = n.to_le_bytes().to_vec();
        for (key, body) in &records {
            entries.extend_from_slice(key);
            entries.extend_from_slice(&at.to_le_bytes());
            entries.extend_from_slice(&(body.len() as u64).to_le_bytes());
            entries.extend_from_slice(&mlld_schemas::sha256_bytes(body));
            at += body.len() as u64;
        }
        self.out.write_all(&mlld_schemas::sha256_bytes(&entries))?;
        self.out.write_all(&entries[4..])?;
        for (_, body) in &records {
            self.out.write_all(body)?;
        }
        self.table.extend_from_slice(&self.offset.to_le_bytes());
        self.table
            .extend_from_slice(&(records.len() as u64).to_le_bytes());
        self.offset = at;
        Ok(())
    }

    /// Writes the table and makes the file durable; every bucket must have
    /// been pushed.
    pub fn finish(mut self) -> Result<()> {
        if self.table.len() as u64 != self.buckets * TABLE_ENTRY {
            bail!(
                "{} of {} buckets written",
                self.table.len() as u64 / TABLE_ENTRY,
                self.buckets
            );
        }
        self.out.seek(SeekFrom::Start(HEADER))?;
        self.out.write_all(&self.table)?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(())
    }
}

/// A shard's content as one `Shard` per name, sorted by key digest: each
/// holds the records of that name (both layouts), the advisories affecting
/// them, what the indexer rejected of it, and its dependents.
#[cfg(test)]
fn split_by_name(s: &Shard) -> Vec<([u8; 32], Shard)> {
    let mut by_key: std::collections::BTreeMap<String, Shard> = Default::default();
    for m in &s.modules {
        let r = by_key
            .entry(shard::shard_key(&m.user, &m.name))
            .or_default();
        r.modules.push(m.clone());
    }
    for v in &s.versioned {
        let r = by_key
            .entry(shard::shard_key(&v.author, &v.name))
            .or_default();
        r.versioned.push(v.clone());
    }
    for x in &s.rejected {
        if let Some((user, name)) = x.user_and_name() {
            let r = by_key.entry(shard::shard_key(user, name)).or_default();
            r.rejected.push(x.clone());
        }
    }
    for (key, names) in &s.dependents {
        let r = by_key.entry(key.clone()).or_default();
        r.dependents.insert(key.clone(), names.clone());
    }
    let mut out: Vec<([u8; 32], Shard)> = by_key
        .into_iter()
        .map(|(key, mut r)| {
            // The same advisories, in the same order, that the shard holds
            // for these records (see `mlld_schemas::shard::split`).
            r.advisories = s
                .advisories
                .iter()
                .filter(|a| r.affected_by(a))
                .cloned()
                .collect();
            (mlld_schemas::sha256_bytes(key.as_bytes()), r)
        })
        .collect();
    out.sort_unstable_by_key(|(k, _)| *k);
    out
}

/// One name's records from a `records.bin`, each bucket's directory and
/// each record read, checked and parsed at most once.
pub struct Records {
    file: File,
    path: PathBuf,
    bits: u32,
    len: u64,
    buckets: Vec<OnceCell<Bucket>>,
}

/// A bucket's directory (checked against its digest) and the records of it
/// read so far.
struct Bucket {
    entries: Vec<Entry>,
    records: Vec<OnceCell<Shard>>,
}

impl Records {
    pub fn open(path: &Path) -> Result<Self> {
        let file = mlld_fsutil::open_regular(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let len = file.metadata()?.len();
        let mut header = [0u8; HEADER as usize];
        file.read_exact_at(&mut header, 0)
            .map_err(|_| damaged(path, "truncated header"))?;
        if &header[..8] != MAGIC {
            return Err(damaged(path, "not a record table"));
        }
        let bits = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        if bits > shard::MAX_BITS || HEADER + (TABLE_ENTRY << bits) > len {
            return Err(damaged(path, "bad bucket count"));
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            bits,
            len,
            buckets: (0..1usize << bits).map(|_| OnceCell::new()).collect(),
        })
    }

    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The records of `user/name` (a `Shard` of that one name), or `None`
    /// when the snapshot holds nothing about it.
    pub fn get(&self, user: &str, name: &str) -> Result<Option<&Shard>> {
        let key = key_digest(user, name);
        let n = shard::shard_of(&shard::shard_key(user, name), self.bits);
        let bucket = match self.buckets[n as usize].get() {
            Some(b) => b,
            None => {
                let b = self.bucket(n)?;
                self.buckets[n as usize].get_or_init(|| b)
            }
        };
        let Some(i) = bucket.entries.iter().position(|e| e.key == key) else {
            return Ok(None);
        };
        if let Some(r) = bucket.records[i].get() {
            return Ok(Some(r));
        }
        let r = self.record(&bucket.entries[i])?;
        Ok(Some(bucket.records[i].get_or_init(|| r)))
    }

    /// The directory of bucket `n`, checked against its digest.
    fn bucket(&self, n: u32) -> Result<Bucket> {
        let mut place = [0u8; TABLE_ENTRY as usize];
        self.file
            .read_exact_at(&mut place, HEADER + TABLE_ENTRY * u64::from(n))
            .map_err(|_| self.bad("truncated table"))?;
        let offset = u64::from_le_bytes(place[..8].try_into().expect("8 bytes"));
        let count = u64::from_le_bytes(place[8..].try_into().expect("8 bytes"));
        if count > MAX_BUCKET_NAMES
            || offset.saturating_add(32 + count * DIR_ENTRY as u64) > self.len
        {
            return Err(self.bad(format!("bucket {n} lies outside the file")));
        }
        // The digest covers the bucket's number, then its entries: the
        // number is written over the digest's last four bytes to hash them.
        let mut bytes = vec![0u8; 32 + count as usize * DIR_ENTRY];
        self.file
            .read_exact_at(&mut bytes, offset)
            .map_err(|_| self.bad(format!("bucket {n} is truncated")))?;
        let digest: [u8; 32] = bytes[..32].try_into().expect("32 bytes");
        bytes[28..32].copy_from_slice(&n.to_le_bytes());
        if mlld_schemas::sha256_bytes(&bytes[28..]) != digest {
            return Err(self.bad(format!("bucket {n} does not match its digest")));
        }
        let entries: Vec<Entry> = bytes[32..]
            .chunks_exact(DIR_ENTRY)
            .map(|e| Entry {
                key: e[..32].try_into().expect("32 bytes"),
                offset: u64::from_le_bytes(e[32..40].try_into().expect("8 bytes")),
                length: u64::from_le_bytes(e[40..48].try_into().expect("8 bytes")),
                digest: e[48..].try_into().expect("32 bytes"),
            })
            .collect();
        Ok(Bucket {
            records: entries.iter().map(|_| OnceCell::new()).collect(),
            entries,
        })
    }

    /// One record, checked against the digest its directory lists.
    fn record(&self, e: &Entry) -> Result<Shard> {
        let hex = hex::encode(e.key);
        if e.length > MAX_RECORD_BYTES || e.offset.saturating_add(e.length) > self.len {
            return Err(self.bad(format!("the record of key {hex} lies outside the file")));
        }
        let mut body = vec![0u8; e.length as usize];
        self.file
            .read_exact_at(&mut body, e.offset)
            .map_err(|_| self.bad(format!("the record of key {hex} is truncated")))?;
        if mlld_schemas::sha256_bytes(&body) != e.digest {
            return Err(self.bad(format!("the record of key {hex} does not match its digest")));
        }
        serde_json::from_slice(&body)
            .map_err(|err| self.bad(format!("the record of key {hex} does not parse: {err}")))
    }

    fn bad(&self, why: impl Into<String>) -> anyhow::Error {
        damaged(&self.path, why)
    }
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
