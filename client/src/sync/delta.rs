//! Delta sync: the new snapshot without downloading what the store has.
//!
//! Cheapest first: when the signed `latest.json` offers a chunk delta from
//! the snapshot the store holds, the client rebuilds the new index-only
//! snapshot from its own manifest and search index and appends the new
//! blobs of the delta's blob pack, one at a time (see `delta_patch`).
//! Otherwise it downloads the index-only snapshot (manifest, its signature,
//! the search index; no blobs) that the site publishes beside the full one.
//! Either is verified exactly like a full snapshot, except that blobs may be
//! absent; each absent blob is then taken from the current snapshot's pack
//! when it holds it, or fetched from the site's `blobs/sha256/…`, and must
//! have the size and digest the signed manifest gives. Only when every
//! member is in place does the snapshot move into the store, under the full
//! snapshot's digest: the store cannot tell the ways apart, and a refused
//! delta writes nothing.

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::{Context as _, Result, bail};
use mlld_schemas::Latest;
use mlld_schemas::snapshot::SiteFile;

use crate::store::{PACK_INDEX_NAME, PACK_NAME, Store, VerifiedManifest};
use crate::sync::delta_patch::{self, Outcome};
pub use crate::sync::delta_stats::DeltaStats;
use crate::sync::site::Source;
use crate::sync::snapshot_import::{self, Imported};
use crate::sync::unpack::VerifiedHead;
use crate::sync::verify::{Verifier, write_synced};

/// The snapshot `latest` names, from what the store holds plus what
/// changed; stored under `latest.sha256`.
pub fn sync(
    store: &Store,
    source: &Source,
    latest: &Latest,
    current: &VerifiedManifest,
    verifier: &Verifier<'_>,
    progress: bool,
) -> Result<(Imported, DeltaStats)> {
    let staging = store.staging("delta-")?;
    let snap = staging.path().join("snapshot");
    std::fs::create_dir_all(&snap)?;
    let mut stats = DeltaStats::default();
    let env = delta_patch::Env {
        source,
        verifier,
        progress,
    };
    let usable = latest.chunk_deltas.iter().find(|d| {
        d.from_snapshot == current.snapshot_sha256 && d.from_serial == current.manifest.serial
    });
    let mut patched = None;
    if let Some(delta) = usable {
        match delta_patch::apply(delta, current, staging.path(), &snap, &env, &mut stats)? {
            Outcome::Applied(p) => patched = Some(*p),
            Outcome::Unusable(why) => stats.patch_unusable = Some(why),
        }
    }
    let (key_id, head) = match patched {
        Some(p) => {
            stats.route = "patch";
            (p.key_id, p.head)
        }
        None => {
            stats.route = "index";
            let index = latest.index.as_ref().context(
                "the site offers no index-only snapshot for a delta sync; run `sync --full`",
            )?;
            let (key_id, head) = fetch_index(staging.path(), &snap, index, &env)?;
            stats.index_bytes = index.size;
            (key_id, head)
        }
    };
    fill_blobs(&snap, &head, current, &env, &mut stats)?;
    snapshot_import::extract_index(&snap, &head)?;
    crate::registry::write::finish(&snap, &latest.sha256, &key_id, &head.head)?;
    let dir = store.snapshot_dir(&latest.sha256);
    if !dir.exists() {
        store
            .fs()
            .rename_durable(&snap, &dir)
            .with_context(|| format!("moving the verified snapshot into {}", dir.display()))?;
    }
    let imported = Imported {
        snapshot_sha256: latest.sha256.clone(),
        key_id,
        serial: head.head.serial,
        expires: head.head.expires,
        modules: head.head.modules,
    };
    Ok((imported, stats))
}

/// Downloads and verifies the index-only snapshot into `snap`.
fn fetch_index(
    staging: &std::path::Path,
    snap: &std::path::Path,
    index: &SiteFile,
    env: &delta_patch::Env<'_>,
) -> Result<(String, VerifiedHead)> {
    mlld_schemas::names::check_sha256_hex(&index.sha256).map_err(anyhow::Error::msg)?;
    let expected = mlld_site_contract::paths::index_snapshot_path(&index.sha256);
    mlld_site_contract::paths::expect_path("index snapshot", &index.path, &expected)
        .map_err(anyhow::Error::msg)?;
    if index.size > env.verifier.limits.compressed {
        bail!(
            "the site announces a {}-byte index snapshot, over the {}-byte limit; refused",
            index.size,
            env.verifier.limits.compressed
        );
    }
    let file = staging.join("index.tar.zst");
    let sha = env
        .source
        .fetch_to(&expected, index.size, &file, env.progress)?
        .with_context(|| format!("the site lacks {expected}"))?;
    if sha != index.sha256 {
        bail!(
            "{expected} has SHA-256 {sha}, but the signed latest.json names {}; the download was altered. Nothing was written",
            index.sha256
        );
    }
    crate::sync::unpack::unpack_verified_mode(
        &file,
        snap,
        env.verifier.keys,
        Some(env.verifier.now),
        env.verifier.limits,
        env.verifier.accept,
        true,
    )
    .with_context(|| format!("index snapshot {expected} was refused"))
}

/// Puts every blob the manifest lists and `snap` lacks (the delta's blob
/// pack, if used, is in already) into its pack, checked against the signed
/// digest: from the current snapshot, or the site's loose blobs.
fn fill_blobs(
    snap: &std::path::Path,
    head: &VerifiedHead,
    current: &VerifiedManifest,
    env: &delta_patch::Env<'_>,
    stats: &mut DeltaStats,
) -> Result<()> {
    let (source, limits) = (env.source, env.verifier.limits);
    let (mut idx, present) = delta_patch::staged_pack_index(snap)?;
    let mut pack = std::fs::OpenOptions::new()
        .append(true)
        .open(snap.join(PACK_NAME))?;
    let mut offset = pack.metadata()?.len();
    // In path order, which is digest order.
    let wanted = head.members.blobs().filter(|(p, _)| !present.contains(p));
    for (path, member) in wanted {
        let bytes = if current.manifest.members.contains_key(&path) {
            stats.blobs_reused += 1;
            current.read_member(&path)?
        } else {
            if member.size > limits.member {
                bail!(
                    "blob `{path}` is {} bytes, over the per-member limit {}",
                    member.size,
                    limits.member
                );
            }
            let bytes = source
                .fetch_signed(&path, &member.sha256, member.size)
                .with_context(|| {
                    format!("fetching blob `{path}`, which the signed manifest lists (nothing was written and the current snapshot stays; `sync --full` takes the whole snapshot instead)")
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
    write_synced(&snap.join(PACK_INDEX_NAME), idx.as_bytes())
        .context("writing the staged pack index")
}
