//! The chunk delta's choice of what to copy: the base is cut into
//! content-defined chunks (FastCDC), each remembered by its SHA-256 and
//! place; the target is cut the same way, and each of its chunks becomes a
//! copy of the base's identical chunk or literal bytes. Both stream through
//! once; only the table of the base's chunks stays in memory: 48 bytes a
//! chunk, sorted by digest (about 50 MB for a 1 GB base).

use std::io::{self, Read, Write};

use fastcdc::v2020::{ChunkData, StreamCDC};
use mlld_site_contract::chunk_delta::Writer;
use sha2::Digest as _;

/// Chunk sizes. A changed record of the manifest turns the chunk holding it,
/// and often the next (its boundary moved), into literal bytes, so the
/// average chunk sets the delta's size: on the records of the test below
/// with 1% changed, the delta is 7.7% of the compressed target at 2 KiB,
/// 5.4% at 1 KiB and 3.1% at 512 bytes, while the table doubles with each
/// halving. 1 KiB keeps the table near 50 MB at 1 GB of base; BENCHMARKS.md
/// ("Delta sync") has the measure at 100,000 modules.
const MIN_CHUNK: usize = 256;
const AVG_CHUNK: usize = 1 << 10;
const MAX_CHUNK: usize = 8 << 10;
/// zstd level of the operation stream, whose literals are mostly JSON.
const LEVEL: i32 = 9;

/// Where each distinct chunk of the base lies, sorted by its SHA-256 (a
/// sorted vector: half the memory of a hash map at its load factor).
pub(crate) struct ChunkTable {
    chunks: Vec<Chunk>,
}

struct Chunk {
    sha256: [u8; 32],
    offset: u64,
    len: u32,
}

/// What an encoded delta is made of.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Encoded {
    /// Target bytes copied from the base.
    pub copied: u64,
    /// Target bytes carried literally.
    pub literal: u64,
}

impl ChunkTable {
    /// Chunks `base` as it streams by.
    pub(crate) fn of(base: impl Read) -> io::Result<Self> {
        let mut chunks = Vec::new();
        for chunk in chunks_of(base) {
            let chunk = chunk?;
            chunks.push(Chunk {
                sha256: digest(&chunk.data),
                offset: chunk.offset,
                len: chunk.length as u32,
            });
        }
        // Equal chunks: the first place serves (any copy of the bytes would).
        chunks.sort_unstable_by(|a, b| a.sha256.cmp(&b.sha256).then(a.offset.cmp(&b.offset)));
        chunks.dedup_by(|later, first| later.sha256 == first.sha256);
        chunks.shrink_to_fit();
        Ok(Self { chunks })
    }

    fn find(&self, data: &[u8]) -> Option<(u64, u64)> {
        let sha256 = digest(data);
        let i = self
            .chunks
            .binary_search_by(|c| c.sha256.cmp(&sha256))
            .ok()?;
        Some((self.chunks[i].offset, u64::from(self.chunks[i].len)))
    }
}

/// Writes `target` as a chunk delta against the base `table` was made
/// from, into `out`; hands back `out` and what the delta is made of.
pub(crate) fn encode<W: Write>(
    table: &ChunkTable,
    target: impl Read,
    out: W,
) -> io::Result<(W, Encoded)> {
    let mut writer = Writer::new(out, LEVEL)?;
    let mut encoded = Encoded::default();
    for chunk in chunks_of(target) {
        let chunk = chunk?;
        match table.find(&chunk.data) {
            Some((offset, len)) => {
                writer.copy(offset, len)?;
                encoded.copied += len;
            }
            None => {
                writer.data(&chunk.data)?;
                encoded.literal += chunk.data.len() as u64;
            }
        }
    }
    Ok((writer.finish()?, encoded))
}

fn chunks_of(source: impl Read) -> impl Iterator<Item = io::Result<ChunkData>> {
    StreamCDC::new(source, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK).map(|chunk| {
        chunk.map_err(|e| match e {
            fastcdc::v2020::Error::IoError(e) => e,
            other => io::Error::other(other.to_string()),
        })
    })
}

fn digest(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlld_site_contract::chunk_delta::Reader;

    /// JSON-like records, as the manifest holds them; `changed` ones differ.
    fn records(n: usize, changed: impl Fn(usize) -> bool) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            let generation = if changed(i) { 1 } else { 0 };
            let digest = |what: &str| {
                mlld_schemas::sha256_hex(format!("{i}/{generation}/{what}").as_bytes())
            };
            out.extend_from_slice(
                format!(
                    "{{\"user\":\"user{}\",\"name\":\"module-{i}\",\"revision\":\"{}\",\"files\":{{\"main.mld\":\"{}\",\"README.md\":\"{}\"}},\"updated\":\"{}\",\"about\":\"module number {i} does {}\"}},\n",
                    i % 97,
                    digest("revision"),
                    digest("main"),
                    digest("readme"),
                    digest("time"),
                    "things ".repeat(i % 60)
                )
                .as_bytes(),
            );
        }
        out
    }

    fn delta(base: &[u8], target: &[u8]) -> (Vec<u8>, Encoded) {
        let table = ChunkTable::of(base).unwrap();
        encode(&table, target, Vec::new()).unwrap()
    }

    fn apply(patch: &[u8], base: &[u8], target_len: u64) -> Vec<u8> {
        let mut out = Vec::new();
        Reader::new(patch, base, base.len() as u64, target_len)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn a_delta_rebuilds_the_target() {
        let base = records(3_000, |_| false);
        let mut target = b"a new header".to_vec();
        target.extend_from_slice(&records(3_000, |i| i % 50 == 7));
        target.extend_from_slice(&base[..5_000]);
        let (patch, encoded) = delta(&base, &target);
        assert_eq!(encoded.copied + encoded.literal, target.len() as u64);
        assert_eq!(apply(&patch, &base, target.len() as u64), target);
        // From nothing, and to nothing.
        assert_eq!(
            apply(&delta(b"", &target).0, b"", target.len() as u64),
            target
        );
        assert_eq!(apply(&delta(&base, b"").0, &base, 0), b"");
    }

    #[test]
    fn one_percent_of_records_changed_gives_a_small_delta() {
        let base = records(20_000, |_| false);
        let target = records(20_000, |i| i % 100 == 42);
        let (patch, encoded) = delta(&base, &target);
        assert_eq!(apply(&patch, &base, target.len() as u64), target);
        let whole = zstd::bulk::compress(&target, LEVEL).unwrap();
        // Measured: 5% of the records' bytes travel literally, 2.5 KiB
        // a changed record, and the delta is 5.4% of the compressed target.
        assert!(
            encoded.literal * 15 < target.len() as u64,
            "{encoded:?} of {} bytes",
            target.len()
        );
        assert!(
            patch.len() * 10 < whole.len(),
            "the delta is {} bytes, the compressed target {}",
            patch.len(),
            whole.len()
        );
    }
}
