//! Content-addressed blob directories: `blobs/sha256/<2 hex>/<62 hex>`.
//!
//! A build writes the blobs it fetched into its staging root and finds the
//! ones it reuses in the previous build's blob root (the site's loose blobs,
//! or a previous snapshot unpacked), so an incremental build copies nothing.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

// foldhash, not SipHash: digests are looked up a few million times a
// build, and a random seed per process keeps their table's order unguessable.
use hashbrown::HashSet;

use mlld_schemas::snapshot::blob_path;

pub struct BlobDir {
    /// Holds `blobs/` with what this build fetched.
    root: PathBuf,
    /// Holds `blobs/` of the previous build, read-only.
    previous: Option<PathBuf>,
    /// Digests known to be under `previous` (checked when it was loaded),
    /// and those this build put under `root`: with both known, finding a
    /// blob costs no file-system lookup (hundreds of thousands per build).
    /// Digests as bytes: a million blobs' hex strings would take 120 MB.
    previous_digests: Option<HashSet<[u8; 32]>>,
    fresh: Mutex<HashSet<[u8; 32]>>,
}

impl BlobDir {
    pub fn new(root: impl Into<PathBuf>, previous: Option<PathBuf>) -> Self {
        Self {
            root: root.into(),
            previous,
            previous_digests: None,
            fresh: Mutex::default(),
        }
    }

    /// Declares which blobs `previous` holds (all of them verified present),
    /// so lookups need not touch the file system.
    pub fn with_previous_digests(mut self, digests: HashSet<[u8; 32]>) -> Self {
        self.previous_digests = Some(digests);
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the previous build's blobs are read from, if anywhere.
    pub fn previous_root(&self) -> Option<&Path> {
        self.previous.as_deref()
    }

    /// Whether the build is made in place on `site`: its previous blobs are
    /// the site's own loose ones, so what the site already holds (blobs,
    /// unchanged pages, kept search parts) need not be written again. A site
    /// built elsewhere (a new directory, an object store's staging) gets it all.
    pub fn builds_in_place(&self, site: &Path) -> bool {
        self.previous_root() == Some(site)
    }

    /// The digests of the blobs this build put under [`Self::root`].
    pub fn fresh_digests(&self) -> Vec<[u8; 32]> {
        let fresh = self.fresh.lock().expect("no panics while holding the lock");
        fresh.iter().copied().collect()
    }

    /// Stores `bytes` unless a blob with their digest exists; returns the SHA-256 hex digest.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let hex = mlld_schemas::sha256_hex(bytes);
        if !self.has(&hex) {
            let path = self.root.join(blob_path(&hex));
            let dir = path.parent().expect("blob paths have a parent");
            std::fs::create_dir_all(dir)?;
            // Concurrent writers of one blob each rename a complete file: the last wins, same bytes.
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            std::io::Write::write_all(&mut tmp, bytes)?;
            mlld_fsutil::make_readable(tmp.as_file())?;
            tmp.persist(&path).map_err(|e| e.error)?;
            if let Some(digest) = digest_bytes(&hex) {
                self.fresh
                    .lock()
                    .expect("no panics while holding the lock")
                    .insert(digest);
            }
        }
        Ok(hex)
    }

    /// Whether the blob `digest` is available: [`Self::has`] by its bytes.
    pub fn has_digest(&self, digest: &[u8; 32]) -> bool {
        match &self.previous_digests {
            Some(known) => self.known(known, digest),
            None => self.locate(&hex::encode(digest)).is_some(),
        }
    }

    /// Whether `digest` is among the previous build's `known` digests (when
    /// there is a previous build) or this build's.
    fn known(&self, known: &HashSet<[u8; 32]>, digest: &[u8; 32]) -> bool {
        // Most blobs checked are the previous build's: that set needs no lock.
        (self.previous.is_some() && known.contains(digest))
            || (self.fresh.lock())
                .expect("no panics while holding the lock")
                .contains(digest)
    }

    /// Whether blob `hex` is available, as [`Self::locate`] finds it but
    /// without making its path when the digests are known (a build checks
    /// every blob of every unchanged module).
    pub fn has(&self, hex: &str) -> bool {
        match (&self.previous_digests, digest_bytes(hex)) {
            (Some(known), Some(digest)) => self.known(known, &digest),
            _ => self.locate(hex).is_some(),
        }
    }

