//! The streaming half of snapshot verification, spread over the machine's
//! cores: the calling thread decompresses and writes the staging pack, one
//! helper hashes every member, another parses and checks the signed
//! manifest. Nothing is trusted until all three agree: every member must be
//! listed in the signed manifest with its digest and size, and every listed
//! member present, before the caller moves the staged snapshot into the store.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

use anyhow::{Context, Result, bail};
use mlld_schemas::snapshot::{MANIFEST_NAME, MANIFEST_SIG_NAME, SNAPSHOT_FORMAT};
use sha2::Digest as _;

use crate::store::{PACK_INDEX_NAME, PACK_NAME};
use crate::sync::verify::{
    Accept, Capped, Limits, ManifestHead, TailHash, check_consistent, check_expiry,
    safe_member_path, write_synced,
};
use crate::trust::TrustedKeys;

/// Verifies the snapshot at `path` into `staging` (pack, index, manifest and
/// signature); returns the id of the key that signed it and the manifest.
pub(crate) fn unpack_verified(
    path: &Path,
    staging: &Path,
    keys: &TrustedKeys,
    fresh_at: Option<time::OffsetDateTime>,
    limits: Limits,
    accept: Accept<'_>,
) -> Result<(String, ManifestHead)> {
    unpack_verified_mode(path, staging, keys, fresh_at, limits, accept, false)
}

/// Like [`unpack_verified`]; with `blobs_may_be_missing` (an index-only
/// snapshot for delta sync) listed blobs may be absent, for the caller to
/// fill in and verify. Every member present is checked as always.
pub(crate) fn unpack_verified_mode(
    path: &Path,
    staging: &Path,
    keys: &TrustedKeys,
    fresh_at: Option<time::OffsetDateTime>,
    limits: Limits,
    accept: Accept<'_>,
    blobs_may_be_missing: bool,
) -> Result<(String, ManifestHead)> {
    let file = File::open(path)?;
    let decoder = zstd::Decoder::new(Capped {
        inner: file,
        left: limits.compressed,
        what: "compressed",
    })?;
    unpack_verified_tar(
        decoder,
        staging,
        keys,
        fresh_at,
        limits,
        accept,
        blobs_may_be_missing,
    )
}

/// Like [`unpack_verified_mode`], from the uncompressed tar stream `tar`.
pub(crate) fn unpack_verified_tar<R: Read>(
    tar: R,
    staging: &Path,
    keys: &TrustedKeys,
    fresh_at: Option<time::OffsetDateTime>,
    limits: Limits,
    accept: Accept<'_>,
    blobs_may_be_missing: bool,
) -> Result<(String, ManifestHead)> {
    let mut archive = tar::Archive::new(Capped {
        inner: tar,
        left: limits.unpacked,
        what: "unpacked",
    });
    let mut entries = archive.entries().context("not a tar.zst snapshot")?;

    // The manifest streams to the staging file (it may be hundreds of
    // megabytes); only its small signature is held.
    let mut next_named = |expected: &str, cap: u64, sink: &mut dyn Write| -> Result<()> {
        let mut entry = entries
            .next()
            .ok_or_else(|| anyhow::anyhow!("the snapshot ends before `{expected}`"))??;
        let name = safe_member_path(&entry)?;
        if name != expected {
            bail!("the snapshot's members are out of order: `{name}` where `{expected}` must be");
        }
        if entry.size() > cap {
            bail!("`{expected}` is over its {cap}-byte limit");
        }
        let copied = std::io::copy(&mut (&mut entry).take(cap + 1), sink)?;
        if copied > cap {
            bail!("`{expected}` is over its {cap}-byte limit");
        }
        Ok(())
    };
    let manifest_path = staging.join(MANIFEST_NAME);
    let mut manifest_file = std::io::BufWriter::with_capacity(
        1 << 20,
        File::create(&manifest_path)
            .with_context(|| format!("creating {}", manifest_path.display()))?,
    );
    next_named(MANIFEST_NAME, limits.manifest, &mut manifest_file)?;
    manifest_file
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    let mut sig_bytes = Vec::new();
    next_named(MANIFEST_SIG_NAME, 4096, &mut sig_bytes)?;
    let sig = String::from_utf8(sig_bytes).context("the manifest signature is not text")?;

    // Members stream into staging while the manifest's signature is checked:
    // they are only staged, and nothing is moved or trusted unless the
    // signature, the manifest's policy checks and every member's digest pass.
    let abort = AtomicBool::new(false);
    let (to_hasher, batches) = mpsc::sync_channel::<Batch>(4);
    let (recycle, recycled) = mpsc::channel::<Batch>();
    let (manifest_tx, manifest_rx) = mpsc::channel::<Arc<ManifestHead>>();
    std::thread::scope(|s| {
        let parser = s.spawn(|| {
            // Owned here, so the hasher sees the channel close if the manifest is refused.
            let manifest_tx = manifest_tx;
            let checked =
                check_manifest(&manifest_path, &sig, keys, fresh_at, accept).and_then(|m| {
                    write_synced(&staging.join(MANIFEST_SIG_NAME), sig.as_bytes())?;
                    Ok(m)
                });
            match checked {
                Ok((key_id, m)) => {
                    let m = Arc::new(m);
                    let _ = manifest_tx.send(m.clone());
                    Ok((key_id, m))
                }
                Err(e) => {
                    abort.store(true, Ordering::Relaxed);
                    Err(e)
                }
            }
        });
        let hasher = s.spawn(|| {
            let r = hash_match_pack(staging, batches, recycle, manifest_rx, blobs_may_be_missing);
            if r.is_err() {
                abort.store(true, Ordering::Relaxed);
            }
            r
        });
        let streamed = stream_members(entries, limits, &abort, to_hasher, recycled);
        let manifest = parser.join().expect("the manifest parser does not panic");
        let matched = hasher.join().expect("the member hasher does not panic");
        // A refused manifest is the most fundamental error, then a refused
        // member stream, then a member that does not match the manifest.
        let (key_id, manifest) = manifest?;
        streamed?;
        matched?;
        let manifest = Arc::try_unwrap(manifest)
            .map_err(|_| anyhow::anyhow!("the manifest is still shared"))?;
        Ok((key_id, manifest))
    })
}

