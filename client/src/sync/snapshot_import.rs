//! Verifies a snapshot file and brings it into the store.
//!
//! Order of trust: the manifest and its signature come first in the tar and
//! are checked before any other byte is used; then every member is streamed
//! to a staging pack while hashed, and must be listed in the signed manifest
//! with that digest and size; only when all members are present and correct
//! does the staged snapshot move into the store, by one rename. Any failure
//! leaves the store as it was.

use std::io::{self, Read};
use std::path::Path;

use anyhow::{Context, Result, bail};
use mlld_schemas::search::{INDEX_DIR, is_index_member};

use crate::store::{Store, VerifiedManifest};
use crate::trust::TrustedKeys;

use super::unpack::VerifiedHead;
use super::verify::write_synced;
pub use super::verify::{Accept, Limits, Verifier, check_fresh, file_sha256};

/// Verifies `path` and imports it into `store`, unless it is there already.
pub fn import(
    store: &Store,
    path: &Path,
    keys: &TrustedKeys,
    now: time::OffsetDateTime,
    limits: Limits,
) -> Result<VerifiedManifest> {
    import_accepting(store, path, keys, Some(now), limits, &|_, _| Ok(()))
}

/// Like [`import`]; `accept` sees the signed serial and the file's SHA-256 before anything
/// is written (the rollback floor). Without `fresh_at`, an expired snapshot
/// is read too (its content is still what the registry signed; the caller
/// decides what expiry forbids).
pub fn import_accepting(
    store: &Store,
    path: &Path,
    keys: &TrustedKeys,
    fresh_at: Option<time::OffsetDateTime>,
    limits: Limits,
    accept: &(dyn Fn(u64, &str) -> Result<()> + Sync),
) -> Result<VerifiedManifest> {
    check_size(path, limits)?;
    let sha256 = file_sha256(path)?;
    let accept = |_: &str, serial: u64| accept(serial, &sha256);
    if let Some(v) = load_stored(store, &sha256, keys, fresh_at, &accept)? {
        return Ok(v);
    }
    import_new(store, path, &sha256, keys, fresh_at, limits, false, &accept)?;
    store.load_manifest(&sha256, keys)?.with_context(|| {
        format!(
            "snapshot {sha256} vanished from the store {} while it was read",
            store.root().display()
        )
    })
}

/// What an import verified and stored.
#[derive(Clone, Debug)]
pub struct Imported {
    pub snapshot_sha256: String,
    pub key_id: String,
    pub serial: u64,
    pub expires: String,
    pub modules: usize,
}

impl Imported {
    pub fn of(v: &VerifiedManifest) -> Self {
        Self {
            snapshot_sha256: v.snapshot_sha256.clone(),
            key_id: v.key_id.clone(),
            serial: v.manifest.serial,
            expires: v.manifest.expires.clone(),
            modules: v.manifest.modules.len(),
        }
    }
}

/// Imports with an acceptance check, and optionally the SHA-256 the file
/// must have (a download named by `latest.json`; then the file is hashed
/// while it is verified). Unlike [`import`], does not load the full
/// manifest afterwards (`sync` needs only its head).
pub fn import_checked(
    store: &Store,
    path: &Path,
    expected_sha256: Option<&str>,
    verifier: &Verifier<'_>,
) -> Result<Imported> {
    let hash_file = expected_sha256.is_some();
    let Verifier {
        keys,
        now,
        limits,
        accept,
    } = *verifier;
    check_size(path, limits)?;
    let sha256 = match expected_sha256 {
        Some(s) => s.to_string(),
        None => file_sha256(path)?,
    };
    if let Some(v) = load_stored(store, &sha256, keys, Some(now), accept)? {
        if hash_file {
            let actual = file_sha256(path)?;
            check_sha(path, &actual, &sha256)?;
        }
        return Ok(Imported::of(&v));
    }
    import_new(
        store,
        path,
        &sha256,
        keys,
        Some(now),
        limits,
        hash_file,
        accept,
    )
}

/// The stored snapshot with this SHA-256, if the store has it: signature
/// checked again, fresh at `fresh_at` (if given), and accepted by `accept`.
pub fn load_stored(
    store: &Store,
    sha256: &str,
    keys: &TrustedKeys,
    fresh_at: Option<time::OffsetDateTime>,
    accept: Accept<'_>,
) -> Result<Option<VerifiedManifest>> {
    let Some(v) = store.load_manifest(sha256, keys)? else {
        return Ok(None);
    };
    if let Some(now) = fresh_at {
        check_fresh(&v.manifest, now)?;
    }
    accept(&v.key_id, v.manifest.serial)?;
    Ok(Some(v))
}

fn check_sha(path: &Path, actual: &str, expected: &str) -> Result<()> {
    if actual != expected {
        bail!(
            "snapshot {} has SHA-256 {actual}, but the signed latest.json names {expected}; the download was altered or the site is inconsistent. Nothing was written",
            path.display()
        );
    }
    Ok(())
}