    /// Errs unless blob `hex` is available (see [`Self::require`]), without making its path.
    pub fn ensure(&self, hex: &str) -> std::io::Result<()> {
        if self.has(hex) {
            Ok(())
        } else {
            Err(missing(hex))
        }
    }

    /// Where blob `hex` is: this build's root first, then the previous build's.
    pub fn locate(&self, hex: &str) -> Option<PathBuf> {
        let rel = blob_path(hex);
        if let Some(known) = &self.previous_digests {
            let digest = digest_bytes(hex)?;
            if self
                .fresh
                .lock()
                .expect("no panics while holding the lock")
                .contains(&digest)
            {
                return Some(self.root.join(rel));
            }
            return match &self.previous {
                Some(previous) if known.contains(&digest) => Some(previous.join(rel)),
                _ => None,
            };
        }
        std::iter::once(&self.root)
            .chain(&self.previous)
            .map(|r| r.join(&rel))
            .find(|p| p.is_file())
    }

    /// Errs unless blob `hex` is available to the snapshot.
    pub fn require(&self, hex: &str) -> std::io::Result<PathBuf> {
        self.locate(hex).ok_or_else(|| missing(hex))
    }
}

fn missing(hex: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("blob {hex} is in neither this build nor the previous one"),
    )
}

/// Whether `root` holds every blob of `blobs` (sorted by digest, as a
/// manifest's members are) as a regular file of its size.
///
/// One listing per two-hex-digit folder (at most 256), each file's size
/// asked of the open folder rather than by a path walked from the root; a
/// symbolic link counts as missing. A torn blob (another size) is found
/// here, and the build then takes every blob from the previous snapshot.
pub fn dir_holds_all(root: &Path, blobs: &[([u8; 32], u64)]) -> bool {
    use rayon::prelude::*;
    let folders: Vec<_> = blobs.chunk_by(|a, b| a.0[0] == b.0[0]).collect();
    folders.par_iter().all(|folder| {
        let dir = root.join(blob_path(&hex::encode(folder[0].0)));
        let dir = dir.parent().expect("blob paths have a parent");
        // A linked folder is not the site's: its blobs count as missing.
        if !std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
            return false;
        }
        let Some(mut present) = regular_blobs(dir) else {
            return false;
        };
        present.sort_unstable();
        let mut present = present.iter().peekable();
        folder.iter().all(|(digest, size)| {
            let rest: &[u8] = &digest[1..];
            while present.next_if(|(p, _)| p.as_slice() < rest).is_some() {}
            present
                .next_if(|(p, len)| p.as_slice() == rest && len == size)
                .is_some()
        })
    })
}

/// The digests' last 31 bytes and the sizes of the regular files the blob
/// folder `dir` holds; `None` when it cannot be listed.
fn regular_blobs(dir: &Path) -> Option<Vec<([u8; 31], u64)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        if !entry.file_type().ok()?.is_file() {
            continue;
        }
        let mut rest = [0; 31];
        let name = entry.file_name();
        if decode_lower_hex(name.as_encoded_bytes(), &mut rest) {
            // Not following a link: the listing said it is a regular file.
            found.push((rest, entry.metadata().ok()?.len()));
        }
    }
    Some(found)
}

/// Decodes `text` into `out` if it is exactly `out` in lower-case hex, the
/// only spelling a blob's path has.
pub(crate) fn decode_lower_hex(text: &[u8], out: &mut [u8]) -> bool {
    text.len() == out.len() * 2
        && text.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && hex::decode_to_slice(text, out).is_ok()
}

