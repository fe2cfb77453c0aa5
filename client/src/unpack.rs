//! The streaming half of snapshot verification, spread over the machine's
//! cores: the calling thread decompresses and writes the staging pack, one
//! helper hashes every member, another parses and checks the signed
//! manifest. Nothing is trusted until all three agree: every member must be
//! listed in the signed manifest with its digest and size, and every listed
//! member present, before the caller moves the staged snapshot into the store.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use anyhow::{Context, Result, bail};
use mlld_schemas::Manifest;
use mlld_schemas::snapshot::{MANIFEST_NAME, MANIFEST_SIG_NAME, SNAPSHOT_FORMAT};
use sha2::Digest as _;

use crate::snapshot_import::{
    Accept, Capped, Limits, check_consistent, check_fresh, safe_member_path, write_synced,
};
use crate::store::{PACK_INDEX_NAME, PACK_NAME};
use crate::trust::TrustedKeys;

/// One member as it arrived: name, offset in the pack, bytes.
type Arrived = (String, u64, Vec<u8>);
/// One member as it was hashed: name, offset, size, SHA-256.
type Hashed = (String, u64, u64, [u8; 32]);

/// Verifies the snapshot at `path` into `staging` (pack, index, manifest and
/// signature); returns the id of the key that signed it and the manifest.
pub(crate) fn unpack_verified(
    path: &Path,
    staging: &Path,
    keys: &TrustedKeys,
    now: time::OffsetDateTime,
    limits: Limits,
    accept: Accept<'_>,
) -> Result<(String, Manifest)> {
    let file = File::open(path)?;
    let decoder = zstd::Decoder::new(Capped {
        inner: file,
        left: limits.compressed,
        what: "compressed",
    })?;
    let mut archive = tar::Archive::new(Capped {
        inner: decoder,
        left: limits.unpacked,
        what: "unpacked",
    });
    let mut entries = archive.entries().context("not a tar.zst snapshot")?;

    let mut next_named = |expected: &str, cap: u64| -> Result<Vec<u8>> {
        let mut entry = entries
            .next()
            .ok_or_else(|| anyhow::anyhow!("the snapshot ends before `{expected}`"))??;
        let name = safe_member_path(&entry)?;
        if name != expected {
            bail!("the snapshot's members are out of order: `{name}` where `{expected}` must be");
        }
        // Reserve what the header announces (capped) instead of growing a huge manifest.
        let mut bytes = Vec::with_capacity(entry.size().min(cap) as usize);
        (&mut entry).take(cap + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > cap {
            bail!("`{expected}` is over its {cap}-byte limit");
        }
        Ok(bytes)
    };
    let manifest_bytes = next_named(MANIFEST_NAME, limits.manifest)?;
    let sig_bytes = next_named(MANIFEST_SIG_NAME, 4096)?;
    let sig = String::from_utf8(sig_bytes).context("the manifest signature is not text")?;
    // The signature is checked before any other byte is used.
    let key_id = keys
        .verify_with_key("snapshot manifest", &manifest_bytes, &sig)?
        .key_id;

    let abort = AtomicBool::new(false);
    let (to_hasher, hasher_rx) = mpsc::sync_channel::<Vec<Arrived>>(32);
    std::thread::scope(|s| {
        let parser = s.spawn(|| {
            let checked = check_manifest(&manifest_bytes, &key_id, now, accept).and_then(|m| {
                write_synced(&staging.join(MANIFEST_NAME), &manifest_bytes)?;
                write_synced(&staging.join(MANIFEST_SIG_NAME), sig.as_bytes())?;
                Ok(m)
            });
            if checked.is_err() {
                abort.store(true, Ordering::Relaxed);
            }
            checked
        });
        let hasher = s.spawn(move || hash_and_pack(staging, hasher_rx));
        let streamed = stream_members(entries, limits, &abort, to_hasher);
        let manifest = parser.join().expect("the manifest parser does not panic");
        let hashed = hasher.join().expect("the member hasher does not panic");
        // A refused manifest is the more fundamental error; report it first.
        let manifest = manifest?;
        streamed?;
        let hashed = hashed?;
        match_members(&manifest, &hashed)?;
        write_index(staging, &hashed)?;
        Ok((key_id.clone(), manifest))
    })
}

/// Parses the signed manifest and applies every policy check to it.
fn check_manifest(
    bytes: &[u8],
    key_id: &str,
    now: time::OffsetDateTime,
    accept: Accept<'_>,
) -> Result<Manifest> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).context("the signed manifest is malformed")?;
    if manifest.format_version != SNAPSHOT_FORMAT {
        bail!(
            "snapshot format {} is not supported (this client reads format {SNAPSHOT_FORMAT}); upgrade mlld-registry",
            manifest.format_version
        );
    }
    check_fresh(&manifest, now)?;
    check_consistent(&manifest)?;
    accept(key_id, &manifest)?;
    Ok(manifest)
}

