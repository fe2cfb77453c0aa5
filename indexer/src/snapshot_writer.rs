//! Packs a snapshot: a reproducible tar, compressed as independent zstd frames.
//!
//! The tar holds the manifest, its signature, then every blob sorted by
//! path, then the end-of-archive blocks. Blobs are grouped into frames at
//! content-defined boundaries (a blob whose digest starts below a threshold
//! ends a frame), so a frame's bytes depend only on the blobs in it: the
//! same inputs always give the same file, and an incremental build copies
//! every frame whose blobs did not change straight from the previous
//! snapshot, compressing only the rest (in parallel). A multi-frame zstd
//! stream decompresses as one tar, so readers see no difference.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use mlld_schemas::snapshot::{MANIFEST_NAME, MANIFEST_SIG_NAME, Member};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use mlld_site_contract::hashing::Hashing;

mod previous_frames;
use previous_frames::{PreviousFrames, Source};

/// zstd level of blob frames. 4 compresses module text about 7 times
/// faster than 9 for about 11% more bytes: the nightly build recompresses
/// every frame a changed blob lands in, while clients mostly fetch deltas.
pub const ZSTD_LEVEL: i32 = 4;
/// The manifest changes with every build: a fast level (6x faster than 9 here, 10% larger).
const HEAD_ZSTD_LEVEL: i32 = 3;
/// A blob whose digest's last 16 bits are below this ends a frame: 1 in 16
/// on average. (Not the first bits: members are sorted by path, which is the
/// digest, so those would put every boundary at the start of the order.)
const BOUNDARY: u16 = 0x1000;
/// No frame holds more blobs than this, whatever the digests.
const MAX_FRAME_BLOBS: usize = 64;
/// Frames compressed at once before they are written out (bounds memory).
const BATCH: usize = 512;

/// Where each blob frame of a snapshot lies, by frame id, for the next build to reuse.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FrameTable {
    /// Frame id → (offset, length) in the snapshot file.
    pub frames: BTreeMap<String, (u64, u64)>,
}

/// A previous snapshot whose frames may be copied.
pub struct Reuse<'a> {
    pub snapshot: &'a Path,
    pub table: &'a FrameTable,
    /// The previous snapshot's members in path order, when known: a frame
    /// that must be compressed again then reads its unchanged blobs out of
    /// the previous frames that held them instead of from loose files.
    pub members: Option<Box<dyn Iterator<Item = (String, Member)> + 'a>>,
}

pub struct Written {
    pub sha256: String,
    pub size: u64,
    pub table: FrameTable,
    pub frames_reused: usize,
    pub frames_compressed: usize,
}

fn header(path: &str, size: u64, mtime: u64) -> io::Result<[u8; 512]> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(*h.as_bytes())
}

/// Appends one tar entry (header, data, padding) to `out`.
pub(crate) fn entry(out: &mut Vec<u8>, path: &str, data: &[u8], mtime: u64) -> io::Result<()> {
    out.extend_from_slice(&header(path, data.len() as u64, mtime)?);
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
    Ok(())
}

/// A frame's members, in path order.
type Frame = Vec<(String, Member)>;

/// Cuts the members (in path order) into frames at content-defined
/// boundaries, one frame at a time.
fn frames(members: impl Iterator<Item = (String, Member)>) -> impl Iterator<Item = Frame> {
    let mut members = members.peekable();
    std::iter::from_fn(move || {
        members.peek()?;
        let mut frame = Vec::new();
        for (path, m) in members.by_ref() {
            let tail = m
                .sha256
                .get(m.sha256.len().saturating_sub(4)..)
                .unwrap_or("ffff");
            let bits = u16::from_str_radix(tail, 16).unwrap_or(u16::MAX);
            frame.push((path, m));
            if bits < BOUNDARY || frame.len() >= MAX_FRAME_BLOBS {
                break;
            }
        }
        Some(frame)
    })
}

/// Blob frames rarely change and get the strong level; other members (the
/// search index) change with every build and get the fast one.
fn frame_level(frame: &[(String, Member)]) -> i32 {
    if frame
        .iter()
        .all(|(path, _)| mlld_schemas::snapshot::blob_digest(path).is_some())
    {
        ZSTD_LEVEL
    } else {
        HEAD_ZSTD_LEVEL
    }
}

