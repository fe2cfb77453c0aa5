//! A content-addressed blob directory: `blobs/sha256/<2 hex>/<62 hex>`.

use std::path::{Path, PathBuf};

use mlld_schemas::snapshot::blob_path;

/// Blobs written during a build, deduplicated by digest.
pub struct BlobDir {
    root: PathBuf,
}

impl BlobDir {
    /// `root` is the directory that holds `blobs/`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stores `bytes` and returns their SHA-256 hex digest.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<String> {
        let hex = mlld_schemas::sha256_hex(bytes);
        let path = self.root.join(blob_path(&hex));
        if !path.exists() {
            let dir = path.parent().expect("blob paths have a parent");
            std::fs::create_dir_all(dir)?;
            // Concurrent writers of one blob each rename a complete file: the last wins, same bytes.
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            std::io::Write::write_all(&mut tmp, bytes)?;
            tmp.persist(&path).map_err(|e| e.error)?;
        }
        Ok(hex)
    }

    /// Brings blob `hex` over from another blob directory rooted at `from`
    /// (a hard link where the file system allows, else a copy).
    pub fn adopt(&self, from: &Path, hex: &str) -> std::io::Result<()> {
        let dest = self.path_of(hex);
        if dest.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(dest.parent().expect("blob paths have a parent"))?;
        let src = from.join(blob_path(hex));
        match std::fs::hard_link(&src, &dest) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(_) => std::fs::copy(&src, &dest).map(|_| ()),
        }
    }

    pub fn path_of(&self, hex: &str) -> PathBuf {
        self.root.join(blob_path(hex))
    }
}
