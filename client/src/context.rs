//! What every command needs: the project, the store, the configuration, the
//! trusted keys and the snapshot to read, loaded on first use.

use std::cell::OnceCell;
use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::config::{ProjectConfig, UserConfig, user_config_path};
use crate::project::Project;
use crate::registry::Registry;
use crate::store::{Store, SyncState};
use crate::sync::snapshot_import::{self, Limits};
use crate::trust::TrustedKeys;

/// The global flags every command shares.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub trusted_key: Option<PathBuf>,
    pub snapshot: Option<PathBuf>,
    pub yes: bool,
    pub json: bool,
    pub offline: bool,
    /// Read a `--snapshot FILE` older than the store's rollback floor.
    pub allow_older: bool,
    /// Choose new content and audit from an expired snapshot.
    pub allow_expired: bool,
}

pub struct Context {
    pub project: Project,
    pub store: Store,
    pub config: UserConfig,
    pub trusted_key: Option<PathBuf>,
    pub snapshot: Option<PathBuf>,
    pub yes: bool,
    pub json: bool,
    pub offline: bool,
    pub allow_older: bool,
    pub allow_expired: bool,
    pub now: time::OffsetDateTime,
    project_config: OnceCell<ProjectConfig>,
    registry: OnceCell<Registry>,
}

impl Context {
    pub fn new(project: Project, store: Store, config: UserConfig, flags: Flags) -> Self {
        Self {
            project,
            store,
            config,
            trusted_key: flags.trusted_key,
            snapshot: flags.snapshot,
            yes: flags.yes,
            json: flags.json,
            offline: flags.offline,
            allow_older: flags.allow_older,
            allow_expired: flags.allow_expired,
            now: time::OffsetDateTime::now_utc(),
            project_config: OnceCell::new(),
            registry: OnceCell::new(),
        }
    }

    pub fn keys(&self) -> Result<TrustedKeys> {
        TrustedKeys::load(self.trusted_key.as_deref(), &self.config.trusted_keys)
    }

    pub fn project_config(&self) -> Result<&ProjectConfig> {
        if let Some(c) = self.project_config.get() {
            return Ok(c);
        }
        let c = ProjectConfig::load(self.project.root())?;
        Ok(self.project_config.get_or_init(|| c))
    }

    /// Whether usage statistics are recorded (off unless a config enables them).
    pub fn stats_enabled(&self) -> bool {
        match self.project_config() {
            Ok(c) => c.stats.unwrap_or(self.config.stats),
            Err(_) => false,
        }
    }

    /// The registry of `--snapshot FILE` (verified whole), else of the
    /// synced snapshot (its query store, read a shard at a time), expired
    /// or not: content pinned by integrity stays usable offline. An expired
    /// one is announced once on stderr; what chooses new content asks
    /// [`Context::require_fresh`] first.
    pub fn registry(&self) -> Result<&Registry> {
        if let Some(r) = self.registry.get() {
            return Ok(r);
        }
        let keys = self.keys()?;
        let registry = match &self.snapshot {
            Some(path) => {
                let state = self.store.state()?;
                let allow_older = self.allow_older;
                let accept =
                    |serial: u64, sha: &str| check_floor(&state, serial, sha, path, allow_older);
                Registry::from_verified(snapshot_import::import_accepting(
                    &self.store,
                    path,
                    &keys,
                    None,
                    Limits::default(),
                    &accept,
                )?)
            }
            None => self.current(&keys)?,
        };
        if let Some(expired) = Expired::at(registry.serial(), registry.expires(), self.now) {
            eprintln!(
                "warning: {expired}; locked content still installs from it, but newer revisions and advisories are unknown: run `mlld-registry sync`"
            );
        }
        Ok(self.registry.get_or_init(|| registry))
    }

    /// Refuses to `action` (choose new content, audit) from an expired
    /// snapshot unless `--allow-expired` is given; returns the expiry when
    /// allowed, for the caller to say what may be stale.
    pub fn require_fresh(&self, action: &str) -> Result<Option<Expired>> {
        let r = self.registry()?;
        let Some(expired) = Expired::at(r.serial(), r.expires(), self.now) else {
            return Ok(None);
        };
        if !self.allow_expired {
            bail!(
                "{expired}, and {action} needs a current one: run `mlld-registry sync` to refresh it, or pass --allow-expired to go ahead without the revisions and advisories published since"
            );
        }
        Ok(Some(expired))
    }

    /// Content with this integrity from any snapshot in the store (current
    /// first): an old lock's revisions may only be in an earlier snapshot.
    /// Content-addressed, so the bytes are checked by hashing them; a store
    /// without a query store is read through its manifest, signature
    /// checked again.
    pub fn stored_blob(&self, integrity: &str) -> Result<Option<Vec<u8>>> {
        let hex = integrity.strip_prefix("sha256:").unwrap_or(integrity);
        mlld_schemas::names::check_sha256_hex(hex).map_err(anyhow::Error::msg)?;
        let current = self.registry().ok();
        if let Some(r) = current
            && let Ok(bytes) = r.read_blob(hex)
        {
            return Ok(Some(bytes));
        }
        let Ok(dirs) = std::fs::read_dir(self.store.root().join("snapshots")) else {
            return Ok(None);
        };
        for dir in dirs.flatten() {
            let Some(sha) = dir.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if current.is_some_and(|r| r.snapshot_sha256 == sha) {
                continue;
            }
            if let Some(bytes) = self.old_blob(&sha, hex)? {
                return Ok(Some(bytes));
            }
        }
        Ok(None)
    }

