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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use mlld_schemas::snapshot::{ChunkDelta, Member, SiteFile, delta_base_parts_of, delta_blobs_path};
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
    /// Its members: the blob pack holds the new build's blobs these lack.
    pub members: &'a Members,
}

/// What chunking the previous snapshot's delta base reads, owned: it runs
/// on its own thread beside the stages before the delta.
pub struct BaseSource {
    /// The previous index-only snapshot, verified against the signed latest.json.
    index_snapshot: PathBuf,
    /// The base's parts in order, each with the digest its manifest gives.
    parts: VecDeque<(String, Option<String>)>,
    /// Set when the build no longer wants the base: reading stops.
    cancelled: Arc<AtomicBool>,
}

impl BaseSource {
    pub fn new(members: &Members, index_snapshot: &Path) -> Self {
        let parts = delta_base_parts_of(members.other_paths())
            .map(|path| (path.to_string(), members.get(path).map(|m| m.sha256)))
            .collect();
        Self {
            index_snapshot: index_snapshot.to_path_buf(),
            parts,
            cancelled: Arc::default(),
        }
    }

    /// Setting it stops [`chunk_base`] at its next read, with an error.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancelled)
    }
}

/// The previous snapshot's delta base, chunked: the table of its chunks and its digest.
pub struct Base {
    table: ChunkTable,
    digest: mlld_schemas::snapshot::Digest,
}

/// A delta staged for publishing: its `latest.json` entry and the staged files.
pub struct StagedDelta {
    pub delta: ChunkDelta,
    pub patch: PathBuf,
    pub blobs: PathBuf,
}

