//! The client's store: verified snapshots, shared by every project of the
//! user, and the sync state.
//!
//! Layout under `$MLLD_REGISTRY_HOME`, else `$XDG_DATA_HOME/mlld-registry`,
//! else `~/.local/share/mlld-registry`:
//!
//! ```text
//! snapshots/<sha256>/manifest.json          the signed manifest of an imported snapshot
//! snapshots/<sha256>/manifest.json.minisig
//! snapshots/<sha256>/pack                   every member's bytes, concatenated, verified
//! snapshots/<sha256>/pack.idx               `<offset> <size> <path>` per member
//! snapshots/<sha256>/index/                 the search index (copied out of the verified pack), memory-mapped by `search`
//! snapshot-files/<sha256 of a path>.json    which stored snapshot an unchanged snapshot file is (see `search_store`)
//! state.json                                the current snapshot and the registry's
//!                                           rollback floor: the highest serial ever accepted
//! .lock                                     serialises `sync` runs
//! tmp/                                      staging; anything here is garbage
//! ```
//!
//! A snapshot directory appears by one rename, after every member has been
//! verified, and `state.json` is replaced atomically after that: a reader
//! sees the previous snapshot until the new one is complete. Blobs are read
//! from the pack by offset and re-hashed on every read.

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mlld_fsutil::{Confined, FileLock};
use mlld_schemas::snapshot::{MANIFEST_NAME, MANIFEST_SIG_NAME, blob_path};
use mlld_schemas::{Manifest, names};
use serde::{Deserialize, Serialize};

use crate::trust::TrustedKeys;

pub const PACK_NAME: &str = "pack";
pub const PACK_INDEX_NAME: &str = "pack.idx";
const STATE_NAME: &str = "state.json";
/// `state.json` holds a few hashes and serials; far less than this.
const MAX_STATE_BYTES: u64 = 16 << 20;
/// In every staging directory: locked by the process that owns it.
const STAGING_OWNER: &str = ".owner";

/// A staging directory under the store's `tmp/`, removed when dropped; its
/// owner lock tells other processes it is in use.
pub struct Staging {
    _owner: FileLock,
    dir: tempfile::TempDir,
}

impl Staging {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

pub struct Store {
    root: PathBuf,
    /// Every write goes through here: nothing below the root is followed
    /// through a symbolic link.
    fs: Confined,
}

/// A manifest whose signature has been checked, with its member pack.
pub struct VerifiedManifest {
    /// SHA-256 of the snapshot file it came from.
    pub snapshot_sha256: String,
    /// Which trusted key signed it (see [`TrustedKeys::verify_with_key`]).
    pub key_id: String,
    pub manifest: Manifest,
    dir: PathBuf,
    index: OnceCell<HashMap<String, (u64, u64)>>,
    pack: OnceCell<std::fs::File>,
}

/// `state.json`: what `sync` last made current, and the rollback floor.
///
/// The floor belongs to the registry, not to a key: a store follows the one
/// registry its trusted keys speak for, and during a key rotation both keys
/// sign the same serial sequence, so a lower serial signed by the other key
/// is a rollback like any other.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<Current>,
    /// The highest serial ever accepted from the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<u64>,
    /// Older clients kept a floor per key id; read (its highest value is the
    /// registry's floor), never written again.
    #[serde(default, skip_serializing)]
    pub accepted: BTreeMap<String, u64>,
}

impl SyncState {
    /// The registry's rollback floor, if anything was ever accepted.
    pub fn floor(&self) -> Option<u64> {
        self.floor.max(self.accepted.values().copied().max())
    }

    /// Raises the floor to `serial` (never lowers it).
    pub fn raise_floor(&mut self, serial: u64) {
        self.floor = self.floor().max(Some(serial));
        self.accepted.clear();
    }

    /// Refuses a snapshot below the floor, or at the floor's serial with other
    /// content than the current snapshot. `what` names the offer in messages.
    pub fn check_serial(&self, serial: u64, sha256: &str) -> Result<(), Rollback> {
        let Some(floor) = self.floor() else {
            return Ok(());
        };
        if serial < floor {
            return Err(Rollback::Older { serial, floor });
        }
        if let Some(c) = &self.current
            && serial == floor
            && c.serial == serial
            && c.snapshot != sha256
        {
            return Err(Rollback::SameSerial {
                serial,
                current: c.snapshot.clone(),
            });
        }
        Ok(())
    }
}

/// Why a snapshot would move the registry backwards.
#[derive(Debug, PartialEq, Eq)]
pub enum Rollback {
    /// A serial lower than one already accepted.
    Older { serial: u64, floor: u64 },
    /// The accepted serial again, with other content.
    SameSerial { serial: u64, current: String },
}

