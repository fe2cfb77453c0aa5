//! `sync --sparse`: the verified pointer's root, made current, then the
//! shards and blobs the project's lock needs.

use anyhow::{Context as _, Result, bail};
use mlld_schemas::Latest;
use mlld_schemas::sparse::{MAX_ROOT_BYTES, SparseRoot};

use super::{SparseSource, root_file};
use crate::context::Context;
use crate::store::{SparseCurrent, Store};
use crate::sync::site::Source;

/// A root fetched for a verified `latest.json` and checked to belong to it.
pub struct FetchedRoot {
    pub sha256: String,
    pub root: SparseRoot,
    pub bytes: u64,
}

/// Fetches the root the verified `latest` names, refusing it unless it
/// hashes to the signed digest and repeats the pointer's serial, expiry and
/// snapshot; stores it (content-addressed, so nothing current changes).
pub fn fetch_root(store: &Store, source: &Source, latest: &Latest) -> Result<FetchedRoot> {
    let Some(file) = &latest.sparse else {
        bail!(
            "the site's latest.json (serial {}) names no sparse root: its indexer predates sparse sync. Run `mlld-registry sync --full`",
            latest.serial
        );
    };
    mlld_schemas::names::check_sha256_hex(&file.sha256).map_err(anyhow::Error::msg)?;
    let expected = mlld_site_contract::paths::sparse_root_path(&file.sha256);
    mlld_site_contract::paths::expect_path("sparse root", &file.path, &expected)
        .map_err(anyhow::Error::msg)?;
    if file.size > MAX_ROOT_BYTES {
        bail!(
            "the site announces a {}-byte sparse root, over the {MAX_ROOT_BYTES}-byte limit; refused",
            file.size
        );
    }
    let bytes = source.fetch_signed(&file.path, &file.sha256, file.size)?;
    let root: SparseRoot = serde_json::from_slice(&bytes)
        .map_err(anyhow::Error::from)
        .and_then(|r: SparseRoot| r.check().map(|()| r).map_err(anyhow::Error::msg))
        .context("the signed sparse root is malformed; refused")?;
    mlld_site_contract::latest::check_root_binding(&root, latest)?;
    let path = root_file(store, &file.sha256);
    store
        .fs()
        .create_dir_all(path.parent().expect("roots have a parent"))?;
    store
        .fs()
        .write_atomic(&path, &bytes)
        .with_context(|| format!("storing {}", path.display()))?;
    Ok(FetchedRoot {
        sha256: file.sha256.clone(),
        root,
        bytes: bytes.len() as u64,
    })
}

/// The site a sparse store fetches from later: a directory made absolute,
/// so commands run elsewhere still find it.
pub fn site_of(source: &Source) -> Result<String> {
    Ok(match source.dir() {
        Some(dir) => std::fs::canonicalize(dir)
            .with_context(|| format!("resolving {}", dir.display()))?
            .display()
            .to_string(),
        None => source.describe(),
    })
}

/// What prefetching for the project fetched.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Prefetched {
    pub modules: usize,
    pub bytes: u64,
}

/// Reads, through the now-current sparse store, the records of every
/// module the project's lock names and its locked content (a gist entry's
/// file, every file of a locked version): what a following `install`
/// needs is then in the store.
pub fn prefetch(ctx: &Context, sparse: &SparseCurrent) -> Result<Prefetched> {
    // The sync itself succeeded; a broken lock only means nothing to prefetch.
    let lock = match ctx.project.read_lock() {
        Ok(lock) => lock,
        Err(e) => {
            let message = format!("{e:#}");
            eprintln!(
                "warning: nothing prefetched for the project: {}",
                mlld_schemas::terminal::terminal_safe_block(&message)
            );
            return Ok(Prefetched::default());
        }
    };
    let timeouts = crate::sync::site::configured_timeouts(None, None, &ctx.config)?;
    let source = SparseSource::open(&ctx.store, sparse, ctx.offline, timeouts)?;
    let bits = source.root.shard_bits;
    let mut out = Prefetched::default();
    let mut seen = std::collections::BTreeSet::new();
    for (import, entry) in &lock.imports {
        let Some((user, name)) = import
            .strip_prefix("mlld://")
            .and_then(|r| r.split_once('/'))
        else {
            continue;
        };
        let n = mlld_schemas::shard::shard_of(&mlld_schemas::shard::shard_key(user, name), bits);
        if seen.insert(n) {
            source.shard(n)?;
        }
        if let Some(hex) = entry.integrity.strip_prefix("sha256:") {
            source.blob(hex)?;
        }
        out.modules += 1;
    }
    for (key, entry) in &lock.modules {
        let Some((author, name)) = key.strip_prefix('@').and_then(|k| k.split_once('/')) else {
            continue;
        };
        let n = mlld_schemas::shard::shard_of(&mlld_schemas::shard::shard_key(author, name), bits);
        let shard = source.shard(n)?;
        let files = shard
            .versioned(author, name)
            .and_then(|m| m.version(&entry.version))
            .map(|v| v.files.clone())
            .unwrap_or_default();
        for file in files {
            source.blob(&file.sha256)?;
        }
        out.modules += 1;
    }
    out.bytes = source.fetched.get();
    Ok(out)
}