/// A frame's id: what it holds and how it is compressed, so equal ids mean equal bytes.
fn frame_id(frame: &[(String, Member)]) -> String {
    let mut h = sha2::Sha256::new();
    h.update(format!("tar-ustar-mtime0/zstd-{}\n", frame_level(frame)));
    for (path, m) in frame {
        h.update(format!("{path}\0{}\0{}\n", m.sha256, m.size));
    }
    hex::encode(h.finalize())
}

/// Reads a frame's blobs (checking every digest) and compresses them. Blobs
/// come out of the previous frames in `sources` where they are there, and
/// from `locate`'s files otherwise.
fn compress_frame(
    frame: &[(String, Member)],
    sources: (&[Source], Option<&File>),
    locate: &(dyn Fn(&str, &str) -> Option<PathBuf> + Sync),
) -> io::Result<Vec<u8>> {
    let mut carried = match sources {
        (sources, Some(previous)) if !sources.is_empty() => {
            previous_frames::read_blobs(previous, sources, frame)
        }
        _ => Vec::new(),
    };
    // This thread's buffer from the frame before: a frame's tar is up to
    // megabytes, and one allocated afresh each time was faulted in anew.
    thread_local! {
        static TAR: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    }
    let mut tar = TAR.take();
    tar.clear();
    let compressed = tar_frame(frame, &mut carried, locate, &mut tar)
        .and_then(|()| compress_reusing(&tar, frame_level(frame)));
    if tar.capacity() <= MAX_KEPT_TAR {
        TAR.set(tar);
    }
    compressed
}

/// The most tar buffer a thread keeps between frames.
const MAX_KEPT_TAR: usize = 16 << 20;

/// Appends the frame's members to `tar`: each from the previous snapshot
/// (`carried`) or found by `locate`, checked against its digest.
fn tar_frame(
    frame: &[(String, Member)],
    carried: &mut Vec<(String, Vec<u8>)>,
    locate: &(dyn Fn(&str, &str) -> Option<PathBuf> + Sync),
    tar: &mut Vec<u8>,
) -> io::Result<()> {
    for (path, m) in frame {
        let (data, from) = match carried.iter().position(|(p, _)| p == path) {
            Some(i) => (
                carried.swap_remove(i).1,
                format!("the previous snapshot's copy of {path}"),
            ),
            None => {
                let file = locate(path, &m.sha256).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("member {path} is in no blob directory"),
                    )
                })?;
                let from = format!("{} (the blob directory is damaged)", file.display());
                (std::fs::read(&file)?, from)
            }
        };
        let actual = mlld_schemas::sha256_hex(&data);
        if actual != m.sha256 || data.len() as u64 != m.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{from} hashes to {actual}, not {}: rebuild with --previous none",
                    m.sha256
                ),
            ));
        }
        entry(tar, path, &data, 0)?;
    }
    Ok(())
}

/// Compresses with this thread's zstd context for `level`. A fresh context
/// per frame would map, fault in and zero its megabytes of tables every
/// time: that, not compressing, was most of the cost of a frame.
fn compress_reusing(data: &[u8], level: i32) -> io::Result<Vec<u8>> {
    thread_local! {
        static CONTEXT: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
            const { std::cell::RefCell::new(None) };
    }
    CONTEXT.with(|context| {
        let mut context = context.borrow_mut();
        if context.as_ref().is_none_or(|(l, _)| *l != level) {
            *context = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        context.as_mut().expect("set above").1.compress(data)
    })
}

enum Piece {
    Copy(u64, u64),
    Bytes(Vec<u8>),
}

/// Writes the first frame of a snapshot to `dest`: the manifest (read from
/// the file `manifest` as it is compressed: at a million modules it is close
/// to a gigabyte) and its signature, with `mtime` (the build time).
/// Compressed once per build: the full and the index-only snapshot share it.
/// One frame whose header carries the content size (pledged up front); a
/// streaming compressor cuts blocks a little differently from a single-shot
/// one (2% larger here), but the same inputs give the same bytes.
pub fn head_frame(manifest: &Path, signature: &[u8], mtime: u64, dest: &Path) -> io::Result<()> {
    let mut file = File::open(manifest)?;
    let len = file.metadata()?.len();
    // The manifest's padding, then the signature's entry.
    let mut tail = vec![0; (len.next_multiple_of(512) - len) as usize];
    let mut sig = Vec::new();
    entry(&mut sig, MANIFEST_SIG_NAME, signature, mtime)?;
    tail.append(&mut sig);
    let total = 512 + len + tail.len() as u64;
    let out = BufWriter::new(File::create(dest)?);
    let mut zstd = zstd::stream::write::Encoder::new(out, HEAD_ZSTD_LEVEL)?;
    zstd.set_pledged_src_size(Some(total))?;
    zstd.write_all(&header(MANIFEST_NAME, len, mtime)?)?;
    let copied = io::copy(&mut (&mut file).take(len), &mut zstd)?;
    if copied != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{} shrank while it was packed", manifest.display()),
        ));
    }
    zstd.write_all(&tail)?;
    zstd.finish()?.flush()
}

