//! Delta-sync files: what a client holding the previous snapshot downloads
//! instead of the new one.
//!
//! The patch is the new index-only tar (manifest, signature, search index)
//! compressed by zstd with the previous snapshot's delta base (its manifest
//! and search index, see `delta_base_parts`) as the reference prefix, so it
//! holds little more than what changed: a few hundred kilobytes where the
//! index-only snapshot is tens of megabytes. The blob pack is a `tar.zst`
//! of the blobs the previous snapshot lacks. Both are named by digest, and
//! `latest.json` signs the digests of the patch, its base, its output and
//! the pack.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mlld_schemas::snapshot::{
    Delta, Digest, MANIFEST_NAME, Manifest, Member, SiteFile, blob_digest, delta_base_parts,
    delta_blobs_path, delta_patch_path,
};

use crate::blobs::BlobDir;
use crate::snapshot_writer;

/// zstd level of the patch: level 3 finds the long matches against the base
/// that make it small (19 saves a fifth more at 200 times the time).
const PATCH_LEVEL: i32 = 3;
/// zstd level of the blob pack: written once per build, a few megabytes.
const BLOBS_LEVEL: i32 = 12;
/// The largest window the patch may need (2 GiB), zstd's limit on 64-bit.
pub const MAX_WINDOW_LOG: u32 = 31;

/// The previous snapshot a delta starts from.
pub struct Origin<'a> {
    pub serial: u64,
    pub snapshot_sha256: &'a str,
    pub manifest: &'a Manifest,
    /// Its index-only snapshot, verified against the signed latest.json.
    pub index_snapshot: &'a Path,
}

/// A delta staged for publishing: its `latest.json` entry and the staged files.
pub struct StagedDelta {
    pub delta: Delta,
    pub patch: PathBuf,
    pub blobs: PathBuf,
}

/// Writes the patch from `from` to the index-only snapshot `staged_index`,
/// and the pack of blobs in `members` that `from` lacks, into `staging`.
pub fn write(
    staging: &Path,
    from: &Origin<'_>,
    staged_index: &Path,
    manifest_len: usize,
    members: &BTreeMap<String, Member>,
    blobs: &BlobDir,
) -> Result<StagedDelta> {
    let base = base_bytes(from)?;
    // Sized up front: growing a 100 MB vector by doubling would briefly hold
    // twice that, at the build's peak of memory.
    let mut target = Vec::with_capacity(index_tar_len(manifest_len, members));
    zstd::Decoder::new(std::fs::File::open(staged_index)?)?
        .read_to_end(&mut target)
        .context("reading back the staged index-only snapshot")?;
    let patch_bytes = patch(&base, &target)?;
    let patch_sha = mlld_schemas::sha256_hex(&patch_bytes);
    let patch_file = staging.join("delta.patch.zst");
    std::fs::write(&patch_file, &patch_bytes)?;

    let new_blobs: Vec<(&String, &Member)> = members
        .iter()
        .filter(|(p, _)| blob_digest(p).is_some() && !from.manifest.members.contains_key(*p))
        .collect();
    let pack = blob_pack(&new_blobs, blobs)?;
    let pack_sha = mlld_schemas::sha256_hex(&pack);
    let blobs_file = staging.join("delta.blobs.tar.zst");
    std::fs::write(&blobs_file, &pack)?;

    let delta = Delta {
        from_serial: from.serial,
        from_snapshot: from.snapshot_sha256.to_string(),
        base: Digest {
            sha256: mlld_schemas::sha256_hex(&base),
            size: base.len() as u64,
        },
        patch: SiteFile {
            path: delta_patch_path(&patch_sha),
            sha256: patch_sha,
            size: patch_bytes.len() as u64,
        },
        target: Digest {
            sha256: mlld_schemas::sha256_hex(&target),
            size: target.len() as u64,
        },
        blobs: SiteFile {
            path: delta_blobs_path(&pack_sha),
            sha256: pack_sha,
            size: pack.len() as u64,
        },
    };
    Ok(StagedDelta {
        delta,
        patch: patch_file,
        blobs: blobs_file,
    })
}

/// The length of the uncompressed index-only tar: the manifest and its
/// signature (at most one block), every non-blob member, the end blocks.
fn index_tar_len(manifest_len: usize, members: &BTreeMap<String, Member>) -> usize {
    let entry = |size: usize| 512 + size.next_multiple_of(512);
    entry(manifest_len)
        + entry(512)
        + members
            .iter()
            .filter(|(p, _)| blob_digest(p).is_none())
            .map(|(_, m)| entry(m.size as usize))
            .sum::<usize>()
        + 1024
}

