//! The streaming half of snapshot verification, spread over the machine's
//! cores: the calling thread decompresses the tar, one helper hashes every
//! member and writes the staging pack, another verifies the signed
//! manifest and reads it once (`manifest_stream`: every record checked and
//! spilled for the query store). Nothing is trusted until all three agree:
//! every member must be listed in the signed manifest with its digest and
//! size, and every listed member present, before the caller moves the
//! staged snapshot into the store. Memory does not grow with the registry
//! beyond the compact member table.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

use anyhow::{Context, Result, bail};
use mlld_schemas::snapshot::{MANIFEST_NAME, MANIFEST_SIG_NAME};
use sha2::Digest as _;

use crate::registry::Streamed;
use crate::store::{PACK_INDEX_NAME, PACK_NAME};
use crate::sync::manifest_stream::verify_and_spill;
use crate::sync::members::{Members, Seen, digest_of_blob_path};
use crate::sync::verify::{Accept, Capped, Limits, safe_member_path, write_synced};
use crate::trust::TrustedKeys;

/// What a verified snapshot's manifest says, kept past verification: its
/// head fields and counts, and its members. Its records are in the staged
/// query store's `records.bin` already (see `registry::write::finish`).
pub(crate) struct VerifiedHead {
    pub head: Streamed,
    pub members: Members,
}