fn check_size(path: &Path, limits: Limits) -> Result<()> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("opening snapshot {}", path.display()))?
        .len();
    if size > limits.compressed {
        bail!(
            "snapshot {} is {size} bytes, over the {}-byte limit; refusing to read it",
            path.display(),
            limits.compressed
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)] // one private step of import_checked
fn import_new(
    store: &Store,
    path: &Path,
    sha256: &str,
    keys: &TrustedKeys,
    fresh_at: Option<time::OffsetDateTime>,
    limits: Limits,
    hash_too: bool,
    accept: Accept<'_>,
) -> Result<Imported> {
    let staging = store.staging("import-")?;
    let snap = staging.path().join("snapshot");
    std::fs::create_dir_all(&snap)?;
    let (hashed, unpacked) = std::thread::scope(|s| {
        let hasher = hash_too.then(|| s.spawn(|| file_sha256(path)));
        let unpacked =
            crate::sync::unpack::unpack_verified(path, &snap, keys, fresh_at, limits, accept);
        (
            hasher.map(|h| h.join().expect("hashing does not panic")),
            unpacked,
        )
    });
    if let Some(actual) = hashed.transpose()? {
        check_sha(path, &actual, sha256)?;
    }
    let (key_id, verified) =
        unpacked.with_context(|| format!("snapshot {} was refused", path.display()))?;
    install_staged(store, &snap, sha256, key_id, verified)
}

/// Downloads the snapshot `rel` of the site `source` (exactly `size` bytes,
/// named by `sha256` in the signed latest.json) and verifies it into the
/// store as it arrives, without a copy on disk: the download streams
/// through a pipe into the same verification as a file. Nothing staged is
/// used unless the download's digest matches and every check passes.
pub fn import_streamed(
    store: &Store,
    source: &super::site::Source,
    rel: &str,
    (sha256, size): (&str, u64),
    verifier: &Verifier<'_>,
    progress: bool,
) -> Result<Imported> {
    let staging = store.staging("import-")?;
    let snap = staging.path().join("snapshot");
    std::fs::create_dir_all(&snap)?;
    let (reader, mut writer) = io::pipe()?;
    let (downloaded, unpacked) = std::thread::scope(|s| {
        let download = s.spawn(move || source.stream_into(rel, size, &mut writer, progress));
        // The reader is dropped when unpacking ends, so a refused snapshot
        // also stops the download.
        let unpacked = crate::sync::unpack::unpack_verified_stream(reader, &snap, verifier);
        (
            download.join().expect("downloading does not panic"),
            unpacked,
        )
    });
    let describe = || format!("{}/{rel}", source.describe());
    // An altered download is reported as such, whatever unpacking made of
    // it; a download cut off because unpacking stopped reading is not.
    let stopped_reading = |e: &anyhow::Error| {
        e.chain().any(|c| {
            c.downcast_ref::<io::Error>()
                .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
        })
    };
    match downloaded {
        Err(e) if unpacked.is_err() && stopped_reading(&e) => {}
        Ok(Some(actual)) if actual == sha256 => {}
        Ok(Some(actual)) => bail!(
            "{} has SHA-256 {actual}, but the signed latest.json names {sha256}; the download was altered. Nothing was written",
            describe()
        ),
        Ok(None) => bail!(
            "{} is missing, though the signed latest.json names it; try again later or another mirror",
            describe()
        ),
        Err(e) => return Err(e),
    }
    let (key_id, verified) =
        unpacked.with_context(|| format!("snapshot {} was refused", describe()))?;
    install_staged(store, &snap, sha256, key_id, verified)
}

/// Moves a verified staged snapshot into the store: its search index
/// beside the pack, its query store completed, one rename.
fn install_staged(
    store: &Store,
    snap: &Path,
    sha256: &str,
    key_id: String,
    verified: VerifiedHead,
) -> Result<Imported> {
    // `search` memory-maps the index: its files live beside the pack, verified with it.
    extract_index(snap, &verified)?;
    crate::registry::write::finish(snap, sha256, &key_id, &verified.head)?;
    let dir = store.snapshot_dir(sha256);
    if !dir.exists() {
        store
            .fs()
            .rename_durable(snap, &dir)
            .with_context(|| format!("moving the verified snapshot into {}", dir.display()))?;
    }
    Ok(Imported {
        snapshot_sha256: sha256.to_string(),
        key_id,
        serial: verified.head.serial,
        expires: verified.head.expires,
        modules: verified.head.modules,
    })
}

/// Copies the search index members out of the verified staged pack into
/// `snap/index/`, where `search` opens them memory-mapped.
pub(crate) fn extract_index(snap: &Path, verified: &VerifiedHead) -> Result<()> {
    if !verified.members.has_index() {
        return Ok(());
    }
    let idx = io::BufReader::new(mlld_fsutil::open_regular(
        &snap.join(crate::store::PACK_INDEX_NAME),
    )?);
    let mut pack = mlld_fsutil::open_regular(&snap.join(crate::store::PACK_NAME))?;
    std::fs::create_dir_all(snap.join(INDEX_DIR))?;
    for line in io::BufRead::lines(idx) {
        let line = line?;
        let mut parts = line.splitn(3, ' ');
        let (Some(offset), Some(size), Some(member)) = (parts.next(), parts.next(), parts.next())
        else {
            bail!("the staged pack index is malformed");
        };
        if !is_index_member(member) {
            continue;
        }
        let (offset, size): (u64, u64) = (offset.parse()?, size.parse()?);
        use std::io::Seek as _;
        pack.seek(io::SeekFrom::Start(offset))?;
        let mut bytes = Vec::with_capacity(size as usize);
        (&mut pack).take(size).read_to_end(&mut bytes)?;
        write_synced(&snap.join(member), &bytes)?;
    }
    Ok(())
}
