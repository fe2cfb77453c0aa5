//! The client's store: verified snapshots and their blobs, shared by every
//! project of the user.
//!
//! Layout under `$MLLD_REGISTRY_HOME`, else `$XDG_DATA_HOME/mlld-registry`,
//! else `~/.local/share/mlld-registry`:
//!
//! ```text
//! blobs/sha256/<2 hex>/<62 hex>          content-addressed, verified before entering
//! snapshots/<sha256>/manifest.json       the signed manifest of an imported snapshot
//! snapshots/<sha256>/manifest.json.minisig
//! snapshots/<sha256>/index/              its search index, verified like the blobs, memory-mapped by `search`
//! snapshot-files/<sha256 of a path>.json which stored snapshot an unchanged snapshot file is (see `search_store`)
//! tmp/                                   staging; anything here is garbage
//! ```
//!
//! Nothing enters `blobs/` or `snapshots/` unverified, so a reader may trust
//! a blob's name, and re-hashes it anyway before it reaches a project.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mlld_schemas::snapshot::{MANIFEST_NAME, MANIFEST_SIG_NAME, blob_path};
use mlld_schemas::{Manifest, names};

use crate::trust::TrustedKeys;

pub struct Store {
    root: PathBuf,
}

/// A manifest whose signature has been checked.
pub struct VerifiedManifest {
    /// SHA-256 of the snapshot file it came from.
    pub snapshot_sha256: String,
    pub manifest: Manifest,
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
        Ok(Self { root })
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn tmp_dir(&self) -> Result<PathBuf> {
        let dir = self.root.join("tmp");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    pub fn blob(&self, sha256: &str) -> PathBuf {
        self.root.join(blob_path(sha256))
    }

    pub fn snapshot_dir(&self, sha256: &str) -> PathBuf {
        self.root.join("snapshots").join(sha256)
    }

    /// Reads a blob and checks its digest: a store file changed on disk is refused.
    pub fn read_blob(&self, sha256: &str) -> Result<Vec<u8>> {
        names::check_sha256_hex(sha256).map_err(anyhow::Error::msg)?;
        let path = self.blob(sha256);
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "blob {sha256} is missing from the store ({}); run `mlld-registry sync` again",
                path.display()
            )
        })?;
        let actual = mlld_schemas::sha256_hex(&bytes);
        if actual != sha256 {
            bail!(
                "store blob {} is corrupt (its SHA-256 is {actual}); delete it and sync again",
                path.display()
            );
        }
        Ok(bytes)
    }

    /// Loads an imported snapshot's manifest, checking its signature again.
    pub fn load_manifest(
        &self,
        snapshot_sha256: &str,
        keys: &TrustedKeys,
    ) -> Result<Option<VerifiedManifest>> {
        let dir = self.snapshot_dir(snapshot_sha256);
        let bytes = match std::fs::read(dir.join(MANIFEST_NAME)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        let sig = std::fs::read_to_string(dir.join(MANIFEST_SIG_NAME))
            .with_context(|| format!("reading the manifest signature in {}", dir.display()))?;
        keys.verify("stored manifest", &bytes, &sig)?;
        let manifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("stored manifest in {} is malformed", dir.display()))?;
        Ok(Some(VerifiedManifest {
            snapshot_sha256: snapshot_sha256.to_string(),
            manifest,
        }))
    }
}
