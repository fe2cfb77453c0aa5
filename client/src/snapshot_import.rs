//! Verifies a snapshot file and brings it into the store.
//!
//! Order of trust: the manifest and its signature come first in the tar and
//! are checked before any other byte is used; then every member is streamed
//! to a staging pack while hashed, and must be listed in the signed manifest
//! with that digest and size; only when all members are present and correct
//! does the staged snapshot move into the store, by one rename. Any failure
//! leaves the store as it was.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path};

use anyhow::{Context, Result, bail};
use mlld_schemas::search::{INDEX_DIR, is_index_member};
use mlld_schemas::{Manifest, names};
use sha2::Digest as _;

use crate::store::{Store, VerifiedManifest};
use crate::trust::TrustedKeys;

/// Caps that bound what a hostile snapshot can make us read or write.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub compressed: u64,
    pub unpacked: u64,
    pub manifest: u64,
    pub member: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            compressed: 4 << 30,
            unpacked: 16 << 30,
            manifest: 512 << 20,
            member: 16 << 20,
        }
    }
}

/// The SHA-256 of a file, streamed.
pub fn file_sha256(path: &Path) -> Result<String> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = sha2::Sha256::new();
    io::copy(&mut f, &mut HashWriter(&mut h))
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(hex::encode(h.finalize()))
}

struct HashWriter<'a>(&'a mut sha2::Sha256);
impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that fails once more than `left` bytes pass through it.
pub(crate) struct Capped<R> {
    pub(crate) inner: R,
    pub(crate) left: u64,
    pub(crate) what: &'static str,
}
impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            io::Error::other(format!(
                "the snapshot's {} size is over the limit",
                self.what
            ))
        })?;
        Ok(n)
    }
}

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

/// A check on a verified manifest, given the id of the key that signed it
/// and its serial, made before anything is written: `sync` refuses
/// rollbacks with it.
pub type Accept<'a> = &'a (dyn Fn(&str, u64) -> Result<()> + Sync);

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
    keys: &TrustedKeys,
    now: time::OffsetDateTime,
    limits: Limits,
    accept: Accept<'_>,
) -> Result<Imported> {
    check_size(path, limits)?;
    let sha256 = match expected_sha256 {
        Some(s) => s.to_string(),
        None => file_sha256(path)?,
    };
    if let Some(v) = load_stored(store, &sha256, keys, Some(now), accept)? {
        if expected_sha256.is_some() {
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
        expected_sha256.is_some(),
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
        let unpacked = crate::unpack::unpack_verified(path, &snap, keys, fresh_at, limits, accept);
        (
            hasher.map(|h| h.join().expect("hashing does not panic")),
            unpacked,
        )
    });
    if let Some(actual) = hashed.transpose()? {
        check_sha(path, &actual, sha256)?;
    }
    let (key_id, head) =
        unpacked.with_context(|| format!("snapshot {} was refused", path.display()))?;
    // `search` memory-maps the index: its files live beside the pack, verified with it.
    extract_index(&snap, &head)?;
    crate::registry::write::write_staged(&snap, sha256, &key_id)?;
    let dir = store.snapshot_dir(sha256);
    if !dir.exists() {
        store
            .fs()
            .rename_durable(&snap, &dir)
            .with_context(|| format!("moving the verified snapshot into {}", dir.display()))?;
    }
    Ok(Imported {
        snapshot_sha256: sha256.to_string(),
        key_id,
        serial: head.serial,
        expires: head.expires,
        modules: head.modules.len(),
    })
}

/// Copies the search index members out of the verified staged pack into
/// `snap/index/`, where `search` opens them memory-mapped.
pub(crate) fn extract_index(snap: &Path, head: &ManifestHead) -> Result<()> {
    if !head.members.keys().any(|p| is_index_member(p)) {
        return Ok(());
    }
    let idx = std::fs::read_to_string(snap.join(crate::store::PACK_INDEX_NAME))?;
    let mut pack = File::open(snap.join(crate::store::PACK_NAME))?;
    std::fs::create_dir_all(snap.join(INDEX_DIR))?;
    for line in idx.lines() {
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

/// Refuses a snapshot whose expiry has passed (a frozen mirror).
pub fn check_fresh(manifest: &Manifest, now: time::OffsetDateTime) -> Result<()> {
    check_expiry(manifest.serial, &manifest.expires, now)
}

pub(crate) fn check_expiry(serial: u64, expires: &str, now: time::OffsetDateTime) -> Result<()> {
    let at = names::parse_timestamp(expires).map_err(anyhow::Error::msg)?;
    if at <= now {
        bail!(
            "snapshot serial {serial} expired at {expires}: the site has stopped publishing or is serving a stale copy; sync from an up-to-date site"
        );
    }
    Ok(())
}

/// The parts of a manifest that verification needs, parsed without
/// building every module record (a manifest may be tens of megabytes).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ManifestHead {
    pub format_version: u32,
    pub serial: u64,
    pub expires: String,
    pub modules: Vec<ModuleHead>,
    #[serde(default)]
    pub advisories: Vec<mlld_schemas::AdvisoryRecord>,
    #[serde(default)]
    pub versioned: Vec<mlld_schemas::snapshot_versioned::VersionedModule>,
    pub members: std::collections::HashMap<String, mlld_schemas::Member, TailHash>,
    #[serde(default)]
    pub rejected: Vec<mlld_schemas::RejectedRecord>,
}

/// A fast hash for member paths, which end in 62 hex digits of a digest:
/// the last 16 bytes are already uniformly distributed. Only used on names
/// from the signed manifest (or already matched against it), so there is no
/// one to aim collisions at.
pub(crate) type TailHash = std::hash::BuildHasherDefault<TailHasher>;

#[derive(Default)]
pub(crate) struct TailHasher(u64);

impl std::hash::Hasher for TailHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let tail = &bytes[bytes.len().saturating_sub(16)..];
        for chunk in tail.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            self.0 ^= self.0 >> 29;
        }
        self.0 ^= bytes.len() as u64;
    }
}

