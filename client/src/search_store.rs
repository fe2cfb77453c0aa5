//! Where `search` finds its index: in the store, under the verified
//! snapshot it belongs to (`snapshots/<sha256>/index/`), memory-mapped and
//! never rebuilt.
//!
//! Which stored snapshot `--snapshot FILE` means is known only by hashing
//! the file, and a registry's snapshot is tens of megabytes, which would
//! cost more than the search itself. So after a verified import the client
//! notes the file's identity (device, inode, size, modification and change
//! times; the change time cannot be set back by a user) with the digest it
//! had, its serial and expiry, and which trusted keys (all of them, from flag,
//! environment or config file) accepted it, under
//! `snapshot-files/` in the store, once the file has been still for two
//! seconds (a file changed within one timestamp tick could change again
//! without its times moving). A later search of the same unchanged file
//! under the same keys goes straight to the stored index; anything else goes
//! through the full import again. Files in the store are trusted once
//! verified, as blobs are: a search result never reaches a project.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use mlld_schemas::names;
use mlld_schemas::search::{INDEX_DIR, META_FILE};
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::search_query::SearchIndex;

const MEMO_DIR: &str = "snapshot-files";

/// What the store remembers about a snapshot file it imported.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileMemo {
    path: PathBuf,
    identity: Vec<i128>,
    keys: String,
    snapshot: String,
    /// The signed serial, checked against the rollback floor on every use.
    #[serde(default)]
    serial: Option<u64>,
    expires: String,
}

impl Context {
    /// The search index of the snapshot this command reads.
    pub fn search_index(&self) -> Result<SearchIndex> {
        if self.snapshot.is_none() && self.registry()?.is_sparse() {
            bail!(
                "the store holds a sparse sync, which has no search index; run `mlld-registry sync --full` to search offline, or search on the registry's web page"
            );
        }
        let sha256 = self.snapshot_digest()?;
        let dir = self.store.snapshot_dir(&sha256).join(INDEX_DIR);
        if !dir.join(META_FILE).is_file() {
            bail!(
                "the stored snapshot {sha256} has no search index (it was built by an older indexer or imported by an older client); sync a newer snapshot, or delete {} and run again",
                self.store.snapshot_dir(&sha256).display()
            );
        }
        SearchIndex::open(&dir)
    }

    /// The SHA-256 of the snapshot to read, importing it first if needed,
    /// without re-hashing a file the store has already verified.
    fn snapshot_digest(&self) -> Result<String> {
        // When the store records a current (synced) snapshot, it is the answer when no --snapshot is given.
        let Some(path) = &self.snapshot else {
            return Ok(self.registry()?.snapshot_sha256.clone());
        };
        let memo_path = memo_path(self.store.root(), path)?;
        let keys = self.keys()?.fingerprint();
        let identity = identity(path)?;
        if let Some(memo) = read_memo(&memo_path)
            && memo.identity == identity
            && memo.keys == keys
            && names::check_sha256_hex(&memo.snapshot).is_ok()
            && self.store.snapshot_dir(&memo.snapshot).is_dir()
            && let Some(serial) = memo.serial
        {
            self.check_floor(&self.store.state()?, serial, &memo.snapshot)?;
            let expires = names::parse_timestamp(&memo.expires).map_err(anyhow::Error::msg)?;
            if expires > self.now {
                return Ok(memo.snapshot);
            }
        }
        let verified = self.registry()?;
        if racy(&identity) {
            return Ok(verified.snapshot_sha256.clone());
        }
        let memo = FileMemo {
            path: path.clone(),
            identity,
            keys,
            snapshot: verified.snapshot_sha256.clone(),
            serial: Some(verified.serial()),
            expires: verified.expires().to_string(),
        };
        // A memo that cannot be written only costs speed next time.
        let _ = self
            .store
            .fs()
            .write_atomic(&memo_path, &serde_json::to_vec(&memo)?);
        Ok(memo.snapshot)
    }
}

fn memo_path(store: &Path, snapshot: &Path) -> Result<PathBuf> {
    let canonical = std::fs::canonicalize(snapshot)
        .with_context(|| format!("opening snapshot {}", snapshot.display()))?;
    let key = mlld_schemas::sha256_hex(canonical.to_string_lossy().as_bytes());
    Ok(store.join(MEMO_DIR).join(format!("{key}.json")))
}

fn read_memo(path: &Path) -> Option<FileMemo> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// What changes whenever the file's content can have changed.
#[cfg(unix)]
fn identity(path: &Path) -> Result<Vec<i128>> {
    use std::os::unix::fs::MetadataExt;
    let m =
        std::fs::metadata(path).with_context(|| format!("opening snapshot {}", path.display()))?;
    Ok(vec![
        m.dev().into(),
        m.ino().into(),
        m.size().into(),
        i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
    ])
}

/// A file changed within the timestamp granularity of the file system could
/// change again without its times moving ("racy git"); such a file is not
/// remembered until it has been still for a while.
fn racy(identity: &[i128]) -> bool {
    const STILL_NANOS: i128 = 2_000_000_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    identity
        .get(3..5)
        .is_none_or(|times| times.iter().any(|t| now - t < STILL_NANOS))
}

/// Without a change time to rely on, no file is remembered ([`racy`] says so)
/// and every search hashes the file.
#[cfg(not(unix))]
fn identity(_path: &Path) -> Result<Vec<i128>> {
    Ok(Vec::new())
}
