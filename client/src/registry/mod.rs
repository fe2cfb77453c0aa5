//! What commands read the registry through: a snapshot's records, loaded a
//! name at a time.
//!
//! `sync` verifies a snapshot whole (signature, every member's hash) and
//! then writes its *query store*, `snapshots/<sha256>/query/` (see
//! [`tables`] and [`records`]): the records of each name, bucketed by a hash
//! of the name (`mlld_schemas::shard`), and a sorted index of the pack's
//! blobs. Later commands open that and read only the records of the names
//! they look up, each checked against its own digest, and the blobs they
//! install, each hashed against the digest asked for. Nothing in it is
//! trusted that `sync` did not write from verified bytes; the key that
//! signed the snapshot must still be trusted. A store without a query store
//! in this format (synced by an older client), and `--snapshot FILE`, are
//! read from the verified manifest in memory instead, through the same
//! interface.

pub mod records;
mod spill;
mod stream;
pub mod tables;
pub mod write;

pub use stream::{ManifestCheck, RecordSpill, Streamed, parse as parse_manifest};

use std::cell::OnceCell;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use mlld_schemas::shard::{self, Shard};
use mlld_schemas::{AdvisoryRecord, ModuleRecord, ModuleRef, VersionedModule, names};
use serde::{Deserialize, Serialize};

use crate::sparse::SparseSource;
use crate::store::{Store, VerifiedManifest};
use crate::trust::TrustedKeys;
use records::Records;

pub const QUERY_DIR: &str = "query";
/// Bump when the query store's files change shape: older stores are then
/// read from their manifest until the next `sync --repair` or sync.
pub const QUERY_FORMAT: u32 = 2;
const MAX_HEAD_BYTES: u64 = 1 << 20;

/// `query/head2.json`: what the snapshot is, without its records.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Head {
    pub format: u32,
    pub snapshot: String,
    pub key_id: String,
    pub serial: u64,
    pub created: String,
    pub expires: String,
    pub shard_bits: u32,
    pub modules: usize,
    pub versioned: usize,
    pub advisories: usize,
}

/// A verified snapshot, as commands see it.
pub struct Registry {
    pub snapshot_sha256: String,
    pub key_id: String,
    head: Head,
    dir: PathBuf,
    source: Source,
    /// The shards of the manifest path, split once (every cell filled);
    /// the query store caches its records itself.
    shards: Vec<OnceCell<Box<Shard>>>,
    pack: OnceCell<std::fs::File>,
}

enum Source {
    /// The query store: each name's records read on demand.
    Stored(Records),
    /// The whole verified manifest, already split (every cell filled).
    Manifest(Box<VerifiedManifest>),
    /// A sparse store: shards and blobs fetched from the site on demand.
    Sparse(Box<SparseSource>),
}

/// The records of a name the snapshot knows nothing about.
static NOTHING: Shard = Shard {
    modules: Vec::new(),
    versioned: Vec::new(),
    advisories: Vec::new(),
    rejected: Vec::new(),
    dependents: std::collections::BTreeMap::new(),
};

impl Registry {
    /// The query store of the stored snapshot `sha256`; `None` when it has
    /// none in this format (the caller reads the manifest instead).
    pub fn open_stored(store: &Store, sha256: &str, keys: &TrustedKeys) -> Result<Option<Self>> {
        names::check_sha256_hex(sha256).map_err(anyhow::Error::msg)?;
        let dir = store.snapshot_dir(sha256);
        let query = dir.join(QUERY_DIR);
        let head_path = query.join(tables::HEAD_NAME);
        if !head_path.is_file() {
            return Ok(None);
        }
        let head: Head = tables::read_checked(&head_path, MAX_HEAD_BYTES)
            .and_then(|b| Ok(serde_json::from_slice(&b)?))
            .map_err(|e| damaged(&dir, e))?;
        if head.format != QUERY_FORMAT {
            return Ok(None);
        }
        if head.snapshot != sha256 {
            return Err(damaged(&dir, "its head names another snapshot"));
        }
        if !keys.trusts(&head.key_id) {
            bail!(
                "the stored snapshot {sha256} was signed by key {}, which is no longer trusted; run `mlld-registry sync` to fetch one signed by a trusted key",
                head.key_id
            );
        }
        let records =
            Records::open(&query.join(records::RECORDS_NAME)).map_err(|e| damaged(&dir, e))?;
        if records.bits() != head.shard_bits {
            return Err(damaged(&dir, "its record table does not match its head"));
        }
        Ok(Some(Self {
            snapshot_sha256: sha256.to_string(),
            key_id: head.key_id.clone(),
            shards: Vec::new(),
            head,
            dir,
            source: Source::Stored(records),
            pack: OnceCell::new(),
        }))
    }