/// Writes the chunk delta from `from` (whose delta base is `base`) to the
/// index-only snapshot `staged_index`, and the pack of blobs in `members`
/// that `from` lacks, into `staging`.
pub fn write(
    staging: &Path,
    (from, base): (&Origin<'_>, Base),
    staged_index: &Path,
    members: &Members,
    blobs: &BlobDir,
) -> Result<StagedDelta> {
    let Base {
        table,
        digest: base,
    } = base;
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

    let new_blobs = members.blobs_not_in(from.members);
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

/// Chunks the previous snapshot's delta base, streamed out of its
/// index-only snapshot, each part checked against the previous manifest.
pub fn chunk_base(source: BaseSource) -> Result<Base> {
    let BaseSource {
        index_snapshot,
        parts,
        cancelled,
    } = source;
    let file = File::open(&index_snapshot)
        .with_context(|| format!("opening {}", index_snapshot.display()))?;
    let mut archive = mlld_site_contract::archive::open_zstd(file)?;
    let parts = BaseParts {
        entries: archive.entries()?,
        wanted: parts,
        current: None,
        cancelled,
    };
    let mut base = Hashing::new(parts);
    let table = ChunkTable::of(&mut base).with_context(|| {
        format!(
            "reading the delta base out of the previous index-only snapshot {}",
            index_snapshot.display()
        )
    })?;
    let (digest, parts) = base.finish();
    if let Some((missing, _)) = parts.wanted.front() {
        bail!(
            "the previous index-only snapshot lacks `{missing}` (or holds it out of order), which its manifest lists"
        );
    }
    Ok(Base { table, digest })
}

/// The delta base as one stream: the index-only snapshot's members that
/// `delta_base_parts` names, in its order (the snapshot holds them so),
/// each checked against the previous manifest as it ends.
struct BaseParts<'a, R: Read> {
    entries: tar::Entries<'a, R>,
    /// Paths still to read, with the digest the manifest gives each.
    wanted: VecDeque<(String, Option<String>)>,
    current: Option<(String, Option<String>, tar::Entry<'a, R>, sha2::Sha256)>,
    cancelled: Arc<AtomicBool>,
}

impl<R: Read> BaseParts<'_, R> {
    /// Moves to the next wanted member; `false` when none is left.
    fn next_part(&mut self) -> io::Result<bool> {
        let Some((want, _)) = self.wanted.front() else {
            return Ok(false);
        };
        for entry in self.entries.by_ref() {
            let entry = entry?;
            let path = mlld_site_contract::archive::member_path(&entry)
                .map_err(|e| io::Error::other(format!("{e:#}")))?;
            if &path == want {
                let (_, expected) = self.wanted.pop_front().expect("looked at above");
                self.current = Some((path, expected, entry, sha2::Sha256::new()));
                return Ok(true);
            }
        }
        Err(io::Error::other(format!(
            "the previous index-only snapshot lacks `{want}` (or holds it out of order), which its manifest lists"
        )))
    }

    /// Checks the member just read against the previous manifest.
    fn end_part(&mut self) -> io::Result<()> {
        let Some((path, expected, _, hasher)) = self.current.take() else {
            return Ok(());
        };
        if let Some(expected) = expected
            && hex::encode(hasher.finalize()) != expected
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
        if self.cancelled.load(Ordering::Relaxed) {
            return Err(io::Error::other("the build no longer needs the delta base"));
        }
        loop {
            if let Some((_, _, entry, hasher)) = &mut self.current {
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

#[cfg(test)]
mod tests {
    use super::*;
    use mlld_schemas::sha256_hex;
    use mlld_schemas::snapshot::{MANIFEST_NAME, MANIFEST_SIG_NAME, blob_path};

    fn member(bytes: &[u8]) -> Member {
        Member {
            sha256: sha256_hex(bytes),
            size: bytes.len() as u64,
        }
    }

    /// An index-only snapshot `name` holding `parts`, in this order.
    fn index_snapshot(dir: &Path, name: &str, parts: &[(&str, &[u8])]) -> PathBuf {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, data) in parts {
            let mut h = tar::Header::new_ustar();
            h.set_path(path).unwrap();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append(&h, *data).unwrap();
        }
        let file = dir.join(name);
        let bytes = zstd::encode_all(&tar.into_inner().unwrap()[..], 1).unwrap();
        std::fs::write(&file, bytes).unwrap();
        file
    }

    #[test]
    fn the_base_is_the_manifest_then_the_search_index_each_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (manifest, store, meta) = (&b"{\"manifest\":1}"[..], &b"store"[..], &b"meta"[..]);
        let members = |meta_member: Member| {
            let mut m = Members::default();
            m.extend([
                ("index/a.store".to_string(), member(store)),
                ("index/meta.json".to_string(), meta_member),
                (blob_path(&sha256_hex(b"x")), member(b"x")),
            ]);
            m
        };
        let file = index_snapshot(
            dir.path(),
            "whole.tar.zst",
            &[
                (MANIFEST_NAME, manifest),
                (MANIFEST_SIG_NAME, b"signature"),
                ("index/a.store", store),
                ("index/meta.json", meta),
            ],
        );
        let base = chunk_base(BaseSource::new(&members(member(meta)), &file)).unwrap();
        let whole = [manifest, store, meta].concat();
        assert_eq!(base.digest.sha256, sha256_hex(&whole));
        assert_eq!(base.digest.size, whole.len() as u64);

        let err = chunk_base(BaseSource::new(&members(member(b"other")), &file))
            .err()
            .expect("a part that does not match is refused");
        assert!(
            format!("{err:#}").contains("`index/meta.json` does not match its manifest"),
            "{err:#}"
        );
        let short = index_snapshot(
            dir.path(),
            "short.tar.zst",
            &[(MANIFEST_NAME, manifest), ("index/a.store", store)],
        );
        let err = chunk_base(BaseSource::new(&members(member(meta)), &short))
            .err()
            .expect("a missing part is refused");
        assert!(
            format!("{err:#}").contains("lacks `index/meta.json`"),
            "{err:#}"
        );

        let source = BaseSource::new(&members(member(meta)), &file);
        source.cancel_flag().store(true, Ordering::Relaxed);
        let err = chunk_base(source).err().expect("a cancelled base stops");
        assert!(format!("{err:#}").contains("no longer needs"), "{err:#}");
    }
}