impl std::fmt::Display for Rollback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rollback::Older { serial, floor } => write!(
                f,
                "rollback refused: this snapshot has serial {serial}, but serial {floor} of the registry was already accepted"
            ),
            Rollback::SameSerial { serial, current } => write!(
                f,
                "serial {serial} was already accepted with different content (snapshot {current}); a registry never signs two snapshots with one serial. Refused"
            ),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Current {
    pub snapshot: String,
    pub serial: u64,
    pub key_id: String,
    pub source: String,
    pub synced_at: String,
    /// The snapshot that was current before this one (kept until the next sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// Set by `sync --sparse`: the store holds the build's verified sparse
    /// root, not its snapshot, and fetches shards and blobs as they are read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse: Option<SparseCurrent>,
}

/// Where a sparse store's records come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SparseCurrent {
    /// The digest of the verified root (`sparse/roots/<sha256>.json` in the store).
    pub root: String,
    /// The site missing shards and blobs are fetched from (a URL, or an
    /// absolute directory).
    pub site: String,
}

impl Store {
    pub fn open_default() -> Result<Self> {
        let root = if let Some(home) = std::env::var_os("MLLD_REGISTRY_HOME") {
            PathBuf::from(home)
        } else if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            PathBuf::from(data).join("mlld-registry")
        } else if let Some(home) = std::env::var_os("HOME") {
            PathBuf::from(home).join(".local/share/mlld-registry")
        } else {
            bail!("cannot find a place for the registry store: set MLLD_REGISTRY_HOME or HOME");
        };
        Ok(Self::at(root))
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            fs: Confined::new(root.clone()),
            root,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The store's writes, confined to its root.
    pub fn fs(&self) -> &Confined {
        &self.fs
    }

    pub fn tmp_dir(&self) -> Result<PathBuf> {
        let dir = self.root.join("tmp");
        self.fs
            .create_dir_all(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    /// A fresh staging directory in `tmp/`, owned by this process until
    /// dropped (then removed). Staging left by killed processes is removed
    /// first (see [`Store::sweep_tmp`]).
    pub fn staging(&self, prefix: &str) -> Result<Staging> {
        let tmp = self.tmp_dir()?;
        self.sweep_tmp(&tmp);
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&tmp)
            .with_context(|| format!("creating a staging directory in {}", tmp.display()))?;
        let owner = dir.path().join(STAGING_OWNER);
        let lock =
            FileLock::acquire(&owner).with_context(|| format!("locking {}", owner.display()))?;
        Ok(Staging { _owner: lock, dir })
    }

    /// Removes staging directories no live process owns: their owner lock
    /// can be taken (a killed process's lock is released by the kernel), or
    /// they have no owner file and are older than an hour (a process killed
    /// between creating the directory and locking it). Best effort.
    pub fn sweep_tmp(&self, tmp: &Path) {
        const UNOWNED_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);
        let Ok(entries) = std::fs::read_dir(tmp) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.is_dir() {
                continue;
            }
            let stale = match FileLock::try_acquire_existing(&path.join(STAGING_OWNER)) {
                Ok(lock) => lock.is_some(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => meta
                    .modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age > UNOWNED_GRACE),
                Err(_) => false,
            };
            if stale {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }

    pub fn snapshot_dir(&self, sha256: &str) -> PathBuf {
        self.root.join("snapshots").join(sha256)
    }

    /// Serialises writers of the store (sync) until the guard drops.
    pub fn exclusive(&self) -> Result<FileLock> {
        let path = self.root.join(".lock");
        self.fs
            .lock(&path)
            .with_context(|| format!("locking {}", path.display()))
    }

    pub fn state_path(&self) -> PathBuf {
        self.root.join(STATE_NAME)
    }

    /// The sync state; empty before the first sync. A damaged file is an error.
    pub fn state(&self) -> Result<SyncState> {
        let path = self.state_path();
        // Capped and regular only: a FIFO in its place would hang every command.
        match mlld_fsutil::read_regular(&path, MAX_STATE_BYTES) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is damaged; delete it and run `mlld-registry sync` (the rollback floor restarts from the next snapshot)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SyncState::default()),
            Err(e) => Err(e).with_context(|| {
                format!(
                    "reading {}; if it is not the file sync wrote, delete it and run `mlld-registry sync` (the rollback floor restarts from the next snapshot)",
                    path.display()
                )
            }),
        }
    }

    pub fn write_state(&self, state: &SyncState) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(state)?;
        bytes.push(b'\n');
        self.fs
            .write_atomic(&self.state_path(), &bytes)
            .with_context(|| format!("writing {}", self.state_path().display()))
    }

    /// Removes snapshot directories other than `keep` (best effort: a
    /// snapshot another process still reads is only unlinked, not damaged).
    /// A directory less than an hour old is left alone: another `sync` may
    /// have just verified it and be waiting for the lock to make it current.
    pub fn prune(&self, keep: &[&str]) {
        const IN_FLIGHT: std::time::Duration = std::time::Duration::from_secs(3600);
        let Ok(entries) = std::fs::read_dir(self.root.join("snapshots")) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let recent = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < IN_FLIGHT));
            if !recent && !keep.iter().any(|k| name.to_str() == Some(k)) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Loads an imported snapshot's manifest, checking its signature again.
    pub fn load_manifest(
        &self,
        snapshot_sha256: &str,
        keys: &TrustedKeys,
    ) -> Result<Option<VerifiedManifest>> {
        names::check_sha256_hex(snapshot_sha256).map_err(anyhow::Error::msg)?;
        let dir = self.snapshot_dir(snapshot_sha256);
        let bytes = match std::fs::read(dir.join(MANIFEST_NAME)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        let sig = std::fs::read_to_string(dir.join(MANIFEST_SIG_NAME))
            .with_context(|| format!("reading the manifest signature in {}", dir.display()))?;
        let verified = keys.verify_with_key("stored manifest", &bytes, &sig)?;
        let manifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("stored manifest in {} is malformed", dir.display()))?;
        Ok(Some(VerifiedManifest::new(
            snapshot_sha256.to_string(),
            verified.key_id,
            manifest,
            dir,
        )))
    }
}

