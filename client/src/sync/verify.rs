//! The checks every way into the store shares: caps on what a hostile
//! snapshot can make us read, the streamed hash, the manifest head and its
//! consistency rules, member paths, expiry. `snapshot_import` and its
//! streaming part `unpack` both build on these, and neither on the other's internals.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use mlld_schemas::search::is_index_member;
use mlld_schemas::{Manifest, names};
use sha2::Digest as _;

/// Caps that bound what a hostile snapshot can make us read or write.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub compressed: u64,
    pub unpacked: u64,
    pub manifest: u64,
    /// A blob (module content).
    pub member: u64,
    /// A file of the search index, which grows with the registry (80 MB
    /// for one of them at 1,000,000 modules).
    pub index_member: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            compressed: 4 << 30,
            unpacked: 16 << 30,
            manifest: 2 << 30,
            member: 16 << 20,
            index_member: 1 << 30,
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

/// What every verification of a snapshot is checked against: the trusted
/// keys, the clock (expiry), the caps, and the acceptance rule (the
/// rollback floor) applied to the signed serial before anything is written.
#[derive(Clone, Copy)]
pub struct Verifier<'a> {
    pub keys: &'a crate::trust::TrustedKeys,
    pub now: time::OffsetDateTime,
    pub limits: Limits,
    pub accept: Accept<'a>,
}

/// A check on a verified manifest, given the id of the key that signed it
/// and its serial, made before anything is written: `sync` refuses
/// rollbacks with it.
pub type Accept<'a> = &'a (dyn Fn(&str, u64) -> Result<()> + Sync);

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

/// The member's path under the site contract's one set of member rules.
pub(crate) use mlld_site_contract::archive::member_path as safe_member_path;

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
