//! A sparse store: the build's verified root, and the shards and blobs
//! read so far, fetched from the site as commands need them.
//!
//! `sync --sparse` ([`sync`]) verifies `latest.json` (signature, expiry,
//! rollback floor), fetches the root it names by digest and checks that the
//! root belongs to it; only then is the root stored and made current. Every
//! shard is checked against the root's digest (and its own shard number)
//! before it is used or stored, every blob against the digest asked for;
//! what is in the store is hashed again on every read, so a damaged file is
//! noticed, dropped and fetched again (or refused with `--offline`).
//!
//! Layout under the store root: `sparse/roots/<sha256>.json`,
//! `sparse/shards/<sha256>.json.zst`, `sparse/blobs/sha256/ab/cdef…`.

pub mod sync;

use std::cell::{Cell, OnceCell};
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use mlld_schemas::shard::Shard;
use mlld_schemas::sparse::{MAX_ROOT_BYTES, SparseRoot};

use crate::store::{SparseCurrent, Store};
use crate::sync::site::{Source, Timeouts};
use crate::sync::snapshot_import::Limits;

pub const SPARSE_DIR: &str = "sparse";

/// The store's sparse directory and the site it is filled from.
pub struct SparseSource {
    pub root: SparseRoot,
    store: Store,
    site: String,
    offline: bool,
    timeouts: Timeouts,
    fetcher: OnceCell<Source>,
    /// Bytes fetched from the site by this process.
    pub fetched: Cell<u64>,
}

/// Where the stored root with this digest lives.
pub fn root_file(store: &Store, sha256: &str) -> PathBuf {
    store
        .root()
        .join(SPARSE_DIR)
        .join("roots")
        .join(format!("{sha256}.json"))
}

impl SparseSource {
    /// Opens the stored root `current.root`, refusing it unless it still
    /// hashes to its name.
    pub fn open(
        store: &Store,
        current: &SparseCurrent,
        offline: bool,
        timeouts: Timeouts,
    ) -> Result<Self> {
        mlld_schemas::names::check_sha256_hex(&current.root).map_err(anyhow::Error::msg)?;
        let path = root_file(store, &current.root);
        let bytes = mlld_fsutil::read_regular(&path, MAX_ROOT_BYTES).with_context(|| {
            format!(
                "reading the sparse root {}; run `mlld-registry sync` again",
                path.display()
            )
        })?;
        if mlld_schemas::sha256_hex(&bytes) != current.root {
            bail!(
                "the store's sparse root {} is damaged (it does not hash to its name); run `mlld-registry sync` again",
                path.display()
            );
        }
        let root: SparseRoot = serde_json::from_slice(&bytes)
            .map_err(anyhow::Error::from)
            .and_then(|r: SparseRoot| r.check().map(|()| r).map_err(anyhow::Error::msg))
            .with_context(|| format!("the store's sparse root {} is unusable", path.display()))?;
        Ok(Self {
            root,
            store: Store::at(store.root()),
            site: current.site.clone(),
            offline,
            timeouts,
            fetcher: OnceCell::new(),
            fetched: Cell::new(0),
        })
    }

    /// Shard `n`: from the store when it is there and intact, else fetched,
    /// checked against the root and stored.
    pub fn shard(&self, n: u32) -> Result<Shard> {
        let Some(sha) = self.root.shards.get(n as usize) else {
            bail!(
                "shard {n} is outside the sparse root's {} shards",
                self.root.shards.len()
            );
        };
        let rel = mlld_site_contract::paths::sparse_shard_path(sha);
        let bytes = match self.stored(&rel, sha, self.root.max_shard_size)? {
            Some(bytes) => bytes,
            None => self.fetch(&rel, sha, self.root.max_shard_size, &format!("shard {n}"))?,
        };
        let shard = mlld_site_contract::sparse::decode_shard(&bytes, n, self.root.shard_bits)
            .map_err(|why| anyhow::anyhow!("shard {n} ({rel}) is refused: {why}"))?;
        crate::manifest_check::shard(&shard)
            .with_context(|| format!("shard {n} ({rel}) is refused"))?;
        Ok(shard)
    }