impl VerifiedManifest {
    pub fn new(snapshot_sha256: String, key_id: String, manifest: Manifest, dir: PathBuf) -> Self {
        Self {
            snapshot_sha256,
            key_id,
            manifest,
            dir,
            index: OnceCell::new(),
            pack: OnceCell::new(),
        }
    }

    /// The store directory holding this snapshot.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn index(&self) -> Result<&HashMap<String, (u64, u64)>> {
        if let Some(i) = self.index.get() {
            return Ok(i);
        }
        let path = self.dir.join(PACK_INDEX_NAME);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {}; the store is damaged: run `mlld-registry sync` again",
                path.display()
            )
        })?;
        let mut map = HashMap::with_capacity(self.manifest.members.len());
        for line in text.lines() {
            let mut parts = line.splitn(3, ' ');
            let (Some(off), Some(size), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                bail!(
                    "{} is damaged; run `mlld-registry sync` again",
                    path.display()
                );
            };
            let (Ok(off), Ok(size)) = (off.parse(), size.parse()) else {
                bail!(
                    "{} is damaged; run `mlld-registry sync` again",
                    path.display()
                );
            };
            map.insert(name.to_string(), (off, size));
        }
        Ok(self.index.get_or_init(|| map))
    }

    /// The signed entry of the member `path` and where the pack index puts
    /// it (offset, size), unchecked.
    fn locate(&self, path: &str) -> Result<(&mlld_schemas::Member, u64, u64)> {
        let member = self
            .manifest
            .members
            .get(path)
            .with_context(|| format!("`{path}` is not a member of this snapshot"))?;
        let &(offset, size) = self.index()?.get(path).with_context(|| {
            format!("`{path}` is missing from the store's pack; run `mlld-registry sync` again")
        })?;
        Ok((member, offset, size))
    }

    /// Where a member lies in the pack (offset, size), for reading in
    /// place; the caller checks the bytes (a delta base is hashed whole).
    pub(crate) fn member_location(&self, path: &str) -> Result<(u64, u64)> {
        let (member, offset, size) = self.locate(path)?;
        if size != member.size {
            bail!(
                "the store's pack index gives `{path}` {size} bytes, the manifest {}; delete {} and sync again",
                member.size,
                self.dir.display()
            );
        }
        Ok((offset, size))
    }

    /// A member's bytes, checked against the signed manifest's digest: a store
    /// file changed on disk is refused.
    pub fn read_member(&self, path: &str) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let (member, offset, size) = self.locate(path)?;
        let pack = self.dir.join(PACK_NAME);
        let file = match self.pack.get() {
            Some(f) => f,
            None => {
                let f = mlld_fsutil::open_regular(&pack)
                    .with_context(|| format!("opening {}", pack.display()))?;
                self.pack.get_or_init(|| f)
            }
        };
        let mut bytes = vec![0; size as usize];
        file.read_exact_at(&mut bytes, offset)
            .with_context(|| format!("reading `{path}` from {}", pack.display()))?;
        let actual = mlld_schemas::sha256_hex(&bytes);
        if actual != member.sha256 || size != member.size {
            bail!(
                "store pack {} is corrupt (`{path}` hashes to {actual}); delete {} and sync again",
                pack.display(),
                self.dir.display()
            );
        }
        Ok(bytes)
    }

    /// The content of the blob with this SHA-256 (hex, or `sha256:<hex>`).
    pub fn read_blob(&self, sha256: &str) -> Result<Vec<u8>> {
        let hex = sha256.strip_prefix("sha256:").unwrap_or(sha256);
        names::check_sha256_hex(hex).map_err(anyhow::Error::msg)?;
        self.read_member(&blob_path(hex))
    }
}