/// A SHA-256 digest from its hex form; `None` for anything else.
fn digest_bytes(hex: &str) -> Option<[u8; 32]> {
    let mut digest = [0; 32];
    hex::decode_to_slice(hex, &mut digest).ok()?;
    Some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_and_ensure_agree_with_locate_with_and_without_known_digests() {
        let dir = tempfile::tempdir().unwrap();
        let previous = dir.path().join("previous");
        let old = mlld_schemas::sha256_hex(b"old");
        let old_path = previous.join(blob_path(&old));
        std::fs::create_dir_all(old_path.parent().unwrap()).unwrap();
        std::fs::write(&old_path, b"old").unwrap();
        let absent = mlld_schemas::sha256_hex(b"absent");
        let by_stat = BlobDir::new(dir.path().join("a"), Some(previous.clone()));
        let known = BlobDir::new(dir.path().join("b"), Some(previous))
            .with_previous_digests([digest_bytes(&old).unwrap()].into_iter().collect());
        for blobs in [&by_stat, &known] {
            let new = blobs.put(b"new").unwrap();
            for hex in [&old, &new, &absent, &"not hex".to_string()] {
                assert_eq!(blobs.has(hex), blobs.locate(hex).is_some(), "{hex}");
                if let Some(digest) = digest_bytes(hex) {
                    assert_eq!(blobs.has_digest(&digest), blobs.has(hex), "{hex}");
                }
                assert_eq!(blobs.ensure(hex).is_ok(), blobs.require(hex).is_ok());
            }
            assert!(blobs.has(&old) && blobs.has(&new) && !blobs.has(&absent));
            assert_eq!(
                blobs.ensure(&absent).unwrap_err().kind(),
                std::io::ErrorKind::NotFound
            );
        }
    }

    #[test]
    fn a_blob_folder_is_complete_only_with_every_blob_a_regular_file_of_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // 400 blobs over 256 folders: some share one. The last is left out
        // of the listed members.
        let contents: Vec<Vec<u8>> = (0..400).map(|i| format!("blob {i}").into_bytes()).collect();
        let mut listed: Vec<([u8; 32], u64)> = Vec::new();
        for bytes in &contents {
            let hex = mlld_schemas::sha256_hex(bytes);
            let path = root.join(blob_path(&hex));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
            listed.push((digest_bytes(&hex).unwrap(), bytes.len() as u64));
        }
        listed.sort_unstable();
        let (listed, extra) = listed.split_at(listed.len() - 1);
        assert!(
            listed
                .chunk_by(|a, b| a.0[0] == b.0[0])
                .any(|f| f.len() > 1)
        );
        assert!(dir_holds_all(root, listed));
        assert!(dir_holds_all(root, &[]));
        let path_of = |d: &[u8; 32]| root.join(blob_path(&hex::encode(d)));

        // Missing, a symbolic link, a directory: each makes the folder incomplete.
        let victim = path_of(&listed[200].0);
        let kept = std::fs::read(&victim).unwrap();
        std::fs::remove_file(&victim).unwrap();
        assert!(!dir_holds_all(root, listed));
        std::fs::write(root.join("elsewhere"), &kept).unwrap();
        std::os::unix::fs::symlink(root.join("elsewhere"), &victim).unwrap();
        assert!(!dir_holds_all(root, listed));
        std::fs::remove_file(&victim).unwrap();
        std::fs::create_dir(&victim).unwrap();
        assert!(!dir_holds_all(root, listed));
        std::fs::remove_dir(&victim).unwrap();
        // Torn: another size.
        std::fs::write(&victim, &kept[1..]).unwrap();
        assert!(!dir_holds_all(root, listed));
        std::fs::write(&victim, &kept).unwrap();
        assert!(dir_holds_all(root, listed));
        // Named in capitals: not the blob's path.
        let upper =
            victim.with_file_name(victim.file_name().unwrap().to_str().unwrap().to_uppercase());
        std::fs::rename(&victim, &upper).unwrap();
        assert!(!dir_holds_all(root, listed));
        std::fs::rename(&upper, &victim).unwrap();
        // The folder a link to a copy of itself.
        let folder = victim.parent().unwrap();
        let copy = root.join("folder-copy");
        std::fs::rename(folder, &copy).unwrap();
        std::os::unix::fs::symlink(&copy, folder).unwrap();
        assert!(!dir_holds_all(root, listed));
        std::fs::remove_file(folder).unwrap();
        std::fs::rename(&copy, folder).unwrap();
        assert!(dir_holds_all(root, listed));

        // A blob whose whole folder is gone.
        std::fs::remove_dir_all(path_of(&extra[0].0).parent().unwrap()).unwrap();
        let all: Vec<_> = listed.iter().chain(extra).copied().collect();
        assert!(!dir_holds_all(root, &all));
    }
}
