//! Delta sync: the new snapshot without downloading what the store has.
//!
//! The site publishes an index-only snapshot (manifest, its signature, the
//! search index; no blobs) beside the full one, named and hashed in the
//! signed `latest.json`. It is verified exactly like a full snapshot, except
//! that blobs may be absent; each absent blob is then taken from the current
//! snapshot's pack when it holds it, or fetched from the site's
//! `blobs/sha256/…`, and must have the size and digest the signed manifest
//! gives. Only when every member is in place does the snapshot move into the
//! store, under the full snapshot's digest: the store cannot tell the two
//! ways apart, and a refused delta writes nothing.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::{Context as _, Result, bail};
use mlld_schemas::snapshot::{IndexSnapshot, blob_digest};
use serde::Serialize;

use crate::site::{self, Source};
use crate::snapshot_import::{self, Accept, Imported, Limits};
use crate::store::{PACK_INDEX_NAME, PACK_NAME, Store, VerifiedManifest};
use crate::trust::TrustedKeys;

/// What a delta sync downloaded.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaStats {
    pub index_bytes: u64,
    pub blobs_fetched: usize,
    pub blob_bytes_fetched: u64,
    pub blobs_reused: usize,
}

impl DeltaStats {
    pub fn downloaded(&self) -> u64 {
        self.index_bytes + self.blob_bytes_fetched
    }
}

/// The snapshot `full_sha256` from its index-only form plus blobs; stored under `full_sha256`.
#[allow(clippy::too_many_arguments)] // one step of `sync`, with its policy checks
pub fn sync(
    store: &Store,
    source: &Source,
    index: &IndexSnapshot,
    full_sha256: &str,
    current: &VerifiedManifest,
    keys: &TrustedKeys,
    now: time::OffsetDateTime,
    limits: Limits,
    accept: Accept<'_>,
    progress: bool,
) -> Result<(Imported, DeltaStats)> {
    let expected = format!("snapshots/{}.index.tar.zst", index.sha256);
    mlld_schemas::names::check_sha256_hex(&index.sha256).map_err(anyhow::Error::msg)?;
    if index.path != expected {
        bail!(
            "latest.json names index snapshot `{}`; only `{expected}` is accepted",
            index.path
        );
    }
    if index.size > limits.compressed {
        bail!(
            "the site announces a {}-byte index snapshot, over the {}-byte limit; refused",
            index.size,
            limits.compressed
        );
    }
    let staging = tempfile::Builder::new()
        .prefix("delta-")
        .tempdir_in(store.tmp_dir()?)?;
    let file = staging.path().join("index.tar.zst");
    let sha = match source {
        Source::Http { base, client } => site::download(
            client,
            &format!("{base}/{expected}"),
            &file,
            index.size,
            progress,
        )?,
        Source::Dir(dir) => {
            std::fs::copy(dir.join(&expected), &file)
                .with_context(|| format!("the site lacks {expected}"))?;
            snapshot_import::file_sha256(&file)?
        }
        Source::File(_) => bail!("a snapshot file has no index snapshot"),
    };
    if sha != index.sha256 {
        bail!(
            "{expected} has SHA-256 {sha}, but the signed latest.json names {}; the download was altered. Nothing was written",
            index.sha256
        );
    }
    let snap = staging.path().join("snapshot");
    std::fs::create_dir_all(&snap)?;
    let (key_id, head) =
        crate::unpack::unpack_verified_mode(&file, &snap, keys, now, limits, accept, true)
            .with_context(|| format!("index snapshot {expected} was refused"))?;

    let mut stats = DeltaStats {
        index_bytes: index.size,
        ..DeltaStats::default()
    };
    let mut idx = std::fs::read_to_string(snap.join(PACK_INDEX_NAME))?;
    let present: BTreeSet<String> = idx
        .lines()
        .filter_map(|l| l.splitn(3, ' ').nth(2))
        .map(str::to_string)
        .collect();
    let mut pack = std::fs::OpenOptions::new()
        .append(true)
        .open(snap.join(PACK_NAME))?;
    let mut offset = pack.metadata()?.len();
    let mut wanted: Vec<_> = head
        .members
        .iter()
        .filter(|(p, _)| blob_digest(p).is_some() && !present.contains(*p))
        .collect();
    wanted.sort_by(|a, b| a.0.cmp(b.0));
    for (path, member) in wanted {
        let bytes = if current.manifest.members.contains_key(path) {
            stats.blobs_reused += 1;
            current.read_member(path)?
        } else {
            if member.size > limits.member {
                bail!(
                    "blob `{path}` is {} bytes, over the per-member limit {}",
                    member.size,
                    limits.member
                );
            }
            let bytes = source.read_small(path, member.size).with_context(|| {
                format!("the site lacks blob `{path}` that the signed manifest lists; nothing was written and the current snapshot stays. Try `sync --full`")
            })?;
            stats.blobs_fetched += 1;
            stats.blob_bytes_fetched += bytes.len() as u64;
            bytes
        };
        let actual = mlld_schemas::sha256_hex(&bytes);
        if bytes.len() as u64 != member.size || actual != member.sha256 {
            bail!(
                "blob `{path}` from {} has SHA-256 {actual} ({} bytes), but the signed manifest says {} ({} bytes); refused, nothing was written",
                source.describe(),
                bytes.len(),
                member.sha256,
                member.size
            );
        }
        pack.write_all(&bytes)?;
        let _ = writeln!(idx, "{offset} {} {path}", member.size);
        offset += member.size;
    }
    pack.sync_all()?;
    snapshot_import::write_synced(&snap.join(PACK_INDEX_NAME), idx.as_bytes())?;
    snapshot_import::extract_index(&snap, &head)?;
    let dir = store.snapshot_dir(full_sha256);
    std::fs::create_dir_all(dir.parent().expect("snapshot dirs have a parent"))?;
    if !dir.exists() {
        mlld_fsutil::rename_durable(&snap, &dir)
            .with_context(|| format!("moving the verified snapshot into {}", dir.display()))?;
    }
    let imported = Imported {
        snapshot_sha256: full_sha256.to_string(),
        key_id,
        serial: head.serial,
        expires: head.expires,
        modules: head.modules.len(),
    };
    Ok((imported, stats))
}
