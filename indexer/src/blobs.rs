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

    pub fn path_of(&self, hex: &str) -> PathBuf {
        self.root.join(blob_path(hex))
    }
}
