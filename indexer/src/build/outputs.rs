//! The last stages: the delta and the web page's data, `latest.json`, and
//! publishing into the site.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use mlld_schemas::Diagnostic;
use mlld_schemas::snapshot::{Latest, SNAPSHOT_FORMAT, SiteFile};
use mlld_schemas::sparse::SparseRoot;

use super::BuildConfig;
use super::inputs::Registry;
use super::manifest::SignedManifest;
use super::pack::Packed;
use crate::blobs::BlobDir;
use crate::crawl_state::{CachedRejection, CrawlState};
use crate::delta_writer::{self, StagedDelta};
use crate::previous::Previous;
use crate::report::BuildReport;
use crate::search_incremental::SearchState;
use crate::staged_manifest::StagedManifest;
use crate::text_map::{TextListMap, TextMap};
use crate::versioned_assemble::CachedVersionRejection;
use crate::{publish, retention, sparse_writer};

/// The delta from the previous snapshot (when it has an index-only one)
/// and the staged web page files with their page keys.
pub(super) struct SiteData {
    pub(super) delta: Option<StagedDelta>,
    /// Staged page, data and module pages, moved into the site as they are.
    pub(super) dir: PathBuf,
    /// `user/module` (or a dependents bucket) → page key.
    pub(super) pages: TextMap,
    /// The search parts the page names, and their inputs' digest.
    pub(super) search_parts: crate::site_data::SearchPartsKey,
    /// The sparse root staged under `dir`, and its entry for `latest.json`.
    pub(super) sparse: (SiteFile, SparseRoot),
}

/// Stage "pack, delta and site data": packs the snapshots (`pack`), then
/// writes the delta from the previous snapshot to the new index-only one
/// against `delta_base` (chunked since the search stage), on one thread;
/// beside it, the web page's files under `staging/site` and
/// then the sparse shards, whose root (written last) names the packed
/// snapshot's digest. The two sides share nothing else, and each leaves a
/// core idle for much of its time (the snapshot's head frame and the delta
/// are one stream each). Frame counts and the delta's size go into `report`.
pub(super) fn pack_delta_and_site_data(
    (pack, delta_base): (impl FnOnce() -> Result<Packed> + Send, DeltaBase),
    manifest: &StagedManifest,
    blobs: &BlobDir,
    previous: Option<&Previous>,
    (staging, site): (&Path, &Path),
    report: &mut BuildReport,
) -> Result<(Packed, SiteData)> {
    let (digest_tx, digest_rx) = std::sync::mpsc::channel::<String>();
    // Moved in, so that a failure drops the sender and the other side
    // stops waiting.
    let packing = move || -> Result<(Packed, f64, Option<TimedDelta>)> {
        let started = Instant::now();
        let packed = pack()?;
        let _ = digest_tx.send(packed.written.sha256.clone());
        let pack_seconds = started.elapsed().as_secs_f64();
        let delta = delta_from_previous((&packed, delta_base), manifest, blobs, previous, staging)?;
        Ok((packed, pack_seconds, delta))
    };
    let dir = staging.join("site");
    let (packing, site_data) = crate::beside::beside("packing the snapshot", packing, || {
        site_data_and_shards(&dir, (site, digest_rx), manifest, previous, blobs)
    });
    // The packing side's error first: the other side only waited for it.
    let (packed, seconds) = packing?;
    let (packed, pack_seconds, delta) = packed?;
    let delta = delta.map(|(delta, base_seconds)| {
        // On its own thread, from the search stage on.
        report.concurrent_step("delta base", base_seconds);
        delta
    });
    let PageData {
        pages,
        search_parts,
        sparse,
        seconds: site_seconds,
    } = site_data?;
    report.concurrent_step("pack snapshot", pack_seconds);
    report.concurrent_step("delta", seconds - pack_seconds);
    report.concurrent_step("site data", site_seconds.0);
    report.concurrent_step("sparse shards", site_seconds.1);
    report.frames_reused = packed.written.frames_reused;
    report.frames_compressed = packed.written.frames_compressed;
    report.delta_bytes = delta
        .as_ref()
        .map(|d| d.delta.patch.size + d.delta.blobs.size);
    let site = SiteData {
        delta,
        dir,
        pages,
        search_parts,
        sparse,
    };
    Ok((packed, site))
}

/// A staged delta and the seconds chunking its base took.
type TimedDelta = (StagedDelta, f64);

/// The previous snapshot's delta base (when it has an index-only one),
/// chunked on its own thread from the search stage on: that stage leaves
/// a core idle, and the packing side of the next one waited for it.
/// Dropped unjoined (a stage before the delta failed), it stops the
/// thread and waits for it, so that no work outlives the build.
pub(super) struct DeltaBase(Option<BaseThread>);