/// Reads every member (capped) and hands them, in batches, to the hasher.
fn stream_members<R: Read>(
    entries: tar::Entries<'_, R>,
    limits: Limits,
    abort: &AtomicBool,
    to_hasher: mpsc::SyncSender<Vec<Arrived>>,
) -> Result<()> {
    let mut offset = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    for entry in entries {
        if abort.load(Ordering::Relaxed) {
            return Ok(()); // the manifest was refused; its error is reported
        }
        let mut entry = entry?;
        let name = safe_member_path(&entry)?;
        let size = entry.size();
        if size > limits.member {
            bail!(
                "member `{name}` is {size} bytes, over the per-member limit {}",
                limits.member
            );
        }
        let mut bytes = Vec::with_capacity(size as usize);
        (&mut entry).take(size + 1).read_to_end(&mut bytes)?;
        let len = bytes.len() as u64;
        batch.push((name, offset, bytes));
        offset += len;
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if to_hasher.send(full).is_err() {
                bail!("the member hasher stopped");
            }
        }
    }
    if !batch.is_empty() && to_hasher.send(batch).is_err() {
        bail!("the member hasher stopped");
    }
    Ok(())
}

const BATCH: usize = 256;

/// Hashes every member and appends it to the staging pack (one vectored
/// write per batch), then syncs the pack.
fn hash_and_pack(staging: &Path, batches: mpsc::Receiver<Vec<Arrived>>) -> Result<Vec<Hashed>> {
    let mut pack = File::create(staging.join(PACK_NAME))?;
    let mut out: Vec<Hashed> = Vec::new();
    for batch in batches {
        for (name, offset, bytes) in &batch {
            let digest: [u8; 32] = sha2::Sha256::digest(bytes).into();
            out.push((name.clone(), *offset, bytes.len() as u64, digest));
        }
        let mut slices: Vec<io::IoSlice<'_>> =
            batch.iter().map(|(_, _, b)| io::IoSlice::new(b)).collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = pack.write_vectored(rest)?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero).into());
            }
            io::IoSlice::advance_slices(&mut rest, n);
        }
    }
    pack.sync_all()?;
    Ok(out)
}

/// Every member must be listed with its digest and size, once; every listed member present.
fn match_members(manifest: &Manifest, hashed: &[Hashed]) -> Result<()> {
    let mut seen = HashSet::with_capacity(hashed.len());
    for (name, _, size, digest) in hashed {
        let member = manifest.members.get(name).ok_or_else(|| {
            anyhow::anyhow!("member `{name}` is not listed in the signed manifest")
        })?;
        if !seen.insert(name.as_str()) {
            bail!("member `{name}` appears twice");
        }
        if *size != member.size {
            bail!(
                "member `{name}` is {size} bytes; the signed manifest says {}",
                member.size
            );
        }
        let actual = hex::encode(digest);
        if actual != member.sha256 {
            bail!(
                "member `{name}` has SHA-256 {actual}, but the signed manifest says {}",
                member.sha256
            );
        }
    }
    if let Some(missing) = manifest.members.keys().find(|k| !seen.contains(k.as_str())) {
        bail!("member `{missing}` is listed in the signed manifest but missing from the snapshot");
    }
    Ok(())
}

fn write_index(staging: &Path, hashed: &[Hashed]) -> Result<()> {
    let mut index = String::with_capacity(hashed.len() * 96);
    for (name, offset, size, _) in hashed {
        index.push_str(&format!("{offset} {size} {name}\n"));
    }
    write_synced(&staging.join(PACK_INDEX_NAME), index.as_bytes())?;
    Ok(())
}