/// Checks the manifest's signature, parses it and applies every policy
/// check; returns the signing key's id and the manifest's head.
fn check_manifest(
    path: &Path,
    sig: &str,
    keys: &TrustedKeys,
    fresh_at: Option<time::OffsetDateTime>,
    accept: Accept<'_>,
) -> Result<(String, ManifestHead)> {
    let open = || -> std::io::Result<Box<dyn Read>> {
        Ok(Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            File::open(path)?,
        )))
    };
    let key_id = keys
        .verify_stream_with_key("snapshot manifest", &open, sig)?
        .key_id;
    // Parsed only after the signature verified, from the same staged file.
    let manifest: ManifestHead =
        serde_json::from_reader(open()?).context("the signed manifest is malformed")?;
    if manifest.format_version != SNAPSHOT_FORMAT {
        bail!(
            "snapshot format {} is not supported (this client reads format {SNAPSHOT_FORMAT}); upgrade mlld-registry",
            manifest.format_version
        );
    }
    if let Some(now) = fresh_at {
        check_expiry(manifest.serial, &manifest.expires, now)?;
    }
    check_consistent(&manifest)?;
    crate::manifest_check::check_fields(&manifest)?;
    accept(&key_id, manifest.serial)?;
    Ok((key_id, manifest))
}

/// Members read from the tar stream, packed in one buffer: each is
/// `(name, offset in the pack, start in data, length)`. Buffers go back and
/// forth between the reader and the hasher, so member bytes are neither
/// allocated nor zeroed one by one.
struct Batch {
    data: Vec<u8>,
    used: usize,
    items: Vec<(String, u64, usize, usize)>,
}

const BATCH_BYTES: usize = 4 << 20;

impl Batch {
    fn new() -> Self {
        Self {
            data: vec![0; BATCH_BYTES],
            used: 0,
            items: Vec::with_capacity(1024),
        }
    }
}

