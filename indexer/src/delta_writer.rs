//! Delta-sync files: what a client holding the previous snapshot downloads
//! instead of the new one.
//!
//! The patch is a chunk delta (`mlld_site_contract::chunk_delta`) from the
//! previous snapshot's delta base (its manifest and search index, see
//! `delta_base_parts`) to the new index-only tar: copies of the base's
//! unchanged chunks and the changed bytes, compressed, so it holds little
//! more than what changed. The base streams out of the previous index-only
//! snapshot and the target out of the staged one; only the base's chunk
//! table is held (`delta_chunks`), so memory does not grow with the
//! snapshots' bytes and their size has no ceiling. The blob pack is a
//! `tar.zst` of the blobs the previous snapshot lacks, streamed to its file.
//! Both are named by digest, and `latest.json` signs the digests of the
//! patch, its base, its output and the pack.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mlld_schemas::snapshot::{
    ChunkDelta, Member, SiteFile, blob_digest, delta_base_parts_of, delta_blobs_path,
};
use mlld_site_contract::paths::chunk_delta_path;
use sha2::Digest as _;

use crate::blobs::BlobDir;
use crate::delta_chunks::{self, ChunkTable};
use crate::members::Members;
use crate::snapshot_writer;
use mlld_site_contract::hashing::Hashing;

/// zstd level of the blob pack: written once per build, a few megabytes.
const BLOBS_LEVEL: i32 = 12;

/// The previous snapshot a delta starts from.
pub struct Origin<'a> {
    pub serial: u64,
    pub snapshot_sha256: &'a str,
    /// Its members (the manifest is the base's first part).
    pub members: &'a Members,
    /// Its index-only snapshot, verified against the signed latest.json.
    pub index_snapshot: &'a Path,
}

/// A delta staged for publishing: its `latest.json` entry and the staged files.
pub struct StagedDelta {
    pub delta: ChunkDelta,
    pub patch: PathBuf,
    pub blobs: PathBuf,
}

/// Writes the chunk delta from `from` to the index-only snapshot
/// `staged_index`, and the pack of blobs in `members` that `from` lacks,
/// into `staging`.
pub fn write(
    staging: &Path,
    from: &Origin<'_>,
    staged_index: &Path,
    members: &Members,
    blobs: &BlobDir,
) -> Result<StagedDelta> {
    let (table, base) = chunk_base(from)?;
    let mut target = Hashing::new(
        zstd::Decoder::new(File::open(staged_index)?)
            .context("reading back the staged index-only snapshot")?,
    );
    let patch_file = staging.join("delta.chunks.zst");
    let out = Hashing::new(BufWriter::new(File::create(&patch_file)?));
    let (out, _) = delta_chunks::encode(&table, &mut target, out)
        .context("writing the chunk delta against the staged index-only snapshot")?;
    drop(table);
    let (patch, file) = out.finish();
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let (target, _) = target.finish();

    let new_blobs: Vec<(String, Member)> = members
        .iter()
        .filter(|(p, _)| blob_digest(p).is_some() && !from.members.contains_key(p))
        .collect();
    let blobs_file = staging.join("delta.blobs.tar.zst");
    let pack = blob_pack(&new_blobs, blobs, &blobs_file)?;

    let delta = ChunkDelta {
        from_serial: from.serial,
        from_snapshot: from.snapshot_sha256.to_string(),
        base,
        patch: SiteFile {
            path: chunk_delta_path(&patch.sha256),
            sha256: patch.sha256,
            size: patch.size,
        },
        target,
        blobs: SiteFile {
            path: delta_blobs_path(&pack.sha256),
            sha256: pack.sha256,
            size: pack.size,
        },
    };
    Ok(StagedDelta {
        delta,
        patch: patch_file,
        blobs: blobs_file,
    })
}