    /// The blob `hex` of the stored snapshot `sha`, if it has it.
    fn old_blob(&self, sha: &str, hex: &str) -> Result<Option<Vec<u8>>> {
        let dir = self.store.snapshot_dir(sha);
        if dir.join(crate::registry::QUERY_DIR).is_dir() {
            return crate::registry::read_stored_blob(&dir, &OnceCell::new(), hex);
        }
        let path = mlld_schemas::snapshot::blob_path(hex);
        let Ok(Some(v)) = self.store.load_manifest(sha, &self.keys()?) else {
            return Ok(None);
        };
        if !v.manifest.members.contains_key(&path) {
            return Ok(None);
        }
        v.read_member(&path).map(Some)
    }

    /// The rollback floor applies to `--snapshot FILE` as to `sync`: an
    /// older snapshot could bring back revisions since withdrawn and hide
    /// newer advisories. `--allow-older` reads it anyway, with a warning.
    pub fn check_floor(&self, state: &SyncState, serial: u64, sha256: &str) -> Result<()> {
        match &self.snapshot {
            Some(path) => check_floor(state, serial, sha256, path, self.allow_older),
            None => state
                .check_serial(serial, sha256)
                .map_err(anyhow::Error::msg),
        }
    }

    fn current(&self, keys: &TrustedKeys) -> Result<Registry> {
        let state = self.store.state()?;
        let Some(current) = state.current else {
            bail!(
                "no registry snapshot yet: run `mlld-registry sync --from URL` (or set MLLD_REGISTRY_URL, or \"registry\" in {}), or pass --snapshot FILE",
                user_config_path().map_or("the config file".into(), |p| p.display().to_string())
            );
        };
        if let Some(sparse) = &current.sparse {
            let timeouts = crate::sync::site::configured_timeouts(None, None, &self.config)?;
            return Registry::open_sparse(
                &self.store,
                &current,
                sparse,
                keys,
                self.offline,
                timeouts,
            );
        }
        if let Some(r) = Registry::open_stored(&self.store, &current.snapshot, keys)? {
            return Ok(r);
        }
        let Some(v) = self.store.load_manifest(&current.snapshot, keys)? else {
            bail!(
                "the current snapshot {} is missing from the store {}; run `mlld-registry sync`",
                current.snapshot,
                self.store.root().display()
            );
        };
        Ok(Registry::from_verified(v))
    }
}

/// See [`Context::check_floor`].
fn check_floor(
    state: &SyncState,
    serial: u64,
    sha256: &str,
    path: &std::path::Path,
    allow_older: bool,
) -> Result<()> {
    let Err(refusal) = state.check_serial(serial, sha256) else {
        return Ok(());
    };
    if allow_older {
        eprintln!(
            "warning: {refusal}; reading {} anyway (--allow-older): it may lack fixes and advisories published since",
            path.display()
        );
        return Ok(());
    }
    bail!(
        "{refusal}: --snapshot {} is older than what this store has already accepted from the registry, so it could resolve revisions since replaced (a rollback attack) and hide advisories published since. Nothing was read; use a newer snapshot (`mlld-registry sync`), or pass --allow-older to read it at that risk",
        path.display()
    )
}

/// A snapshot past its expiry: which, since when, how long ago.
#[derive(Clone, Debug)]
pub struct Expired {
    pub serial: u64,
    pub expires: String,
    pub days_ago: i64,
}

impl Expired {
    /// `Some` when `manifest` expired before `now` (an unreadable expiry counts as expired).
    pub fn of(manifest: &mlld_schemas::Manifest, now: time::OffsetDateTime) -> Option<Self> {
        Self::at(manifest.serial, &manifest.expires, now)
    }

    /// `Some` when the snapshot `serial`, expiring at `expires`, expired before `now`.
    pub fn at(serial: u64, expires: &str, now: time::OffsetDateTime) -> Option<Self> {
        let at = mlld_schemas::names::parse_timestamp(expires).ok();
        if at.is_some_and(|at| at > now) {
            return None;
        }
        Some(Self {
            serial,
            expires: expires.to_string(),
            days_ago: at.map_or(0, |at| (now - at).whole_days()),
        })
    }
}

impl std::fmt::Display for Expired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ago = match self.days_ago {
            0 => "less than a day ago".to_string(),
            1 => "1 day ago".to_string(),
            n => format!("{n} days ago"),
        };
        write!(
            f,
            "the registry snapshot (serial {}) expired {ago}, at {}",
            self.serial,
            mlld_schemas::terminal::terminal_safe(&self.expires)
        )
    }
}