    /// The sparse store `current` names (see [`crate::sparse`]).
    pub fn open_sparse(
        store: &Store,
        current: &crate::store::Current,
        sparse: &crate::store::SparseCurrent,
        keys: &TrustedKeys,
        offline: bool,
        timeouts: crate::sync::site::Timeouts,
    ) -> Result<Self> {
        if !keys.trusts(&current.key_id) {
            bail!(
                "the sparse snapshot (serial {}) was signed by key {}, which is no longer trusted; run `mlld-registry sync` to fetch one signed by a trusted key",
                current.serial,
                current.key_id
            );
        }
        let source = SparseSource::open(store, sparse, offline, timeouts)?;
        let root = &source.root;
        let head = Head {
            format: QUERY_FORMAT,
            snapshot: current.snapshot.clone(),
            key_id: current.key_id.clone(),
            serial: root.serial,
            created: root.created.clone(),
            expires: root.expires.clone(),
            shard_bits: root.shard_bits,
            modules: root.modules,
            versioned: root.versioned,
            advisories: root.advisories,
        };
        Ok(Self {
            snapshot_sha256: current.snapshot.clone(),
            key_id: current.key_id.clone(),
            shards: empty_cells(head.shard_bits),
            head,
            dir: store.root().join(crate::sparse::SPARSE_DIR),
            source: Source::Sparse(Box::new(source)),
            pack: OnceCell::new(),
        })
    }

    /// True for a sparse store, which has no search index and fetches
    /// what it lacks.
    pub fn is_sparse(&self) -> bool {
        matches!(self.source, Source::Sparse(_))
    }

    /// Bytes this process fetched from the site (a sparse store's only).
    pub fn fetched_bytes(&self) -> u64 {
        match &self.source {
            Source::Sparse(s) => s.fetched.get(),
            _ => 0,
        }
    }

    /// A registry over a whole verified manifest, held in memory.
    pub fn from_verified(verified: VerifiedManifest) -> Self {
        let m = &verified.manifest;
        let bits = shard::bits_for(m.modules.len() + m.versioned.len());
        let shards = empty_cells(bits);
        let split = shard::split(
            m.modules.iter().cloned(),
            m.versioned.iter().cloned(),
            &m.advisories,
            m.rejected.iter().cloned(),
            bits,
        );
        for (cell, s) in shards.iter().zip(split) {
            let _ = cell.set(Box::new(s));
        }
        let head = Head {
            format: QUERY_FORMAT,
            snapshot: verified.snapshot_sha256.clone(),
            key_id: verified.key_id.clone(),
            serial: m.serial,
            created: m.created.clone(),
            expires: m.expires.clone(),
            shard_bits: bits,
            modules: m.modules.len(),
            versioned: m.versioned.len(),
            advisories: m.advisories.len(),
        };
        Self {
            snapshot_sha256: verified.snapshot_sha256.clone(),
            key_id: verified.key_id.clone(),
            head,
            dir: verified.dir().to_path_buf(),
            source: Source::Manifest(Box::new(verified)),
            shards,
            pack: OnceCell::new(),
        }
    }

    /// A registry over a manifest the caller already trusts (unit tests).
    #[cfg(test)]
    pub(crate) fn from_manifest(manifest: mlld_schemas::Manifest) -> Self {
        Self::from_verified(VerifiedManifest::new(
            "0".repeat(64),
            "test".into(),
            manifest,
            PathBuf::new(),
        ))
    }

    pub fn serial(&self) -> u64 {
        self.head.serial
    }

    pub fn created(&self) -> &str {
        &self.head.created
    }

    pub fn expires(&self) -> &str {
        &self.head.expires
    }

    /// Gist modules in the snapshot.
    pub fn module_count(&self) -> usize {
        self.head.modules
    }