/// The chunk table of the previous snapshot's delta base and the base's
/// digest, streamed out of its index-only snapshot.
fn chunk_base(from: &Origin<'_>) -> Result<(ChunkTable, mlld_schemas::snapshot::Digest)> {
    let file = File::open(from.index_snapshot)
        .with_context(|| format!("opening {}", from.index_snapshot.display()))?;
    let mut archive = mlld_site_contract::archive::open_zstd(file)?;
    let parts = BaseParts {
        entries: archive.entries()?,
        wanted: delta_base_parts_of(from.members.other_paths())
            .map(str::to_string)
            .collect(),
        members: from.members,
        current: None,
    };
    let mut base = Hashing::new(parts);
    let table = ChunkTable::of(&mut base).with_context(|| {
        format!(
            "reading the delta base out of the previous index-only snapshot {}",
            from.index_snapshot.display()
        )
    })?;
    let (digest, parts) = base.finish();
    if let Some(missing) = parts.wanted.front() {
        bail!(
            "the previous index-only snapshot lacks `{missing}` (or holds it out of order), which its manifest lists"
        );
    }
    Ok((table, digest))
}

/// The delta base as one stream: the index-only snapshot's members that
/// `delta_base_parts` names, in its order (the snapshot holds them so),
/// each checked against the previous manifest as it ends.
struct BaseParts<'a, R: Read> {
    entries: tar::Entries<'a, R>,
    wanted: VecDeque<String>,
    members: &'a Members,
    current: Option<(String, tar::Entry<'a, R>, sha2::Sha256)>,
}

impl<R: Read> BaseParts<'_, R> {
    /// Moves to the next wanted member; `false` when none is left.
    fn next_part(&mut self) -> io::Result<bool> {
        let Some(want) = self.wanted.front() else {
            return Ok(false);
        };
        for entry in self.entries.by_ref() {
            let entry = entry?;
            let path = mlld_site_contract::archive::member_path(&entry)
                .map_err(|e| io::Error::other(format!("{e:#}")))?;
            if &path == want {
                self.wanted.pop_front();
                self.current = Some((path, entry, sha2::Sha256::new()));
                return Ok(true);
            }
        }
        Err(io::Error::other(format!(
            "the previous index-only snapshot lacks `{want}` (or holds it out of order), which its manifest lists"
        )))
    }

    /// Checks the member just read against the previous manifest.
    fn end_part(&mut self) -> io::Result<()> {
        let Some((path, _, hasher)) = self.current.take() else {
            return Ok(());
        };
        if let Some(member) = self.members.get(&path)
            && hex::encode(hasher.finalize()) != member.sha256
        {
            return Err(io::Error::other(format!(
                "the previous index-only snapshot's `{path}` does not match its manifest"
            )));
        }
        Ok(())
    }
}

impl<R: Read> Read for BaseParts<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some((_, entry, hasher)) = &mut self.current {
                let n = entry.read(buf)?;
                if n > 0 || buf.is_empty() {
                    hasher.update(&buf[..n]);
                    return Ok(n);
                }
                self.end_part()?;
            }
            if !self.next_part()? {
                return Ok(0);
            }
        }
    }
}

/// Streams a reproducible `tar.zst` of `blobs` (sorted) into `dest`, every
/// one re-hashed; its digest and size.
fn blob_pack(
    members: &[(String, Member)],
    blobs: &BlobDir,
    dest: &Path,
) -> Result<mlld_schemas::snapshot::Digest> {
    let out = Hashing::new(BufWriter::new(File::create(dest)?));
    let mut tar = zstd::Encoder::new(out, BLOBS_LEVEL)?;
    let mut entry = Vec::new();
    for (path, member) in members {
        let file = blobs.require(&member.sha256)?;
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        if mlld_schemas::sha256_hex(&bytes) != member.sha256 {
            bail!(
                "{} does not hash to {}: the blob directory is damaged; rebuild with --previous none",
                file.display(),
                member.sha256
            );
        }
        entry.clear();
        snapshot_writer::entry(&mut entry, path, &bytes, 0)?;
        tar.write_all(&entry)?;
    }
    tar.write_all(&[0; 1024])?;
    let (digest, file) = tar.finish()?.finish();
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(digest)
}
