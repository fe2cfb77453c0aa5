//! Stage "pack snapshot": the signed manifest and every member, as the full
//! snapshot and as the index-only snapshot that delta sync starts from.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mlld_schemas::snapshot::blob_digest;
use time::OffsetDateTime;

use super::manifest::SignedManifest;
use crate::blobs::BlobDir;
use crate::previous::Previous;
use crate::snapshot_writer::{self, Written};

/// Both snapshots, staged.
pub(super) struct Packed {
    /// The full snapshot: manifest, signature, search index and every blob.
    pub(super) snapshot: PathBuf,
    pub(super) written: Written,
    /// The same without blobs; its frames are the full snapshot's, copied.
    pub(super) index: PathBuf,
    pub(super) index_written: Written,
}

/// Takes the signed manifest and the file holding its bytes (removed once
/// the head frame holds them), the blobs,
/// the staged search index under `staging`, and the previous snapshot
/// (whose compressed frames are copied when unchanged); writes both
/// snapshots under `staging` with every entry's mtime at `created`.
pub(super) fn pack_snapshots(
    manifest_file: &Path,
    signed: &SignedManifest,
    created: OffsetDateTime,
    blobs: &BlobDir,
    previous: Option<&Previous>,
    staging: &Path,
) -> Result<Packed> {
    let members = &signed.manifest.members;
    let snapshot = staging.join("snapshot.tar.zst");
    let mtime = created.unix_timestamp().max(0) as u64;
    let reuse = previous.map(|p| snapshot_writer::Reuse {
        snapshot: &p.snapshot,
        table: &p.frames,
        members: Some(Box::new(p.members.iter())),
    });
    let head = staging.join("head.tar.zst");
    let signature = signed.signature.as_bytes();
    snapshot_writer::head_frame(manifest_file, signature, mtime, &head)
        .context("compressing the manifest")?;
    std::fs::remove_file(manifest_file)?;
    let written = snapshot_writer::write(
        &snapshot,
        &head,
        members.iter(),
        &|path, hex| {
            if blob_digest(path).is_some() {
                blobs.locate(hex)
            } else {
                Some(staging.join(path))
            }
        },
        reuse,
    )
    .context("writing the snapshot")?;
    let index_members = members.iter().filter(|(p, _)| blob_digest(p).is_none());
    let index = staging.join("snapshot.index.tar.zst");
    let index_written = snapshot_writer::write(
        &index,
        &head,
        index_members,
        &|path, _| Some(staging.join(path)),
        Some(snapshot_writer::Reuse {
            snapshot: &snapshot,
            table: &written.table,
            members: None,
        }),
    )
    .context("writing the index-only snapshot")?;
    std::fs::remove_file(&head)?;
    Ok(Packed {
        snapshot,
        written,
        index,
        index_written,
    })
}
