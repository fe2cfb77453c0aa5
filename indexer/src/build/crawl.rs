//! The crawl stages: every registered gist, then every pinned version.

use std::path::Path;

use anyhow::{Result, bail};
use mlld_schemas::import_ref::ModuleRef;

use super::BuildConfig;
use super::inputs::Registry;
use crate::assemble::{self, Freshness, Indexed, Job};
use crate::blobs::BlobDir;
use crate::gist::GistSource;
use crate::module_names::ModuleNames;
use crate::previous::Previous;
use crate::progress::Progress;
use crate::record_spill::RecordSpill;
use crate::report::{BuildReport, Stale};
use crate::text_map::{TextListMap, TextListMapBuilder, TextMap, TextMapBuilder};
use crate::versioned_assemble::PreviousVersions;
use crate::versioned_build::{self, IndexedVersions};

/// The accepted gist modules and what the next build remembers of their crawl.
pub(super) struct Crawled {
    /// Sorted by user, then name; dependencies linked.
    pub(super) modules: RecordSpill,
    /// Their names, in the same order.
    pub(super) names: ModuleNames,
    /// Gist id → the ETag of its last response.
    pub(super) etags: TextMap,
    /// Module file digest (hex) → the registry references its content makes.
    pub(super) imports: TextListMap,
}

/// Stage "crawl gists": takes the registry's user folders, the gist source,
/// the blob directory and the previous build; fetches (or revalidates)
/// every registered gist, `concurrency` at a time, and produces the
/// accepted module records, spilled under `staging` with their
/// dependencies linked. Counts, stale modules, rejections and unresolved
/// imports go into `report`. Refuses to go on when modules are registered
/// but none could be indexed.
#[allow(clippy::too_many_arguments)]
pub(super) fn crawl_gists(
    registry: &Registry,
    source: &dyn GistSource,
    blobs: &BlobDir,
    previous: Option<&Previous>,
    concurrency: usize,
    staging: &Path,
    progress: &Progress,
    report: &mut BuildReport,
) -> Result<Crawled> {
    let mut jobs: Vec<Job<'_>> = registry
        .folders
        .users
        .iter()
        .filter_map(|u| u.registry.as_ref().map(|r| (u, r)))
        .flat_map(|(u, r)| {
            r.modules.iter().map(move |(name, entry)| Job {
                user: &u.folder,
                name,
                entry,
            })
        })
        .collect();
    // Results come in the jobs' order, which is the manifest's.
    jobs.sort_by(|a, b| (a.user, a.name).cmp(&(b.user, b.name)));
    let bar = progress.bar(jobs.len() as u64);
    let mut unlinked = RecordSpill::create(&staging.join(UNLINKED_RECORDS))?;
    let mut full_names = Vec::new();
    let mut etags = TextMapBuilder::default();
    let mut imports = TextListMapBuilder::default();
    assemble::index_all(
        &jobs,
        source,
        blobs,
        previous,
        concurrency,
        &|| bar.inc(1),
        &mut |result| {
            let mut i = match result {
                Ok(i) => i,
                Err(r) => {
                    report.modules_rejected.push(r);
                    return Ok(());
                }
            };
            count(report, &i);
            let refs: Vec<String> = i.imports.iter().map(ToString::to_string).collect();
            let digest = i.record.current.integrity.trim_start_matches("sha256:");
            imports.insert(digest, &refs);
            if let Some(etag) = &i.etag {
                etags.insert(&i.record.gist, etag);
            }
            full_names.push(i.record.full_name().into_boxed_str());
            // Until every name is known, the dependencies hold the raw
            // references (linked below).
            i.record.current.dependencies = refs;
            unlinked.push(&i.record)
        },
    )?;
    bar.finish_and_clear();
    let unlinked = unlinked.finish()?;
    let names = ModuleNames::new(full_names);
    let modules = link_all(&unlinked, &names, staging, report)?;
    std::fs::remove_file(unlinked.path())?;
    report
        .modules_rejected
        .sort_by(|a, b| a.module.cmp(&b.module));
    report.modules_stale.sort_by(|a, b| a.module.cmp(&b.module));
    if modules.is_empty() && !jobs.is_empty() {
        bail!(
            "no module could be indexed ({} registered); refusing to publish an empty registry",
            jobs.len()
        );
    }
    Ok(Crawled {
        modules,
        names,
        etags: etags.finish(),
        imports: imports.finish(),
    })
}

/// The staged spills of the crawl: records as fetched, then linked.
const UNLINKED_RECORDS: &str = "records.unlinked.jsonl";
const RECORDS: &str = "records.jsonl";

fn count(report: &mut BuildReport, i: &Indexed) {
    match i.freshness {
        Freshness::Fetched => report.modules_fetched += 1,
        Freshness::Unchanged => report.modules_unchanged += 1,
        Freshness::Stale => report.modules_stale.push(Stale {
            module: i.record.full_name(),
            reason: i.record.stale.clone().unwrap_or_default(),
        }),
    }
}

/// Rewrites every record with its imports matched against `names`, on all
/// cores (a million records decoded and written again), in spill order.
fn link_all(
    unlinked: &RecordSpill,
    names: &ModuleNames,
    staging: &Path,
    report: &mut BuildReport,
) -> Result<RecordSpill> {
    let mut linked = RecordSpill::create(&staging.join(RECORDS))?;
    let mut unresolved = Vec::new();
    let chunks = unlinked.par_map_chunks(|_, line| {
        let mut record = unlinked.decode_line(line)?;
        let refs = std::mem::take(&mut record.current.dependencies);
        let refs: Vec<ModuleRef> = refs
            .iter()
            .filter_map(|r| ModuleRef::parse(r).ok())
            .collect();
        let mut missing = Vec::new();
        assemble::link_dependencies(&mut record, &refs, names, &mut missing);
        Ok((serde_json::to_vec(&record)?, missing))
    })?;
    for chunk in chunks {
        for (line, missing) in chunk? {
            linked.push_raw(&line)?;
            unresolved.extend(missing);
        }
    }
    report.unresolved_imports = unresolved;
    linked.finish()
}

/// Stage "fetch versions": takes the registry's `modules/` layout, the
/// accepted gist modules (which `gist` sources and name overlaps are checked
/// against), the sources and the previous build; produces the versioned
/// modules, their diagnostics and the rejections the next build remembers.
/// Version counts go into `report`.
pub(super) fn fetch_versions(
    config: &BuildConfig,
    registry: &Registry,
    phase1: versioned_build::Phase1<'_>,
    gists: &dyn GistSource,
    blobs: &BlobDir,
    previous: Option<&Previous>,
    report: &mut BuildReport,
) -> Result<IndexedVersions> {
    let raw = config.raw.source();
    versioned_build::index(
        &registry.versioned,
        phase1,
        &versioned_build::Inputs {
            raw: raw.as_ref(),
            gists,
            blobs,
            previous: previous.map(|p| p as &dyn PreviousVersions),
            concurrency: config.concurrency,
        },
        report,
    )
}