/// Writes the snapshot to `dest`. `locate` finds a member's file by path and digest;
/// every blob packed fresh is re-hashed, so a damaged file fails the build
/// instead of entering a signed snapshot under a digest it does not have.
/// `head` is the file holding the compressed first frame ([`head_frame`]).
pub fn write(
    dest: &Path,
    head: &Path,
    members: impl Iterator<Item = (String, Member)>,
    locate: &(dyn Fn(&str, &str) -> Option<PathBuf> + Sync),
    reuse: Option<Reuse<'_>>,
) -> io::Result<Written> {
    let mut out = Hashing::new(BufWriter::new(File::create(dest)?));
    io::copy(&mut File::open(head)?, &mut out)?;
    let mut packer = Packer {
        previous: match &reuse {
            Some(r) => Some(File::open(r.snapshot)?),
            None => None,
        },
        out,
        table: FrameTable::default(),
        reused: 0,
        compressed: 0,
    };
    let (reuse, previous_members) = match reuse {
        Some(r) => (Some((r.snapshot, r.table)), r.members),
        None => (None, None),
    };
    let mut previous_frames = previous_members
        .zip(reuse)
        .map(|(members, (_, table))| PreviousFrames::new(frames(members), table));
    let mut batch = Vec::with_capacity(BATCH);
    for frame in frames(members) {
        let sources = (previous_frames.as_mut()).map_or_else(Vec::new, |p| p.overlapping(&frame));
        batch.push((frame, sources));
        if batch.len() == BATCH {
            packer.batch(&batch, reuse.map(|r| r.1), locate)?;
            batch.clear();
        }
    }
    packer.batch(&batch, reuse.map(|r| r.1), locate)?;
    let Packer {
        mut out,
        table,
        reused,
        compressed,
        ..
    } = packer;
    out.write_all(&zstd::bulk::compress(&[0u8; 1024], ZSTD_LEVEL)?)?;
    out.flush()?;
    let file = out.inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(Written {
        sha256: hex::encode(out.hasher.finalize()),
        size: out.len,
        table,
        frames_reused: reused,
        frames_compressed: compressed,
    })
}

/// The snapshot being written, frame after frame.
struct Packer {
    out: Hashing<BufWriter<File>>,
    previous: Option<File>,
    table: FrameTable,
    reused: usize,
    compressed: usize,
}

impl Packer {
    /// Compresses (or finds in the previous snapshot) a batch of frames on
    /// all cores, then appends them in order.
    fn batch(
        &mut self,
        batch: &[(Frame, Vec<Source>)],
        table: Option<&FrameTable>,
        locate: &(dyn Fn(&str, &str) -> Option<PathBuf> + Sync),
    ) -> io::Result<()> {
        let previous = self.previous.as_ref();
        let pieces: Vec<(String, io::Result<Piece>)> = batch
            .par_iter()
            .map(|(frame, sources)| {
                let id = frame_id(frame);
                let known = table.and_then(|t| t.frames.get(&id).copied());
                let piece = match known {
                    Some((offset, len)) => Ok(Piece::Copy(offset, len)),
                    None => compress_frame(frame, (sources, previous), locate).map(Piece::Bytes),
                };
                (id, piece)
            })
            .collect();
        for (id, piece) in pieces {
            let offset = self.out.len;
            match piece? {
                Piece::Copy(from, len) => {
                    let src =
                        (self.previous.as_mut()).expect("copies come from a previous snapshot");
                    src.seek(SeekFrom::Start(from))?;
                    let copied = io::copy(&mut src.take(len), &mut self.out)?;
                    if copied != len {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the previous snapshot is shorter than its frame table says",
                        ));
                    }
                    self.reused += 1;
                }
                Piece::Bytes(bytes) => {
                    self.out.write_all(&bytes)?;
                    self.compressed += 1;
                }
            }
            self.table
                .frames
                .insert(id, (offset, self.out.len - offset));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