/// The previous snapshot's delta base, read from its index-only snapshot,
/// whose members come in the base's order (manifest, signature, index files
/// by path).
fn base_bytes(from: &Origin<'_>) -> Result<Vec<u8>> {
    let mut wanted = delta_base_parts(from.manifest).peekable();
    let size: u64 = from
        .manifest
        .members
        .iter()
        .filter(|(p, _)| blob_digest(p).is_none())
        .map(|(_, m)| m.size)
        .sum();
    let mut base = Vec::new();
    let file = std::fs::File::open(from.index_snapshot)?;
    let mut archive = mlld_site_contract::archive::open_zstd(file)?;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = mlld_site_contract::archive::member_path(&entry)
            .context("the previous index-only snapshot has an unsafe member")?;
        if wanted.peek() != Some(&path.as_str()) {
            continue;
        }
        wanted.next();
        if path == MANIFEST_NAME {
            base.reserve_exact((entry.size() + size) as usize);
        }
        let start = base.len();
        entry.read_to_end(&mut base)?;
        if let Some(member) = from.manifest.members.get(&path)
            && mlld_schemas::sha256_hex(&base[start..]) != member.sha256
        {
            bail!("the previous index-only snapshot's `{path}` does not match its manifest");
        }
    }
    if let Some(missing) = wanted.next() {
        bail!(
            "the previous index-only snapshot lacks `{missing}` (or holds it out of order), which its manifest lists"
        );
    }
    Ok(base)
}

/// The window log a patch of `target` against `base` needs: both must fit.
pub fn window_log(base: usize, target: usize) -> u32 {
    let span = (base + target).max(1 << 10) as u64;
    (u64::BITS - (span - 1).leading_zeros()).clamp(10, MAX_WINDOW_LOG)
}

/// `target` compressed with `base` as the reference prefix (zstd patch-from).
pub fn patch(base: &[u8], target: &[u8]) -> Result<Vec<u8>> {
    if base.len() + target.len() > 1 << MAX_WINDOW_LOG {
        bail!("a delta over 2 GiB is beyond zstd's window; publish without one");
    }
    // One shot: the input is in memory already, so zstd needs no window
    // buffer of its own (a stream would allocate the whole window).
    use zstd::zstd_safe::CParameter;
    let mut compressor = zstd::bulk::Compressor::new(PATCH_LEVEL)?;
    compressor.set_parameter(CParameter::WindowLog(window_log(base.len(), target.len())))?;
    compressor.set_parameter(CParameter::EnableLongDistanceMatching(true))?;
    compressor.set_parameter(CParameter::ChecksumFlag(true))?;
    compressor.set_parameter(CParameter::ContentSizeFlag(true))?;
    compressor.context_mut().ref_prefix(base).map_err(|code| {
        anyhow::anyhow!(
            "zstd refused the patch base: {}",
            zstd::zstd_safe::get_error_name(code)
        )
    })?;
    Ok(compressor.compress(target)?)
}

/// A reproducible `tar.zst` of `blobs` (sorted), every one re-hashed.
fn blob_pack(members: &[(&String, &Member)], blobs: &BlobDir) -> Result<Vec<u8>> {
    let mut tar = Vec::new();
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
        snapshot_writer::entry(&mut tar, path, &bytes, 0)?;
    }
    tar.extend_from_slice(&[0; 1024]);
    Ok(zstd::bulk::compress(&tar, BLOBS_LEVEL)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_covers_base_and_target() {
        assert_eq!(window_log(0, 0), 10);
        assert_eq!(window_log(600, 600), 11);
        assert_eq!(window_log(100 << 20, 100 << 20), 28);
        assert_eq!(window_log(1 << 27, 1 << 27), 28);
    }

    #[test]
    fn patch_round_trips_and_is_small_for_a_small_change() {
        let base: Vec<u8> = (0..2_000_000u32)
            .flat_map(|i| (i.wrapping_mul(2_654_435_761)).to_le_bytes())
            .collect();
        let mut target = base.clone();
        target[1_000_000..1_000_100].fill(7);
        let p = patch(&base, &target).unwrap();
        // 8 MB of incompressible data with 100 bytes changed.
        assert!(p.len() < 10_000, "patch is {} bytes", p.len());
        let mut decoder = zstd::stream::Decoder::with_ref_prefix(&p[..], &base).unwrap();
        decoder.window_log_max(MAX_WINDOW_LOG).unwrap();
        let mut out = Vec::new();
        decoder.read_to_end(&mut out).unwrap();
        assert_eq!(out, target);
    }
}