    /// The blob `hex`, from the store or the site; always hashed.
    pub fn blob(&self, hex: &str) -> Result<Vec<u8>> {
        mlld_schemas::names::check_sha256_hex(hex).map_err(anyhow::Error::msg)?;
        let rel = mlld_site_contract::paths::blob_path(hex);
        let cap = Limits::default().member;
        match self.stored(&rel, hex, cap)? {
            Some(bytes) => Ok(bytes),
            None => self.fetch(&rel, hex, cap, &format!("blob {hex}")),
        }
    }

    /// Whether a missing or damaged file may be fetched: `--offline`
    /// forbids the network, not a site in a local folder.
    fn may_fetch(&self) -> bool {
        let is_url = self.site.starts_with("http://") || self.site.starts_with("https://");
        !(self.offline && is_url)
    }

    /// Where the site file `rel` is kept in the store: shards as the site
    /// names them (`sparse/shards/…`), blobs under `sparse/blobs/…`.
    fn stored_path(&self, rel: &str) -> PathBuf {
        if rel.starts_with("sparse/") {
            self.store.root().join(rel)
        } else {
            self.store.root().join(SPARSE_DIR).join(rel)
        }
    }

    /// The stored copy of `rel`, if present and hashing to `sha`; a
    /// damaged copy is removed so that it is fetched again (an error,
    /// leaving it as it is, when nothing may be fetched).
    fn stored(&self, rel: &str, sha: &str, cap: u64) -> Result<Option<Vec<u8>>> {
        let path = self.stored_path(rel);
        match mlld_fsutil::read_regular(&path, cap) {
            Ok(bytes) if mlld_schemas::sha256_hex(&bytes) == sha => Ok(Some(bytes)),
            // Nothing could replace it: left as it is, and the command stops.
            Ok(_) if !self.may_fetch() => bail!(
                "{} is damaged (it does not hash to its name), and --offline forbids fetching it again; run without --offline",
                path.display()
            ),
            Ok(_) => {
                eprintln!(
                    "warning: {} was damaged (it does not hash to its name) and was removed; it is fetched again from the site",
                    path.display()
                );
                let _ = std::fs::remove_file(&path);
                Ok(None)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Fetches `rel` from the site, checks it against `sha`, stores it.
    fn fetch(&self, rel: &str, sha: &str, cap: u64, what: &str) -> Result<Vec<u8>> {
        if !self.may_fetch() {
            bail!(
                "{what} of the sparse snapshot is not in the store, and --offline forbids fetching it; run without --offline, or `mlld-registry sync --full` for a store that works offline for every module"
            );
        }
        let source = match self.fetcher.get() {
            Some(s) => s,
            None => {
                let s = Source::parse(&self.site, false, self.timeouts)?;
                self.fetcher.get_or_init(|| s)
            }
        };
        let bytes = source.fetch_signed(rel, sha, cap).with_context(|| {
            format!(
                "fetching {what} of the sparse snapshot (serial {}) from {}; if the site has published since, run `mlld-registry sync`",
                self.root.serial,
                self.site
            )
        })?;
        self.fetched.set(self.fetched.get() + bytes.len() as u64);
        let path = self.stored_path(rel);
        let dir = path.parent().expect("sparse paths have a parent");
        self.store.fs().create_dir_all(dir)?;
        self.store
            .fs()
            .write_atomic(&path, &bytes)
            .with_context(|| format!("storing {}", path.display()))?;
        Ok(bytes)
    }
}

/// Removes stored roots other than `keep`, and shards none of them names
/// (best effort; blobs stay: they are content-addressed and locks name them).
pub fn prune(store: &Store, keep: &[&SparseRoot], keep_names: &[&str]) {
    let dir = store.root().join(SPARSE_DIR);
    if let Ok(entries) = std::fs::read_dir(dir.join("roots")) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let sha = name.strip_suffix(".json").unwrap_or(&name);
            if !keep_names.contains(&sha) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let wanted: std::collections::BTreeSet<&str> = keep
        .iter()
        .flat_map(|r| r.shards.iter().map(String::as_str))
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir.join("shards")) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let sha = name.strip_suffix(".json.zst").unwrap_or(&name);
            if !wanted.contains(sha) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Removes a sparse store's files once no process can be reading them: the
/// store is full, and so was the snapshot it replaced (best effort).
pub fn remove(store: &Store) {
    let dir = store.root().join(SPARSE_DIR);
    if dir.exists() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