/// A module record: every field that names something the client turns
/// into a path, a lock entry or a lookup, checked by `manifest_check`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ModuleHead {
    pub user: String,
    pub name: String,
    pub gist: String,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub updated: Option<String>,
    /// The current revision (flattened into the module record).
    #[serde(flatten)]
    pub current: RevisionHead,
    #[serde(default)]
    pub history: Vec<RevisionHead>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RevisionHead {
    pub revision: String,
    pub integrity: String,
    #[serde(default)]
    pub committed_at: Option<String>,
    pub file: String,
    #[serde(default)]
    pub files: Vec<mlld_schemas::GistFile>,
    #[serde(default)]
    pub dependencies: Vec<String>,
}

impl ModuleHead {
    /// Current revision first, then history.
    pub fn revisions(&self) -> impl Iterator<Item = &RevisionHead> {
        std::iter::once(&self.current).chain(&self.history)
    }
}

/// Staged files are synced before the snapshot directory is renamed into the
/// store, so a crash never leaves a pack that promises bytes it does not hold.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Every blob a module record names must be a member, and every member path
/// a blob or a file of the search index (`index/<plain file name>`).
pub(crate) fn check_consistent(manifest: &ManifestHead) -> Result<()> {
    // Allocation-free: snapshots list hundreds of thousands of members.
    let mut digests = std::collections::HashSet::with_capacity_and_hasher(
        manifest.members.len(),
        TailHash::default(),
    );
    for (path, member) in &manifest.members {
        if !is_blob_path_of(path, &member.sha256) && !is_index_member(path) {
            bail!(
                "manifest member `{path}` is neither a blob path matching its digest nor a search index file"
            );
        }
        digests.insert(member.sha256.as_str());
    }
    for m in &manifest.modules {
        for r in m.revisions() {
            let hex = r.integrity.strip_prefix("sha256:").unwrap_or_default();
            if !digests.contains(hex) {
                bail!(
                    "module {}/{} revision {} names content that is not in the snapshot",
                    m.user,
                    m.name,
                    r.revision
                );
            }
        }
    }
    Ok(())
}

/// Whether `path` is `blobs/sha256/<2 hex>/<62 hex>` of the digest `hex`
/// (the rule of `mlld_schemas::snapshot::blob_digest`, without allocating).
fn is_blob_path_of(path: &str, hex: &str) -> bool {
    let Some(rest) = path.strip_prefix("blobs/sha256/") else {
        return false;
    };
    names::check_sha256_hex(hex).is_ok()
        && rest.len() == 65
        && rest.as_bytes()[2] == b'/'
        && rest[..2] == hex[..2]
        && rest[3..] == hex[2..]
}

/// The member's path, refusing anything but a plain relative file path.
pub(crate) fn safe_member_path<R: Read>(entry: &tar::Entry<'_, R>) -> Result<String> {
    let kind = entry.header().entry_type();
    let path = entry
        .path()
        .context("a member's path is not valid")?
        .into_owned();
    if kind != tar::EntryType::Regular {
        bail!(
            "member `{}` is a {kind:?}, not a regular file: links and devices are refused",
            path.display()
        );
    }
    if !path.components().all(|c| matches!(c, Component::Normal(_))) {
        bail!(
            "member path `{}` is absolute or leaves the snapshot (`..`); refused",
            path.display()
        );
    }
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("member path `{}` is not UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_paths_must_name_their_own_digest() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let path = mlld_schemas::snapshot::blob_path(hex);
        assert!(is_blob_path_of(&path, hex));
        let other = "f3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(!is_blob_path_of(&path, other));
        assert!(!is_blob_path_of(
            &format!("blobs/sha256/e3/../{}", &hex[2..]),
            hex
        ));
        assert!(!is_blob_path_of(&format!("index/{hex}"), hex));
        assert!(!is_blob_path_of(&path, "E3B0"));
    }
}