    /// The store directory of this snapshot.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Everything about `user/name` (either layout): from the query store
    /// the records of that name alone, from a manifest or a sparse store
    /// the whole shard holding it. Filter by name, as [`Shard::module`] does.
    pub fn shard(&self, user: &str, name: &str) -> Result<&Shard> {
        if let Source::Stored(records) = &self.source {
            let found = records.get(user, name).map_err(|e| damaged(&self.dir, e))?;
            return Ok(found.unwrap_or(&NOTHING));
        }
        let n = shard::shard_of(&shard::shard_key(user, name), self.head.shard_bits);
        let cell = &self.shards[n as usize];
        if let Some(s) = cell.get() {
            return Ok(s);
        }
        match &self.source {
            Source::Sparse(sparse) => {
                let s = sparse.shard(n)?;
                Ok(cell.get_or_init(|| Box::new(s)))
            }
            _ => bail!("shard {n} is missing from the verified manifest's split"),
        }
    }

    /// The gist module `user/name` (users case-insensitively).
    pub fn module(&self, user: &str, name: &str) -> Result<Option<&ModuleRecord>> {
        Ok(self.shard(user, name)?.module(user, name))
    }

    /// The versioned module `@author/name`.
    pub fn versioned(&self, author: &str, name: &str) -> Result<Option<&VersionedModule>> {
        Ok(self.shard(author, name)?.versioned(author, name))
    }

    /// The module a reference names, or an error: rejected by the indexer
    /// (with why), or unknown (with near names).
    pub fn find(&self, reference: &ModuleRef) -> Result<&ModuleRecord> {
        let (user, name) = (&reference.user, &reference.module);
        match self.module(user, name)? {
            Some(m) => Ok(m),
            None => Err(self.missing(user, name)),
        }
    }

    /// Why `user/name` is not in the snapshot: rejected by the indexer
    /// (with the reason it recorded), or unknown (with near names).
    pub fn missing(&self, user: &str, name: &str) -> anyhow::Error {
        let rejected = match self.rejected_near(user, name) {
            Ok(r) => r,
            Err(e) => return e,
        };
        match crate::rejected::module_message(rejected, self.serial(), user, name) {
            Some(message) => anyhow::anyhow!(message),
            None => self.not_found(&format!("{user}/{name}")),
        }
    }

    /// What the indexer rejected of `user/name` (and perhaps of names
    /// sharing its shard).
    pub fn rejected_near(&self, user: &str, name: &str) -> Result<&[mlld_schemas::RejectedRecord]> {
        Ok(&self.shard(user, name)?.rejected)
    }

    /// "Not in the snapshot", with the names closest to `full_name`.
    fn not_found(&self, full_name: &str) -> anyhow::Error {
        let near = self.near_names(full_name, 3);
        let hint = if near.is_empty() {
            ".".to_string()
        } else {
            format!("; did you mean {}?", near.join(", "))
        };
        anyhow::anyhow!(
            "module {} is not in the registry snapshot (serial {}){hint} If it was registered recently, run `mlld-registry sync`.",
            crate::commands::safe(full_name),
            self.serial()
        )
    }

    /// Up to `limit` names close to `wanted`, from the snapshot's search
    /// index (or the whole manifest when it is in memory).
    pub fn near_names(&self, wanted: &str, limit: usize) -> Vec<String> {
        match &self.source {
            Source::Manifest(v) => {
                return crate::resolve::closest_names(
                    wanted,
                    v.manifest.modules.iter().map(ModuleRecord::full_name),
                    limit,
                );
            }
            // A sparse store has no index of every name.
            Source::Sparse(_) => return Vec::new(),
            Source::Stored(_) => {}
        }
        let index = self.dir.join(mlld_schemas::search::INDEX_DIR);
        crate::search_query::SearchIndex::open(&index)
            .and_then(|i| i.near_names(wanted, limit))
            .unwrap_or_default()
    }

    /// The advisories affecting a gist module.
    pub fn advisories_for(&self, module: &ModuleRecord) -> Result<Vec<&AdvisoryRecord>> {
        let shard = self.shard(&module.user, &module.name)?;
        Ok(shard
            .advisories
            .iter()
            .filter(|a| a.affects(module))
            .collect())
    }

