//! The cheapest delta: a chunk delta from the snapshot the store holds.
//!
//! `latest.json` signs, for a recent serial, the digest of a chunk delta
//! (`mlld_site_contract::chunk_delta`: copies of the base's ranges and
//! literal bytes), of the base it applies to (that snapshot's manifest and
//! search index, concatenated as `delta_base_parts` says), of what it yields
//! (the new index-only tar) and of a pack of the new blobs. The client reads
//! the base in place from its store (`delta_base`) and checks its digest,
//! downloads the delta (checked against the signed digest before a byte is
//! decompressed) and streams the rebuilt tar through the same verification
//! as any snapshot, every operation checked against the signed base and
//! target sizes as it comes: memory does not grow with the snapshot. Where
//! the store's base does not match or the site lacks the delta, the caller
//! falls back to the index-only snapshot; anything that fails a signed
//! digest or a check of the operations is refused.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{self, Read, Write as _};
use std::path::Path;

use anyhow::{Context, Result, bail};
use mlld_schemas::names::check_sha256_hex;
use mlld_schemas::snapshot::{ChunkDelta, blob_digest, delta_blobs_path};
use mlld_site_contract::chunk_delta;
use mlld_site_contract::hashing::Hashing;
use mlld_site_contract::paths::chunk_delta_path;
use sha2::Digest as _;

use crate::store::{PACK_INDEX_NAME, PACK_NAME, VerifiedManifest};
use crate::sync::delta_base::StoredBase;
use crate::sync::delta_stats::DeltaStats;
use crate::sync::site::Source;
use crate::sync::unpack::VerifiedHead;
use crate::sync::verify::{Capped, Verifier, write_synced};

/// A verified index-only snapshot in staging, with the new blobs the
/// delta's pack held appended to its pack.
pub(crate) struct Patched {
    pub key_id: String,
    pub head: VerifiedHead,
}

pub(crate) enum Outcome {
    Applied(Box<Patched>),
    /// The patch cannot be used here, and why; nothing was trusted or written.
    Unusable(String),
}

/// What the checks after patching need besides the delta itself.
pub(crate) struct Env<'a> {
    pub source: &'a Source,
    pub verifier: &'a Verifier<'a>,
    pub progress: bool,
}

/// Applies `delta` to `current` into `snap` (a staging directory, inside `staging`).
pub(crate) fn apply(
    delta: &ChunkDelta,
    current: &VerifiedManifest,
    staging: &Path,
    snap: &Path,
    env: &Env<'_>,
    stats: &mut DeltaStats,
) -> Result<Outcome> {
    check_paths(delta)?;
    let limits = env.verifier.limits;
    for (what, size, cap) in [
        ("patch", delta.patch.size, limits.compressed),
        ("blob pack", delta.blobs.size, limits.compressed),
        ("patched index snapshot", delta.target.size, limits.unpacked),
        ("patch base", delta.base.size, limits.unpacked),
    ] {
        if size > cap {
            bail!(
                "latest.json announces a {size}-byte delta {what}, over the {cap}-byte limit; refused"
            );
        }
    }
    let base = match StoredBase::open(current) {
        Ok(base) if base.len() == delta.base.size => base,
        Ok(_) => return Ok(Outcome::Unusable(base_differs(current))),
        Err(e) => return Ok(Outcome::Unusable(format!("{e:#}"))),
    };
    match base.sha256() {
        Ok(sha) if sha == delta.base.sha256 => {}
        Ok(_) => return Ok(Outcome::Unusable(base_differs(current))),
        Err(e) => {
            return Ok(Outcome::Unusable(format!(
                "reading the stored snapshot in {}: {e}",
                current.dir().display()
            )));
        }
    }

    let patch_file = staging.join("delta.chunks.zst");
    let Some(sha) = env.source.fetch_to(
        &delta.patch.path,
        delta.patch.size,
        &patch_file,
        env.progress,
    )?
    else {
        return Ok(Outcome::Unusable(format!(
            "the site lacks {}",
            delta.patch.path
        )));
    };
    refuse_unless_signed(&delta.patch.path, &sha, &delta.patch.sha256)?;
    stats.patch_bytes = delta.patch.size;

    let (key_id, head) = rebuild(delta, &base, &patch_file, snap, env)?;
    read_blob_pack(delta, &head, (staging, snap), env, stats)?;
    Ok(Outcome::Applied(Box::new(Patched { key_id, head })))
}

