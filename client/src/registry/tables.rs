//! The query store's files: small self-checking tables read by offset, so a
//! command reads the records it needs and nothing else.
//!
//! ```text
//! head2.json   <sha256 hex of the rest>\n{"format":2,"snapshot":…,"serial":…,…}
//! records.bin  one record per name, see [`super::records`]
//! blobs.idx    "MLLDBLB1" | count: u64 | (sha256: [u8; 32], offset: u64, size: u64) × count, sorted
//! ```
//!
//! Integers are little-endian. Every record a command trusts carries its own
//! SHA-256, checked on each read: a damaged file is refused, never misread.
//! `blobs.idx` needs none: it only says where to look, and every blob read
//! through it is hashed against the digest asked for.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result};

/// The head's name carries the format: a store of another format has none,
/// so commands read its manifest and the next `sync` rebuilds it (format 1
/// was `head.json` beside `shards.bin`).
pub const HEAD_NAME: &str = "head2.json";
pub const BLOBS_NAME: &str = "blobs.idx";
const BLOBS_MAGIC: &[u8; 8] = b"MLLDBLB1";
const BLOB_ENTRY: u64 = 48;

/// Why a table cannot be used: the caller names the store and the remedy.
#[derive(Debug, thiserror::Error)]
#[error("{path} is damaged ({why})")]
pub struct Damaged {
    pub path: String,
    pub why: String,
}

pub(super) fn damaged(path: &Path, why: impl Into<String>) -> anyhow::Error {
    Damaged {
        path: path.display().to_string(),
        why: why.into(),
    }
    .into()
}

/// `<hex digest>\n<bytes>`: a small file that checks itself.
pub fn write_checked(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut out = mlld_schemas::sha256_hex(bytes).into_bytes();
    out.push(b'\n');
    out.extend_from_slice(bytes);
    write_synced(path, &out)
}

/// The bytes of a [`write_checked`] file, refused if they do not match.
pub fn read_checked(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let raw = mlld_fsutil::read_regular(path, cap)
        .with_context(|| format!("reading {}", path.display()))?;
    let (digest, body) = raw
        .split_at_checked(65)
        .filter(|(d, _)| d.last() == Some(&b'\n'))
        .ok_or_else(|| damaged(path, "no digest line"))?;
    if mlld_schemas::sha256_hex(body).as_bytes() != &digest[..64] {
        return Err(damaged(path, "its content does not match its digest"));
    }
    Ok(body.to_vec())
}

/// A blob's place in the snapshot's pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobPlace {
    pub offset: u64,
    pub size: u64,
}

/// Writes `blobs.idx` from `(digest, place)` pairs in any order.
pub fn write_blobs(path: &Path, mut blobs: Vec<([u8; 32], BlobPlace)>) -> Result<()> {
    blobs.sort_unstable_by_key(|b| b.0);
    blobs.dedup_by(|a, b| a.0 == b.0);
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    out.write_all(BLOBS_MAGIC)?;
    out.write_all(&(blobs.len() as u64).to_le_bytes())?;
    for (digest, place) in &blobs {
        out.write_all(digest)?;
        out.write_all(&place.offset.to_le_bytes())?;
        out.write_all(&place.size.to_le_bytes())?;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(())
}

/// Binary search in `blobs.idx`: about twenty reads at a million blobs.
pub fn find_blob(path: &Path, digest: &[u8; 32]) -> Result<Option<BlobPlace>> {
    let file = match mlld_fsutil::open_regular(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut header = [0u8; 16];
    file.read_exact_at(&mut header, 0)
        .map_err(|_| damaged(path, "truncated header"))?;
    if &header[..8] != BLOBS_MAGIC {
        return Err(damaged(path, "not a blob index"));
    }
    let count = u64::from_le_bytes(header[8..].try_into().expect("8 bytes"));
    if count
        .checked_mul(BLOB_ENTRY)
        .and_then(|n| n.checked_add(16))
        != Some(file.metadata()?.len())
    {
        return Err(damaged(path, "its length does not match its count"));
    }
    let (mut low, mut high) = (0u64, count);
    let mut entry = [0u8; BLOB_ENTRY as usize];
    while low < high {
        let mid = low + (high - low) / 2;
        file.read_exact_at(&mut entry, 16 + mid * BLOB_ENTRY)?;
        match entry[..32].cmp(digest) {
            std::cmp::Ordering::Less => low = mid + 1,
            std::cmp::Ordering::Greater => high = mid,
            std::cmp::Ordering::Equal => {
                return Ok(Some(BlobPlace {
                    offset: u64::from_le_bytes(entry[32..40].try_into().expect("8 bytes")),
                    size: u64::from_le_bytes(entry[40..].try_into().expect("8 bytes")),
                }));
            }
        }
    }
    Ok(None)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_found_by_binary_search() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(BLOBS_NAME);
        let blobs: Vec<_> = (0..1000u64)
            .map(|i| {
                let d = mlld_schemas::sha256_bytes(&i.to_le_bytes());
                (
                    d,
                    BlobPlace {
                        offset: i * 10,
                        size: i,
                    },
                )
            })
            .collect();
        write_blobs(&path, blobs.clone()).unwrap();
        for (d, place) in &blobs {
            assert_eq!(find_blob(&path, d).unwrap(), Some(*place));
        }
        assert_eq!(find_blob(&path, &[0xab; 32]).unwrap(), None);
    }

    #[test]
    fn a_checked_file_detects_any_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HEAD_NAME);
        write_checked(&path, b"{\"format\":1}").unwrap();
        assert_eq!(read_checked(&path, 1 << 20).unwrap(), b"{\"format\":1}");
        std::fs::write(&path, b"nonsense").unwrap();
        assert!(read_checked(&path, 1 << 20).is_err());
    }
}