/// What a sparse sync fetched, for the report.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SparseReport {
    pub root: String,
    pub root_bytes: u64,
    pub shards: usize,
    pub prefetched: Prefetched,
}

type FloorCheck = fn(&crate::store::SyncState, u64, &str) -> Result<()>;

/// `sync --sparse` after `latest` was verified: fetch and check its root,
/// make it current under the store lock (the floor checked again), keep the
/// previous root's shards for processes still reading it, then prefetch
/// what the project's lock needs.
pub fn sync(
    ctx: &Context,
    source: &Source,
    latest: &Latest,
    key_id: &str,
    check_floor: FloorCheck,
) -> Result<crate::sync::run::SyncReport> {
    let fetched = fetch_root(&ctx.store, source, latest)?;
    let site = site_of(source)?;
    let current = SparseCurrent {
        root: fetched.sha256.clone(),
        site,
    };
    let previous = {
        let _guard = ctx.store.exclusive()?;
        let state = ctx.store.state()?;
        check_floor(&state, latest.serial, &latest.sha256)?;
        let previous = state.current.clone();
        let mut new_state = state.clone();
        new_state.raise_floor(latest.serial);
        new_state.current = Some(crate::store::Current {
            snapshot: latest.sha256.clone(),
            serial: latest.serial,
            key_id: key_id.to_string(),
            source: source.describe(),
            synced_at: mlld_schemas::names::format_timestamp(ctx.now),
            // A full snapshot held before stays one sync for old locks' blobs.
            previous: previous
                .as_ref()
                .filter(|c| c.sparse.is_none())
                .map(|c| c.snapshot.clone()),
            sparse: Some(current.clone()),
        });
        ctx.store.write_state(&new_state)?;
        prune_after(ctx, &fetched, previous.as_ref());
        previous
    };
    let up_to_date = previous
        .as_ref()
        .and_then(|c| c.sparse.as_ref())
        .is_some_and(|s| s.root == fetched.sha256);
    let prefetched = prefetch(ctx, &current)?;
    Ok(crate::sync::run::SyncReport {
        source: source.describe(),
        snapshot: latest.sha256.clone(),
        serial: latest.serial,
        expires: latest.expires.clone(),
        modules: fetched.root.modules,
        previous_serial: previous.map(|c| c.serial),
        up_to_date,
        mode: "sparse",
        downloaded_bytes: fetched.bytes + prefetched.bytes,
        delta: None,
        sparse: Some(SparseReport {
            root: fetched.sha256,
            root_bytes: fetched.bytes,
            shards: fetched.root.shards.len(),
            prefetched,
        }),
    })
}

/// Keeps the new root and the one it replaces (with their shards); drops
/// older ones, and every full snapshot but the one kept as previous.
fn prune_after(ctx: &Context, fetched: &FetchedRoot, previous: Option<&crate::store::Current>) {
    let old_sparse = previous.and_then(|c| c.sparse.as_ref());
    let old_root = old_sparse.and_then(|s| {
        SparseSource::open(&ctx.store, s, true, Default::default())
            .ok()
            .map(|src| src.root)
    });
    let mut keep_roots = vec![&fetched.root];
    keep_roots.extend(old_root.as_ref());
    let mut keep_names = vec![fetched.sha256.as_str()];
    keep_names.extend(old_sparse.map(|s| s.root.as_str()));
    super::prune(&ctx.store, &keep_roots, &keep_names);
    let keep_snapshot: Vec<&str> = previous
        .filter(|c| c.sparse.is_none())
        .map(|c| c.snapshot.as_str())
        .into_iter()
        .collect();
    ctx.store.prune(&keep_snapshot);
}