    /// The advisories in `{author}/advisories.json` naming a versioned module.
    pub fn versioned_advisories(&self, module: &VersionedModule) -> Result<Vec<&AdvisoryRecord>> {
        let shard = self.shard(&module.author, &module.name)?;
        Ok(shard
            .advisories
            .iter()
            .filter(|a| {
                names::same_user(&a.user, &module.author)
                    && a.advisory.affects.contains(&module.name)
            })
            .collect())
    }

    /// Every advisory that may concern `user/name` (filter with
    /// [`AdvisoryRecord::affects`] or by name).
    pub fn advisories_near(&self, user: &str, name: &str) -> Result<&[AdvisoryRecord]> {
        Ok(&self.shard(user, name)?.advisories)
    }

    /// The gist modules whose current revision imports `user/name`, sorted.
    pub fn dependents(&self, user: &str, name: &str) -> Result<&[String]> {
        Ok(self.shard(user, name)?.dependents(user, name))
    }

    /// The blob with this SHA-256 (hex, or `sha256:<hex>`), hashed on read.
    pub fn read_blob(&self, sha256: &str) -> Result<Vec<u8>> {
        match &self.source {
            Source::Manifest(v) => return v.read_blob(sha256),
            Source::Sparse(s) => return s.blob(sha256.strip_prefix("sha256:").unwrap_or(sha256)),
            Source::Stored(_) => {}
        }
        read_stored_blob(&self.dir, &self.pack, sha256)?.with_context(|| {
            format!(
                "blob {sha256} is not in the stored snapshot {}; the store is damaged: run `mlld-registry sync --repair`",
                self.snapshot_sha256
            )
        })
    }
}

/// The blob `sha256` from the pack of the stored snapshot in `dir`, if its
/// blob index lists it; refused unless the bytes hash to `sha256`.
pub fn read_stored_blob(
    dir: &Path,
    pack: &OnceCell<std::fs::File>,
    sha256: &str,
) -> Result<Option<Vec<u8>>> {
    let hex = sha256.strip_prefix("sha256:").unwrap_or(sha256);
    names::check_sha256_hex(hex).map_err(anyhow::Error::msg)?;
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex, &mut digest)?;
    let index = dir.join(QUERY_DIR).join(tables::BLOBS_NAME);
    let Some(place) = tables::find_blob(&index, &digest).map_err(|e| damaged(dir, e))? else {
        return Ok(None);
    };
    let pack_path = dir.join(crate::store::PACK_NAME);
    let file = match pack.get() {
        Some(f) => f,
        None => {
            let f = mlld_fsutil::open_regular(&pack_path).map_err(|e| match e.kind() {
                // Gone: `sync --repair` reads the pack too; only a new sync helps.
                std::io::ErrorKind::NotFound => anyhow::anyhow!(
                    "the store's copy of snapshot {} has lost its pack; delete that directory and run `mlld-registry sync`",
                    dir.display()
                ),
                std::io::ErrorKind::InvalidInput => {
                    damaged(dir, format!("opening {}: {e}", pack_path.display()))
                }
                _ => anyhow::Error::new(e).context(format!("opening {}", pack_path.display())),
            })?;
            pack.get_or_init(|| f)
        }
    };
    if place.size > crate::sync::snapshot_import::Limits::default().member {
        return Err(damaged(dir, "its blob index lists an oversized blob"));
    }
    let mut bytes = vec![0; place.size as usize];
    file.read_exact_at(&mut bytes, place.offset)
        .map_err(|e| damaged(dir, format!("reading blob {hex}: {e}")))?;
    if mlld_schemas::sha256_bytes(&bytes) != digest {
        return Err(damaged(
            dir,
            format!("blob {hex} does not match its digest"),
        ));
    }
    Ok(Some(bytes))
}

fn empty_cells(bits: u32) -> Vec<OnceCell<Box<Shard>>> {
    (0..1usize << bits).map(|_| OnceCell::new()).collect()
}

/// A damaged query store: refused, with the way out.
fn damaged(dir: &Path, why: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(
        "the store's copy of snapshot {} is damaged ({why}); run `mlld-registry sync --repair` to check it and rebuild it from its signed manifest",
        dir.display()
    )
}
