//! The crawl stages: every registered gist, then every pinned version.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use mlld_schemas::ModuleRecord;

use super::BuildConfig;
use super::inputs::Registry;
use crate::assemble::{self, Freshness, Job};
use crate::blobs::BlobDir;
use crate::gist::GistSource;
use crate::previous::Previous;
use crate::progress::Progress;
use crate::report::{BuildReport, Stale};
use crate::versioned_assemble::PreviousVersions;
use crate::versioned_build::{self, IndexedVersions};

/// The accepted gist modules and what the next build remembers of their crawl.
pub(super) struct Crawled {
    /// Sorted by user, then name; dependencies linked.
    pub(super) modules: Vec<ModuleRecord>,
    /// Gist id → the ETag of its last response.
    pub(super) etags: BTreeMap<String, String>,
    /// Module file digest (hex) → the registry references its content makes.
    pub(super) imports: BTreeMap<String, Vec<String>>,
}

/// Stage "crawl gists": takes the registry's user folders, the gist source,
/// the blob directory and the previous build; fetches (or revalidates)
/// every registered gist, `concurrency` at a time, and produces the
/// accepted module records with their dependencies linked. Counts, stale
/// modules, rejections and unresolved imports go into `report`. Refuses to
/// go on when modules are registered but none could be indexed.
pub(super) fn crawl_gists(
    registry: &Registry,
    source: &dyn GistSource,
    blobs: &BlobDir,
    previous: Option<&Previous>,
    concurrency: usize,
    progress: &Progress,
    report: &mut BuildReport,
) -> Result<Crawled> {
    let jobs: Vec<Job<'_>> = registry
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
    let bar = progress.bar(jobs.len() as u64);
    let results = assemble::index_all(&jobs, source, blobs, previous, concurrency, &|| bar.inc(1))?;
    bar.finish_and_clear();
    let mut indexed = Vec::new();
    let mut etags = BTreeMap::new();
    let mut imports = BTreeMap::new();
    for result in results {
        match result {
            Ok(i) => {
                match i.freshness {
                    Freshness::Fetched => report.modules_fetched += 1,
                    Freshness::Unchanged => report.modules_unchanged += 1,
                    Freshness::Stale => report.modules_stale.push(Stale {
                        module: i.record.full_name(),
                        reason: i.record.stale.clone().unwrap_or_default(),
                    }),
                }
                imports.insert(
                    i.record
                        .current
                        .integrity
                        .trim_start_matches("sha256:")
                        .to_string(),
                    i.imports.iter().map(ToString::to_string).collect(),
                );
                if let Some(etag) = &i.etag {
                    etags.insert(i.record.gist.clone(), etag.clone());
                }
                indexed.push(i);
            }
            Err(r) => report.modules_rejected.push(r),
        }
    }
    report.unresolved_imports = assemble::link_dependencies(&mut indexed);
    let mut modules: Vec<_> = indexed.into_iter().map(|i| i.record).collect();
    modules.sort_by(|a, b| (&a.user, &a.name).cmp(&(&b.user, &b.name)));
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
        etags,
        imports,
    })
}

/// Stage "fetch versions": takes the registry's `modules/` layout, the
/// accepted gist modules (which `gist` sources and name overlaps are checked
/// against), the sources and the previous build; produces the versioned
/// modules, their diagnostics and the rejections the next build remembers.
/// Version counts go into `report`.
pub(super) fn fetch_versions(
    config: &BuildConfig,
    registry: &Registry,
    modules: &[ModuleRecord],
    gists: &dyn GistSource,
    blobs: &BlobDir,
    previous: Option<&Previous>,
    report: &mut BuildReport,
) -> Result<IndexedVersions> {
    let raw = config.raw.source();
    versioned_build::index(
        &registry.versioned,
        modules,
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