/// Verifies the snapshot at `path` into `staging` (pack, index, manifest and
/// signature); returns the id of the key that signed it and the manifest.
pub(crate) fn unpack_verified(
    path: &Path,
    staging: &Path,
    keys: &TrustedKeys,
    fresh_at: Option<time::OffsetDateTime>,
    limits: Limits,
    accept: Accept<'_>,
) -> Result<(String, VerifiedHead)> {
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
) -> Result<(String, VerifiedHead)> {
    let file = mlld_fsutil::open_regular(path)?;
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

/// Like [`unpack_verified`], from the compressed snapshot arriving on
/// `stream` (a download), fresh at the verifier's clock.
pub(crate) fn unpack_verified_stream(
    stream: impl Read,
    staging: &Path,
    verifier: &crate::sync::verify::Verifier<'_>,
) -> Result<(String, VerifiedHead)> {
    let decoder = zstd::Decoder::new(Capped {
        inner: stream,
        left: verifier.limits.compressed,
        what: "compressed",
    })?;
    unpack_verified_tar(
        decoder,
        staging,
        verifier.keys,
        Some(verifier.now),
        verifier.limits,
        verifier.accept,
        false,
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
) -> Result<(String, VerifiedHead)> {
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
    // Synced once it has been read: the snapshot must be durable before it
    // moves into the store, not before it is checked.
    let manifest_file = manifest_file.into_inner().map_err(|e| e.into_error())?;
    let mut sig_bytes = Vec::new();
    next_named(MANIFEST_SIG_NAME, 4096, &mut sig_bytes)?;
    let sig = String::from_utf8(sig_bytes).context("the manifest signature is not text")?;

    // Members stream into staging while the manifest's signature is checked:
    // they are only staged, and nothing is moved or trusted unless the
    // signature, the manifest's policy checks and every member's digest pass.
    let abort = AtomicBool::new(false);
    let (to_hasher, batches) = mpsc::sync_channel::<Batch>(BATCHES_AHEAD);
    let (recycle, recycled) = mpsc::channel::<Batch>();
    let (members_tx, members_rx) = mpsc::channel::<Arc<Members>>();
    std::thread::scope(|s| {
        let parser = s.spawn(|| {
            // Owned here, so the hasher sees the channel close if the manifest is refused.
            let members_tx = members_tx;
            let spill = staging.join("query-spill");
            let checked = verify_and_spill(&manifest_path, &sig, keys, fresh_at, accept, &spill)
                .and_then(|checked| {
                    manifest_file.sync_all()?;
                    write_synced(&staging.join(MANIFEST_SIG_NAME), sig.as_bytes())?;
                    let members = Arc::new(checked.members);
                    let _ = members_tx.send(members.clone());
                    // The query store's records are assembled while the
                    // hasher finishes; they stay staged like everything else.
                    let records = crate::registry::write::records_path(staging);
                    std::fs::create_dir_all(
                        records.parent().expect("records.bin has a directory"),
                    )?;
                    let streamed = checked.spill.finish(&records)?;
                    Ok((checked.key_id, streamed, members))
                });
            if checked.is_err() {
                abort.store(true, Ordering::Relaxed);
            }
            checked
        });
        let hasher = s.spawn(|| {
            let r = hash_match_pack(staging, batches, recycle, members_rx, blobs_may_be_missing);
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
        let (key_id, head, members) = manifest?;
        streamed?;
        matched?;
        let members = Arc::try_unwrap(members)
            .map_err(|_| anyhow::anyhow!("the member table is still shared"))?;
        Ok((key_id, VerifiedHead { head, members }))
    })
}

/// Members read from the tar stream, packed in one buffer of a fixed
/// size. Buffers go back and forth between the reader and the hasher, so
/// member bytes are neither allocated nor zeroed one by one, and a large
/// member (a search index file may be hundreds of megabytes) is carried in
/// pieces over several batches: memory stays a few batches at any size.
struct Batch {
    data: Vec<u8>,
    used: usize,
    pieces: Vec<Piece>,
}

/// A piece of one member: its bytes are `data[start..start + len]`. The
/// member's last piece carries what the member is.
struct Piece {
    start: usize,
    len: usize,
    last: Option<StagedMember>,
}

/// A member read whole: its path, its offset in the pack and its size.
struct StagedMember {
    name: String,
    offset: u64,
    size: u64,
}

const BATCH_BYTES: usize = 4 << 20;
/// Batches the reader may be ahead of the hasher by.
const BATCHES_AHEAD: usize = 4;

impl Batch {
    fn new() -> Self {
        Self {
            data: vec![0; BATCH_BYTES],
            used: 0,
            pieces: Vec::with_capacity(1024),
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
        let mut member = Some(StagedMember { name, offset, size });
        let mut left = size;
        loop {
            if batch.used == batch.data.len() {
                let next = recycled.try_recv().unwrap_or_else(|_| Batch::new());
                if to_hasher.send(std::mem::replace(&mut batch, next)).is_err() {
                    return Ok(()); // the hasher failed; its error is reported
                }
            }
            let n =
                (batch.data.len() - batch.used).min(usize::try_from(left).unwrap_or(usize::MAX));
            let start = batch.used;
            entry
                .read_exact(&mut batch.data[start..start + n])
                .with_context(|| {
                    format!(
                        "member `{}` is cut short",
                        member.as_ref().map_or("", |m| &m.name)
                    )
                })?;
            batch.used += n;
            left -= n as u64;
            let last = if left == 0 { member.take() } else { None };
            let done = last.is_some();
            batch.pieces.push(Piece {
                start,
                len: n,
                last,
            });
            if done {
                break;
            }
        }
        offset += size;
    }
    if !batch.pieces.is_empty() {
        let _ = to_hasher.send(batch);
    }
    Ok(())
}

/// A hashed member waiting for the member table: a blob by the digest its
/// path names (and, only if its content differs, the content's digest), or
/// a search-index file. Kept small: at 1,000,000 modules a million of them
/// may wait while the manifest is still being read.
enum Pending {
    Blob {
        named: [u8; 32],
        size: u64,
        differs: Option<Box<[u8; 32]>>,
    },
    Index {
        name: String,
        size: u64,
        digest: [u8; 32],
    },
}

/// Hashes every member, appends it to the staging pack and its index, and
/// matches it against the signed member table as soon as the parser has
/// it; then checks that no listed member is missing.
fn hash_match_pack(
    staging: &Path,
    batches: mpsc::Receiver<Batch>,
    recycle: mpsc::Sender<Batch>,
    members_rx: mpsc::Receiver<Arc<Members>>,
    blobs_may_be_missing: bool,
) -> Result<()> {
    let mut pack = File::create(staging.join(PACK_NAME))?;
    let index_path = staging.join(PACK_INDEX_NAME);
    let mut index = BufWriter::with_capacity(1 << 20, File::create(&index_path)?);
    let mut members: Option<(Arc<Members>, Seen)> = None;
    let mut pending: Vec<Pending> = Vec::new();
    let mut hasher = sha2::Sha256::new();
    for mut batch in batches {
        for piece in batch.pieces.drain(..) {
            hasher.update(&batch.data[piece.start..piece.start + piece.len]);
            if let Some(StagedMember { name, offset, size }) = piece.last {
                let digest: [u8; 32] = hasher.finalize_reset().into();
                writeln!(index, "{offset} {size} {name}")?;
                pending.push(hashed(name, size, digest)?);
            }
        }
        pack.write_all(&batch.data[..batch.used])?;
        batch.used = 0;
        let _ = recycle.send(batch);
        if members.is_none() {
            members = members_rx.try_recv().ok().map(|m| {
                let seen = m.slots();
                (m, seen)
            });
        }
        if let Some((m, seen)) = &mut members {
            for p in pending.drain(..) {
                match_listed(m, seen, p)?;
            }
        }
    }
    pack.sync_all()?;
    let Some((m, mut seen)) = members.or_else(|| {
        let m = members_rx.recv().ok()?;
        let seen = m.slots();
        Some((m, seen))
    }) else {
        return Ok(()); // the manifest was refused; the parser reports why
    };
    for p in pending.drain(..) {
        match_listed(&m, &mut seen, p)?;
    }
    // An index-only snapshot (delta sync) may lack blobs, never index files.
    let from = if blobs_may_be_missing {
        m.blob_count()
    } else {
        0
    };
    if let Some(missing) = seen.first_unmarked(from, m.len()) {
        bail!(
            "member `{}` is listed in the signed manifest but missing from the snapshot",
            m.path(missing)
        );
    }
    index
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
        .context("writing the staged pack index")?;
    Ok(())
}

/// A hashed member, named by the digest its path gives where it is a blob.
fn hashed(name: String, size: u64, digest: [u8; 32]) -> Result<Pending> {
    if let Some(named) = digest_of_blob_path(&name) {
        let differs = (named != digest).then(|| Box::new(digest));
        return Ok(Pending::Blob {
            named,
            size,
            differs,
        });
    }
    if !mlld_schemas::search::is_index_member(&name) {
        bail!("member `{name}` is not listed in the signed manifest");
    }
    Ok(Pending::Index { name, size, digest })
}

/// Matches a hashed member against the signed table: listed, once, with
/// its size and digest.
fn match_listed(m: &Members, seen: &mut Seen, p: Pending) -> Result<()> {
    let (listed, size, digest) = match &p {
        Pending::Blob {
            named,
            size,
            differs,
        } => (
            m.get_blob(named),
            *size,
            *differs.as_deref().unwrap_or(named),
        ),
        Pending::Index { name, size, digest } => (m.get(name), *size, *digest),
    };
    let name = || match &p {
        Pending::Blob { named, .. } => mlld_schemas::snapshot::blob_path(&hex::encode(named)),
        Pending::Index { name, .. } => name.clone(),
    };
    let Some((slot, signed_size, signed)) = listed else {
        bail!("member `{}` is not listed in the signed manifest", name());
    };
    if size != signed_size {
        bail!(
            "member `{}` is {size} bytes; the signed manifest says {signed_size}",
            name()
        );
    }
    if digest != signed {
        bail!(
            "member `{}` has SHA-256 {}, but the signed manifest says {}",
            name(),
            hex::encode(digest),
            hex::encode(signed)
        );
    }
    if !seen.mark(slot) {
        bail!("member `{}` appears twice", name());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlld_schemas::snapshot::blob_path;

    /// Streams `members` as a tar through the reader and the hasher, against
    /// a member table listing `listed`.
    fn stage(
        members: &[(String, Vec<u8>)],
        listed: &[(String, Vec<u8>)],
    ) -> Result<tempfile::TempDir> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, bytes) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            tar.append_data(&mut header, name, &bytes[..])?;
        }
        let tar = tar.into_inner()?;
        let mut table = Members::default();
        for (name, bytes) in listed {
            let member = mlld_schemas::Member {
                sha256: mlld_schemas::sha256_hex(bytes),
                size: bytes.len() as u64,
            };
            table.insert(name.clone(), member)?;
        }
        table.finish()?;
        let staging = tempfile::tempdir()?;
        let abort = AtomicBool::new(false);
        let (to_hasher, batches) = mpsc::sync_channel::<Batch>(BATCHES_AHEAD);
        let (recycle, recycled) = mpsc::channel::<Batch>();
        let (members_tx, members_rx) = mpsc::channel();
        members_tx.send(Arc::new(table)).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        std::thread::scope(|s| {
            let hasher =
                s.spawn(|| hash_match_pack(staging.path(), batches, recycle, members_rx, false));
            let read = stream_members(
                archive.entries()?,
                Limits::default(),
                &abort,
                to_hasher,
                recycled,
            );
            let hashed = hasher.join().unwrap();
            read.and(hashed)
        })?;
        Ok(staging)
    }

    fn blob(bytes: Vec<u8>) -> (String, Vec<u8>) {
        (blob_path(&mlld_schemas::sha256_hex(&bytes)), bytes)
    }

    #[test]
    fn members_larger_than_a_batch_are_hashed_across_batches() {
        let members = vec![
            blob(b"small".to_vec()),
            blob((0..BATCH_BYTES * 2 + 123).map(|i| i as u8).collect()),
            blob(Vec::new()),
            blob(vec![7; BATCH_BYTES - 5]),
        ];
        let staging = stage(&members, &members).unwrap();
        let pack = std::fs::read(staging.path().join(PACK_NAME)).unwrap();
        assert_eq!(
            pack,
            members
                .iter()
                .flat_map(|(_, b)| b.clone())
                .collect::<Vec<u8>>()
        );
        let index = std::fs::read_to_string(staging.path().join(PACK_INDEX_NAME)).unwrap();
        let mut offset = 0;
        for ((name, bytes), line) in members.iter().zip(index.lines()) {
            assert_eq!(line, format!("{offset} {} {name}", bytes.len()));
            offset += bytes.len();
        }
    }

    #[test]
    fn a_large_member_with_one_byte_changed_is_refused() {
        let listed = vec![blob(vec![1; BATCH_BYTES + 10])];
        let mut served = listed.clone();
        served[0].1[BATCH_BYTES + 3] ^= 1;
        let err = stage(&served, &listed).unwrap_err().to_string();
        assert!(err.contains("but the signed manifest says"), "{err}");
        let err = stage(&listed[..0], &listed).unwrap_err().to_string();
        assert!(err.contains("missing from the snapshot"), "{err}");
    }
}