struct BaseThread {
    /// The base, and the seconds chunking it took.
    thread: std::thread::JoinHandle<Result<(delta_writer::Base, f64)>>,
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl DeltaBase {
    pub(super) fn start(previous: Option<&Previous>) -> Result<Self> {
        let Some((p, index_snapshot)) =
            previous.and_then(|p| Some((p, p.index_snapshot.as_deref()?)))
        else {
            return Ok(Self(None));
        };
        let source = delta_writer::BaseSource::new(&p.members, index_snapshot);
        let cancel = source.cancel_flag();
        let thread = std::thread::Builder::new()
            .name("delta base".into())
            .spawn(move || {
                let started = Instant::now();
                let base = delta_writer::chunk_base(source)?;
                Ok((base, started.elapsed().as_secs_f64()))
            })
            .context("starting the thread that chunks the delta base")?;
        Ok(Self(Some(BaseThread { thread, cancel })))
    }

    /// The base and the seconds chunking it took.
    fn join(mut self) -> Result<Option<(delta_writer::Base, f64)>> {
        let Some(BaseThread { thread, .. }) = self.0.take() else {
            return Ok(None);
        };
        let base = (thread.join())
            .map_err(|_| anyhow::anyhow!("chunking the previous delta base panicked"))?;
        Ok(Some(base?))
    }
}

impl Drop for DeltaBase {
    fn drop(&mut self) {
        if let Some(BaseThread { thread, cancel }) = self.0.take() {
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = thread.join();
        }
    }
}

/// The delta from the previous snapshot (when it has an index-only one,
/// whose chunked base is `base`) to the packed index-only snapshot, and
/// the seconds chunking the base took.
fn delta_from_previous(
    (packed, base): (&Packed, DeltaBase),
    manifest: &StagedManifest,
    blobs: &BlobDir,
    previous: Option<&Previous>,
    staging: &Path,
) -> Result<Option<TimedDelta>> {
    let base = base
        .join()
        .context("writing the delta from the previous snapshot")?;
    let (Some(p), Some((base, base_seconds))) = (previous, base) else {
        return Ok(None);
    };
    let origin = delta_writer::Origin {
        serial: p.latest.serial,
        snapshot_sha256: &p.latest.sha256,
        members: &p.members,
    };
    let staged = delta_writer::write(
        staging,
        (&origin, base),
        &packed.index,
        &manifest.members,
        blobs,
    )
    .context("writing the delta from the previous snapshot")?;
    Ok(Some((staged, base_seconds)))
}

/// The web page's files and then the sparse shards, staged under `dir`;
/// the shards' root once `snapshot` gives the packed snapshot's digest
/// (the root names it). The new page keys, the sparse root, and the
/// seconds each took. (The shards on a third thread made every side
/// slower on two cores: all three share rayon's threads.)
fn site_data_and_shards(
    dir: &Path,
    (site, snapshot): (&Path, std::sync::mpsc::Receiver<String>),
    manifest: &StagedManifest,
    previous: Option<&Previous>,
    blobs: &BlobDir,
) -> Result<PageData> {
    let no_pages = TextMap::default();
    let started = Instant::now();
    // Pages the previous build wrote, and its search parts, are kept only
    // where they are: a site built elsewhere (a new directory, the staging
    // of an object store, whose publish removes what the built site lacks)
    // gets them all.
    let kept = previous.filter(|_| blobs.builds_in_place(site));
    let previous_pages = kept.map_or(&no_pages, |p| &p.pages);
    let previous_search = (kept.and_then(|p| p.search_parts.as_ref())).map(|key| (site, key));
    let (pages, search_parts) =
        crate::site_data::write(dir, manifest, blobs, previous_pages, previous_search)?;
    let site_seconds = started.elapsed().as_secs_f64();
    let packing_failed = || anyhow::anyhow!("packing the snapshot failed");
    // Packing that already failed spares writing every shard for nothing.
    let early = match snapshot.try_recv() {
        Ok(digest) => Some(digest),
        Err(std::sync::mpsc::TryRecvError::Empty) => None,
        Err(std::sync::mpsc::TryRecvError::Disconnected) => return Err(packing_failed()),
    };
    let started = Instant::now();
    let previous_root = previous.and_then(|p| p.latest.sparse.as_ref());
    let shards = sparse_writer::write_shards(dir, (site, previous_root), manifest)
        .context("writing the sparse shards")?;
    let shard_seconds = started.elapsed().as_secs_f64();
    let snapshot_sha256 = match early {
        Some(digest) => digest,
        None => snapshot.recv().map_err(|_| packing_failed())?,
    };
    let sparse = sparse_writer::write_root(dir, manifest, shards, &snapshot_sha256)
        .context("writing the sparse root")?;
    Ok(PageData {
        pages,
        search_parts,
        sparse,
        seconds: (site_seconds, shard_seconds),
    })
}

/// What [`site_data_and_shards`] made.
struct PageData {
    pages: TextMap,
    search_parts: crate::site_data::SearchPartsKey,
    sparse: (SiteFile, SparseRoot),
    /// Seconds writing the site data, then the sparse shards (without their root).
    seconds: (f64, f64),
}

/// The new `latest.json`: the full and index-only snapshots, the serial,
/// the manifest's times, the delta from the previous snapshot and the
/// sparse root.
pub(super) fn latest(packed: &Packed, manifest: &StagedManifest, site: &SiteData) -> Latest {
    Latest {
        format_version: SNAPSHOT_FORMAT,
        snapshot: mlld_site_contract::paths::snapshot_path(&packed.written.sha256),
        sha256: packed.written.sha256.clone(),
        size: packed.written.size,
        serial: manifest.serial,
        created: manifest.created.clone(),
        expires: manifest.expires.clone(),
        index: Some(SiteFile {
            path: mlld_site_contract::paths::index_snapshot_path(&packed.index_written.sha256),
            sha256: packed.index_written.sha256.clone(),
            size: packed.index_written.size,
        }),
        chunk_deltas: site.delta.iter().map(|d| d.delta.clone()).collect(),
        sparse: Some(site.sparse.0.clone()),
    }
}

/// Everything staged for the site, and the state the next build starts from.
pub(super) struct Staged {
    pub(super) packed: Packed,
    pub(super) site: SiteData,
    /// Gist id → the ETag of its last response.
    pub(super) etags: TextMap,
    /// Module file digest (hex) → the registry references its content makes.
    pub(super) imports: TextListMap,
    pub(super) search: SearchState,
    pub(super) versions_rejected: BTreeMap<String, CachedVersionRejection>,
}

/// What publishing left for the clean-up.
pub(super) struct Published {
    /// The signed crawl state now on the site.
    pub(super) state: CrawlState,
    /// Site-relative files no longer needed.
    pub(super) retired: Vec<String>,
    /// Page keys (`user/module`, or a dependents bucket's) of files to remove.
    pub(super) removed_pages: Vec<String>,
    /// The sparse root now published (its path and content).
    pub(super) sparse: (String, SparseRoot),
}

/// Stage "publish": takes everything staged, `latest`, the signed manifest, the
/// blobs and the previous build; decides which earlier snapshots stay,
/// writes the signed crawl state, moves the new files into the site and
/// replaces `latest.json` last. Produces what may be removed now that
/// nothing refers to it.
pub(super) fn publish_site(
    config: &BuildConfig,
    staged: Staged,
    latest: &Latest,
    signed: &SignedManifest,
    blobs: &BlobDir,
    previous: Option<&Previous>,
    report: &BuildReport,
) -> Result<Published> {
    let Staged {
        packed,
        site,
        etags,
        imports,
        search,
        versions_rejected,
    } = staged;
    let retention::Retention {
        published,
        published_index,
        published_deltas,
        retired,
        removed_pages,
    } = retention::decide(latest, previous, config.keep_snapshots, &site.pages);
    let state = CrawlState {
        snapshot: packed.written.sha256.clone(),
        etags,
        rejected: cached_rejections(report),
        frames: packed.written.table,
        imports,
        pages: site.pages,
        search_parts: Some(site.search_parts),
        published,
        published_index,
        published_deltas,
        search: Some(search),
        versions_rejected,
    };
    let publication = publish::Publication {
        staged_snapshot: &packed.snapshot,
        staged_index: &packed.index,
        staged_delta: site
            .delta
            .as_ref()
            .map(|d| (d.patch.as_path(), d.blobs.as_path())),
        latest,
        site_files: &site.dir,
        state: &state,
        members: &signed.manifest.members,
        blobs,
    };
    publish::publish(&config.out, &config.key, &publication)?;
    Ok(Published {
        state,
        retired,
        removed_pages,
        sparse: (site.sparse.0.path, site.sparse.1),
    })
}

/// Gist modules rejected on their content, by ETag: the next build skips
/// them while GitHub answers `304`.
fn cached_rejections(report: &BuildReport) -> BTreeMap<String, CachedRejection> {
    report
        .modules_rejected
        .iter()
        .filter_map(|r| {
            Some((
                r.module.clone(),
                CachedRejection {
                    gist: r.gist.clone(),
                    etag: r.etag.clone()?,
                    reason: r.reason.clone(),
                },
            ))
        })
        .collect()
}

/// Fills the report's counts from the finished build.
pub(super) fn count_into(
    report: &mut BuildReport,
    registry: &Registry,
    signed: &SignedManifest,
    latest: Latest,
    diagnostics: Vec<Diagnostic>,
) {
    let manifest = &signed.manifest;
    report.users_rejected = registry
        .folders
        .rejected_users()
        .map(str::to_string)
        .collect();
    report.serial = manifest.serial;
    report.users = registry.folders.users.len();
    report.modules_accepted = manifest.modules.len();
    report.advisories = manifest.advisories.len();
    report.blobs = signed.blob_count;
    report.snapshot = latest.snapshot;
    report.snapshot_bytes = latest.size;
    report.versioned_modules = manifest.versioned.len();
    report.versions_accepted = manifest.versioned.iter().map(|m| m.versions.len()).sum();
    report.errors = diagnostics.iter().filter(|d| d.is_error()).count();
    report.warnings = diagnostics.len() - report.errors;
    report.diagnostics = diagnostics;
}
