//! Packs a snapshot: a reproducible tar, compressed with zstd.
//!
//! Members are written in a fixed order (manifest, its signature, then the
//! rest sorted by path) with fixed mtimes, owners and modes, so the same
//! inputs always give the same bytes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use mlld_schemas::snapshot::{MANIFEST_NAME, MANIFEST_SIG_NAME, Member};
use sha2::Digest as _;

/// zstd level: a good ratio at a speed that suits 100,000-module snapshots.
pub const ZSTD_LEVEL: i32 = 9;

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: sha2::Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn header(size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// Writes the snapshot to `dest` and returns its SHA-256 hex digest and size.
/// `member_root` holds the files named by `members`' paths.
pub fn write(
    dest: &Path,
    manifest: &[u8],
    signature: &[u8],
    members: &BTreeMap<String, Member>,
    member_root: &Path,
    mtime: u64,
) -> io::Result<(String, u64)> {
    let file = File::create(dest)?;
    let hashing = Hashing {
        inner: BufWriter::new(file),
        hasher: sha2::Sha256::new(),
        len: 0,
    };
    let encoder = zstd::Encoder::new(hashing, ZSTD_LEVEL)?;
    let mut tar = tar::Builder::new(encoder);
    tar.mode(tar::HeaderMode::Deterministic);
    for (name, bytes) in [(MANIFEST_NAME, manifest), (MANIFEST_SIG_NAME, signature)] {
        let mut h = header(bytes.len() as u64, mtime);
        tar.append_data(&mut h, name, bytes)?;
    }
    for (path, member) in members {
        let mut h = header(member.size, mtime);
        let f = File::open(member_root.join(path))?;
        tar.append_data(&mut h, path, f)?;
    }
    let encoder = tar.into_inner()?;
    let mut hashing = encoder.finish()?;
    hashing.flush()?;
    let file = hashing.inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((hex::encode(hashing.hasher.finalize()), hashing.len))
}
