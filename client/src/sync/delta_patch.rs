//! The cheapest delta: a patch from the snapshot the store holds.
//!
//! `latest.json` signs, for a recent serial, the digest of a zstd patch, of
//! the base it applies to (that snapshot's manifest and search index,
//! concatenated as `delta_base_parts` says), of what it yields (the new
//! index-only tar) and of a pack of the new blobs. The client assembles the
//! base from its store (every part checked against the stored manifest),
//! checks its digest, downloads the patch (checked against the signed
//! digest before a byte is decompressed) and streams the patched tar through
//! the same verification as any snapshot. Where the store's base does not
//! match or the site lacks the patch, the caller falls back to the
//! index-only snapshot; anything that fails a signed digest is refused.

use std::collections::HashMap;
use std::io::{self, BufReader, Read};
use std::path::Path;

use anyhow::{Context, Result, bail};
use mlld_schemas::names::check_sha256_hex;
use mlld_schemas::snapshot::{
    Delta, MANIFEST_NAME, blob_digest, delta_base_parts, delta_blobs_path, delta_patch_path,
};
use sha2::Digest as _;

use crate::store::VerifiedManifest;
use crate::sync::delta_stats::DeltaStats;
use crate::sync::site::Source;
use crate::sync::unpack::VerifiedHead;
use crate::sync::verify::{Capped, Verifier};

/// zstd's largest window on 64-bit targets; the signed target size bounds the real one.
const MAX_WINDOW_LOG: u32 = 31;

/// A verified index-only snapshot in staging, and the new blobs the delta's pack held.
pub(crate) struct Patched {
    pub key_id: String,
    pub head: VerifiedHead,
    pub blobs: HashMap<String, Vec<u8>>,
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
    delta: &Delta,
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
    let base = match assemble_base(current, delta.base.size) {
        Ok(base) if mlld_schemas::sha256_hex(&base) == delta.base.sha256 => base,
        Ok(_) => {
            return Ok(Outcome::Unusable(format!(
                "the stored serial {} differs from the patch's base",
                current.manifest.serial
            )));
        }
        Err(e) => return Ok(Outcome::Unusable(format!("{e:#}"))),
    };

    let patch_file = staging.join("delta.patch.zst");
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

    let file = BufReader::new(std::fs::File::open(&patch_file)?);
    let mut decoder = zstd::stream::read::Decoder::with_ref_prefix(file, &base)?;
    decoder.window_log_max(MAX_WINDOW_LOG)?;
    let mut target = Hashing {
        inner: Capped {
            inner: decoder,
            left: delta.target.size,
            what: "patched",
        },
        hasher: sha2::Sha256::new(),
        len: 0,
    };
    let (key_id, head) = crate::sync::unpack::unpack_verified_tar(
        &mut target,
        snap,
        env.verifier.keys,
        Some(env.verifier.now),
        limits,
        env.verifier.accept,
        true,
    )
    .with_context(|| format!("the snapshot patched by {} was refused", delta.patch.path))?;
    io::copy(&mut target, &mut io::sink())?;
    let actual = hex::encode(target.hasher.finalize());
    if actual != delta.target.sha256 || target.len != delta.target.size {
        bail!(
            "{} patches to a tar with SHA-256 {actual}, but the signed latest.json says {}; refused, nothing was written",
            delta.patch.path,
            delta.target.sha256
        );
    }
    let blobs = read_blob_pack(delta, &head, staging, env, stats)?;
    Ok(Outcome::Applied(Box::new(Patched {
        key_id,
        head,
        blobs,
    })))
}

/// Signed paths must be the content-addressed names of their digests.
fn check_paths(delta: &Delta) -> Result<()> {
    for (file, expected) in [
        (&delta.patch, delta_patch_path(&delta.patch.sha256)),
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

/// The base `current` gives: its manifest bytes, then its search index members.
fn assemble_base(current: &VerifiedManifest, expected: u64) -> Result<Vec<u8>> {
    let mut base = Vec::with_capacity(expected as usize);
    for part in delta_base_parts(&current.manifest) {
        if part == MANIFEST_NAME {
            let path = current.dir().join(MANIFEST_NAME);
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            base.extend_from_slice(&bytes);
        } else {
            base.extend_from_slice(&current.read_member(part)?);
        }
        if base.len() as u64 > expected {
            bail!("the stored snapshot is larger than the patch's base");
        }
    }
    Ok(base)
}

/// The new blobs from the delta's pack: only blobs the signed manifest lists
/// (the caller checks each digest). A site without the pack gives none, and
/// the caller fetches them one by one.
fn read_blob_pack(
    delta: &Delta,
    head: &VerifiedHead,
    staging: &Path,
    env: &Env<'_>,
    stats: &mut DeltaStats,
) -> Result<HashMap<String, Vec<u8>>> {
    let file = staging.join("delta.blobs.tar.zst");
    let Some(sha) =
        env.source
            .fetch_to(&delta.blobs.path, delta.blobs.size, &file, env.progress)?
    else {
        return Ok(HashMap::new());
    };
    refuse_unless_signed(&delta.blobs.path, &sha, &delta.blobs.sha256)?;
    stats.blob_pack_bytes = delta.blobs.size;
    let decoder = zstd::Decoder::new(std::fs::File::open(&file)?)?;
    let mut archive = tar::Archive::new(Capped {
        inner: decoder,
        left: env.verifier.limits.unpacked,
        what: "blob pack",
    });
    let mut blobs = HashMap::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = mlld_site_contract::archive::member_path(&entry)
            .context("the delta blob pack; refused, nothing was written")?;
        let listed = blob_digest(&path).is_some() && head.members.contains(&path);
        if !listed {
            bail!(
                "the delta blob pack holds `{path}`, which is no blob of the signed manifest; refused, nothing was written"
            );
        }
        if entry.size() > env.verifier.limits.member {
            bail!("blob `{path}` in the delta pack is over the per-member limit");
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes)?;
        blobs.insert(path, bytes);
    }
    Ok(blobs)
}

/// A reader that hashes and counts what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: sha2::Sha256,
    len: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}
