//! Writing a snapshot's query store, from bytes already verified: by `sync`
//! and every import, in the staged snapshot directory before it moves into
//! the store (so the store never holds a snapshot without it), and by
//! `sync --repair` from a stored snapshot whose signature is checked again.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use mlld_schemas::shard;

use super::tables::{self, BlobPlace};
use super::{Head, QUERY_DIR, QUERY_FORMAT};
use crate::store::PACK_INDEX_NAME;

/// Writes `snap/query/` from the verified manifest `reader` (streamed: the
/// registry is never held whole), for a snapshot whose pack and pack index
/// are already in `snap`.
pub fn write(snap: &Path, snapshot_sha256: &str, key_id: &str, reader: impl Read) -> Result<()> {
    let dir = snap.join(QUERY_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let streamed =
        super::stream::write_records(reader, &records_path(snap), &snap.join("query-spill"))?;
    finish(snap, snapshot_sha256, key_id, &streamed)
}

/// Where `sync` assembles a staged snapshot's records (see [`finish`]).
pub fn records_path(snap: &Path) -> std::path::PathBuf {
    snap.join(QUERY_DIR).join(super::records::RECORDS_NAME)
}

/// Completes `snap/query/` once its records are written (at
/// [`records_path`]) and the pack and its index are whole: the blob table,
/// then the head, which marks the directory complete.
pub fn finish(
    snap: &Path,
    snapshot_sha256: &str,
    key_id: &str,
    streamed: &super::Streamed,
) -> Result<()> {
    let dir = snap.join(QUERY_DIR);
    let head = Head {
        format: QUERY_FORMAT,
        snapshot: snapshot_sha256.to_string(),
        key_id: key_id.to_string(),
        serial: streamed.serial,
        created: streamed.created.clone(),
        expires: streamed.expires.clone(),
        shard_bits: shard::bits_for(streamed.modules + streamed.versioned),
        modules: streamed.modules,
        versioned: streamed.versioned,
        advisories: streamed.advisories,
    };
    tables::write_blobs(&dir.join(tables::BLOBS_NAME), blob_places(snap)?)?;
    // The head goes last: a directory with a head is complete.
    tables::write_checked(&dir.join(tables::HEAD_NAME), &serde_json::to_vec(&head)?)?;
    mlld_fsutil::sync_dir(&dir)?;
    Ok(())
}

/// Every blob member of the pack index, with its place.
fn blob_places(snap: &Path) -> Result<Vec<([u8; 32], BlobPlace)>> {
    let path = snap.join(PACK_INDEX_NAME);
    let file =
        mlld_fsutil::open_regular(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(file)) {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        let mut parts = line.splitn(3, ' ');
        let (Some(offset), Some(size), Some(member)) = (parts.next(), parts.next(), parts.next())
        else {
            bail!("{} is malformed", path.display());
        };
        let Some(digest) = mlld_schemas::snapshot::blob_digest_bytes(member) else {
            continue;
        };
        out.push((
            digest,
            BlobPlace {
                offset: offset.parse()?,
                size: size.parse()?,
            },
        ));
    }
    Ok(out)
}

/// Rebuilds the query store of the stored snapshot `sha256` from its
/// manifest, whose signature is checked again; with `check_members`, every
/// member in the pack is re-hashed first (`sync --repair`). Returns the
/// number of members checked. The new query store is written beside the
/// old one and swapped in by renames.
pub fn rebuild(
    store: &crate::store::Store,
    sha256: &str,
    keys: &crate::trust::TrustedKeys,
    check_members: bool,
) -> Result<usize> {
    let Some(verified) = store.load_manifest(sha256, keys)? else {
        bail!(
            "snapshot {sha256} is not in the store {}; run `mlld-registry sync`",
            store.root().display()
        );
    };
    let mut checked = 0;
    if check_members {
        for path in verified.manifest.members.keys() {
            verified.read_member(path).with_context(|| {
                format!(
                    "the stored snapshot is damaged beyond repair: delete {} and run `mlld-registry sync`",
                    verified.dir().display()
                )
            })?;
            checked += 1;
        }
    }
    let dir = verified.dir().to_path_buf();
    let staging = store.staging("query-")?;
    let staged = staging.path().join("snap");
    std::fs::create_dir_all(&staged)?;
    std::fs::copy(dir.join(PACK_INDEX_NAME), staged.join(PACK_INDEX_NAME))?;
    let bytes = serde_json::to_vec(&verified.manifest)?;
    write(&staged, sha256, &verified.key_id, &bytes[..])?;
    let old = staging.path().join("old");
    let live = dir.join(QUERY_DIR);
    if live.exists() {
        store.fs().rename_durable(&live, &old)?;
    }
    store.fs().rename_durable(&staged.join(QUERY_DIR), &live)?;
    Ok(checked)
}
