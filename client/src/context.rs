//! What every command needs: the project, the store, the trusted keys and
//! the snapshot to read, loaded on first use.

use std::cell::OnceCell;
use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::project::Project;
use crate::snapshot_import::{self, Limits};
use crate::store::{Store, VerifiedManifest};
use crate::trust::TrustedKeys;

pub struct Context {
    pub project: Project,
    pub store: Store,
    pub trusted_key: Option<PathBuf>,
    pub snapshot: Option<PathBuf>,
    pub yes: bool,
    pub now: time::OffsetDateTime,
    manifest: OnceCell<VerifiedManifest>,
}

impl Context {
    pub fn new(
        project: Project,
        store: Store,
        trusted_key: Option<PathBuf>,
        snapshot: Option<PathBuf>,
        yes: bool,
    ) -> Self {
        Self {
            project,
            store,
            trusted_key,
            snapshot,
            yes,
            now: time::OffsetDateTime::now_utc(),
            manifest: OnceCell::new(),
        }
    }

    pub fn keys(&self) -> Result<TrustedKeys> {
        TrustedKeys::load(self.trusted_key.as_deref(), &[])
    }

    /// The verified manifest of `--snapshot FILE`.
    pub fn manifest(&self) -> Result<&VerifiedManifest> {
        if let Some(m) = self.manifest.get() {
            return Ok(m);
        }
        let Some(path) = &self.snapshot else {
            bail!(
                "no registry snapshot to read: pass --snapshot FILE (a snapshots/<sha256>.tar.zst from a registry site)"
            );
        };
        let keys = self.keys()?;
        let verified =
            snapshot_import::import(&self.store, path, &keys, self.now, Limits::default())?;
        Ok(self.manifest.get_or_init(|| verified))
    }
}