/// Reads every member (capped) into batches for the hasher. The stream is
/// complete when this returns `Ok`; if the hasher stopped, its error says why.
fn stream_members<R: Read>(
    entries: tar::Entries<'_, R>,
    limits: Limits,
    abort: &AtomicBool,
    to_hasher: mpsc::SyncSender<Batch>,
    recycled: mpsc::Receiver<Batch>,
) -> Result<()> {
    let mut batch = Batch::new();
    let mut offset = 0u64;
    for entry in entries {
        if abort.load(Ordering::Relaxed) {
            return Ok(()); // another check failed; its error is reported
        }
        let mut entry = entry?;
        let name = safe_member_path(&entry)?;
        let size = entry.size();
        let cap = if mlld_schemas::search::is_index_member(&name) {
            limits.index_member
        } else {
            limits.member
        };
        if size > cap {
            bail!("member `{name}` is {size} bytes, over the per-member limit {cap}");
        }
        let size = size as usize;
        if batch.used + size > batch.data.len() && !batch.items.is_empty() {
            // A batch grown for one large member is not kept at that size.
            let next = recycled
                .try_recv()
                .ok()
                .filter(|b| b.data.len() <= BATCH_BYTES)
                .unwrap_or_else(Batch::new);
            if to_hasher.send(std::mem::replace(&mut batch, next)).is_err() {
                return Ok(()); // the hasher failed; its error is reported
            }
        }
        if size > batch.data.len() {
            batch.data.resize(size, 0);
        }
        entry
            .read_exact(&mut batch.data[batch.used..batch.used + size])
            .with_context(|| format!("member `{name}` is cut short"))?;
        batch.items.push((name, offset, batch.used, size));
        batch.used += size;
        offset += size as u64;
    }
    if !batch.items.is_empty() {
        let _ = to_hasher.send(batch);
    }
    Ok(())
}

/// Hashes every member, appends it to the staging pack, and matches it
/// against the signed manifest as soon as the parser has it; then checks
/// that no listed member is missing and writes the pack index.
fn hash_match_pack(
    staging: &Path,
    batches: mpsc::Receiver<Batch>,
    recycle: mpsc::Sender<Batch>,
    manifest_rx: mpsc::Receiver<Arc<ManifestHead>>,
    blobs_may_be_missing: bool,
) -> Result<()> {
    let mut pack = File::create(staging.join(PACK_NAME))?;
    let mut manifest: Option<Arc<ManifestHead>> = None;
    let mut pending: Vec<(String, u64, u64, [u8; 32])> = Vec::new();
    let mut matcher = Matcher::default();
    for mut batch in batches {
        for (name, offset, start, len) in batch.items.drain(..) {
            let digest: [u8; 32] = sha2::Sha256::digest(&batch.data[start..start + len]).into();
            pending.push((name, offset, len as u64, digest));
        }
        pack.write_all(&batch.data[..batch.used])?;
        batch.used = 0;
        let _ = recycle.send(batch);
        if manifest.is_none() {
            manifest = manifest_rx.try_recv().ok();
        }
        if let Some(m) = &manifest {
            for p in pending.drain(..) {
                matcher.check(m, p)?;
            }
        }
    }
    pack.sync_all()?;
    let Some(m) = manifest.or_else(|| manifest_rx.recv().ok()) else {
        return Ok(()); // the manifest was refused; the parser reports why
    };
    for p in pending.drain(..) {
        matcher.check(&m, p)?;
    }
    let may_lack =
        |k: &str| blobs_may_be_missing && mlld_schemas::snapshot::blob_digest(k).is_some();
    if matcher.seen.len() != m.members.len()
        && let Some(missing) = m
            .members
            .keys()
            .find(|k| !matcher.seen.contains(*k) && !may_lack(k))
    {
        bail!("member `{missing}` is listed in the signed manifest but missing from the snapshot");
    }
    write_synced(&staging.join(PACK_INDEX_NAME), matcher.index.as_bytes())?;
    Ok(())
}

/// Matches members against the manifest: listed, once, with its size and digest.
#[derive(Default)]
struct Matcher {
    seen: HashSet<String, TailHash>,
    /// `pack.idx`: `<offset> <size> <path>` per member.
    index: String,
}

impl Matcher {
    fn check(
        &mut self,
        m: &ManifestHead,
        (name, offset, size, digest): (String, u64, u64, [u8; 32]),
    ) -> Result<()> {
        let member = m.members.get(&name).ok_or_else(|| {
            anyhow::anyhow!("member `{name}` is not listed in the signed manifest")
        })?;
        if size != member.size {
            bail!(
                "member `{name}` is {size} bytes; the signed manifest says {}",
                member.size
            );
        }
        let mut hex = [0u8; 64];
        hex::encode_to_slice(digest, &mut hex).expect("64 hex digits for 32 bytes");
        if hex[..] != *member.sha256.as_bytes() {
            bail!(
                "member `{name}` has SHA-256 {}, but the signed manifest says {}",
                String::from_utf8_lossy(&hex),
                member.sha256
            );
        }
        if self.seen.contains(&name) {
            bail!("member `{name}` appears twice");
        }
        use std::fmt::Write as _;
        let _ = writeln!(self.index, "{offset} {size} {name}");
        self.seen.insert(name);
        Ok(())
    }
}