/// Streams the tar `patch_file` rebuilds from `base` through the snapshot
/// verification into `snap`, and checks it against the signed target digest.
fn rebuild(
    delta: &ChunkDelta,
    base: &StoredBase,
    patch_file: &Path,
    snap: &Path,
    env: &Env<'_>,
) -> Result<(String, VerifiedHead)> {
    // The reader buffers it (zstd's decoder does).
    let file = std::fs::File::open(patch_file)?;
    let mut target = Hashing::new(chunk_delta::Reader::new(
        file,
        base,
        base.len(),
        delta.target.size,
    )?);
    let verifier = env.verifier;
    let unpacked = crate::sync::unpack::unpack_verified_tar(
        &mut target,
        snap,
        verifier.keys,
        Some(verifier.now),
        verifier.limits,
        verifier.accept,
        true,
    );
    let drained = unpacked
        .as_ref()
        .map_or(Ok(0), |_| io::copy(&mut target, &mut io::sink()));
    if let Some(why) = target.inner.failure() {
        bail!(
            "the chunk delta {} {why}; refused, nothing was written",
            delta.patch.path
        );
    }
    let (key_id, head) = unpacked
        .with_context(|| format!("the snapshot rebuilt by {} was refused", delta.patch.path))?;
    drained?;
    let actual = hex::encode(target.hasher.finalize());
    if actual != delta.target.sha256 || target.len != delta.target.size {
        bail!(
            "{} patches to a tar with SHA-256 {actual}, but the signed latest.json says {}; refused, nothing was written",
            delta.patch.path,
            delta.target.sha256
        );
    }
    Ok((key_id, head))
}

fn base_differs(current: &VerifiedManifest) -> String {
    format!(
        "the stored serial {} differs from the delta's base",
        current.manifest.serial
    )
}

/// Signed paths must be the content-addressed names of their digests.
fn check_paths(delta: &ChunkDelta) -> Result<()> {
    for (file, expected) in [
        (&delta.patch, chunk_delta_path(&delta.patch.sha256)),
        (&delta.blobs, delta_blobs_path(&delta.blobs.sha256)),
    ] {
        check_sha256_hex(&file.sha256).map_err(anyhow::Error::msg)?;
        if file.path != expected {
            bail!(
                "latest.json names delta file `{}`; only `{expected}` is accepted",
                file.path
            );
        }
    }
    Ok(())
}

fn refuse_unless_signed(path: &str, actual: &str, signed: &str) -> Result<()> {
    if actual != signed {
        bail!(
            "{path} has SHA-256 {actual}, but the signed latest.json names {signed}; the download was altered. Nothing was written"
        );
    }
    Ok(())
}

/// Appends the blobs of the delta's pack to the pack staged in `snap`,
/// one at a time, each a blob the signed manifest lists, with its size and
/// digest. A site without the pack adds none, and the caller fetches them
/// one by one.
fn read_blob_pack(
    delta: &ChunkDelta,
    head: &VerifiedHead,
    (staging, snap): (&Path, &Path),
    env: &Env<'_>,
    stats: &mut DeltaStats,
) -> Result<()> {
    let file = staging.join("delta.blobs.tar.zst");
    let Some(sha) =
        env.source
            .fetch_to(&delta.blobs.path, delta.blobs.size, &file, env.progress)?
    else {
        return Ok(());
    };
    refuse_unless_signed(&delta.blobs.path, &sha, &delta.blobs.sha256)?;
    stats.blob_pack_bytes = delta.blobs.size;
    let decoder = zstd::Decoder::new(std::fs::File::open(&file)?)?;
    let mut archive = tar::Archive::new(Capped {
        inner: decoder,
        left: env.verifier.limits.unpacked,
        what: "blob pack",
    });
    let (mut idx, mut present) = staged_pack_index(snap)?;
    let mut pack = std::fs::OpenOptions::new()
        .append(true)
        .open(snap.join(PACK_NAME))?;
    let mut offset = pack.metadata()?.len();
    let mut bytes = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = mlld_site_contract::archive::member_path(&entry)
            .context("the delta blob pack; refused, nothing was written")?;
        let member = head
            .members
            .get(&path)
            .filter(|_| blob_digest(&path).is_some());
        let Some((_, size, digest)) = member else {
            bail!(
                "the delta blob pack holds `{path}`, which is no blob of the signed manifest; refused, nothing was written"
            );
        };
        if entry.size() > env.verifier.limits.member {
            bail!("blob `{path}` in the delta pack is over the per-member limit");
        }
        if !present.insert(path.clone()) {
            bail!("the delta blob pack holds `{path}` twice; refused, nothing was written");
        }
        bytes.clear();
        entry.read_to_end(&mut bytes)?;
        let actual: [u8; 32] = sha2::Sha256::digest(&bytes).into();
        if bytes.len() as u64 != size || actual != digest {
            bail!(
                "blob `{path}` from the delta blob pack has SHA-256 {} ({} bytes), but the signed manifest says {} ({size} bytes); refused, nothing was written",
                hex::encode(actual),
                bytes.len(),
                hex::encode(digest),
            );
        }
        pack.write_all(&bytes)?;
        let _ = writeln!(idx, "{offset} {size} {path}");
        offset += size;
        stats.blobs_from_pack += 1;
    }
    pack.sync_all()?;
    write_synced(&snap.join(PACK_INDEX_NAME), idx.as_bytes())
        .context("writing the staged pack index")
}

/// The staged pack index of `snap` (`<offset> <size> <path>` lines), and
/// the paths it lists.
pub(crate) fn staged_pack_index(snap: &Path) -> Result<(String, HashSet<String>)> {
    let idx = std::fs::read_to_string(snap.join(PACK_INDEX_NAME))?;
    let present = idx
        .lines()
        .filter_map(|l| l.splitn(3, ' ').nth(2))
        .map(str::to_string)
        .collect();
    Ok((idx, present))
}
