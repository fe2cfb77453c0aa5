//! The crawl stages: every registered gist, then every pinned version.

use std::path::Path;

use anyhow::{Result, bail};
use mlld_schemas::import_ref::ModuleRef;

use super::BuildConfig;
use super::inputs::Registry;
use crate::assemble::{self, Freshness, Indexed, Job, Rejection};
use crate::blobs::BlobDir;
use crate::gist::GistSource;
use crate::members::MembersBuilder;
use crate::module_names::ModuleNames;
use crate::previous::Previous;
use crate::progress::Progress;
use crate::record_spill::{RecordSpill, SpillWriter};
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
    /// Every file of every revision of the accepted modules, as blob
    /// members: gathered while each record is in hand, instead of reading
    /// and decoding every record again for the manifest.
    pub(super) blobs: MembersBuilder,
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
    let jobs = jobs_of(registry);
    let started = std::time::Instant::now();
    let bar = progress.bar(jobs.len() as u64);
    // Sized as the previous build's: a nightly crawl's tables barely change.
    let sizes = previous.map_or((0, 0), |p| (p.etags.text_len(), p.imports.text_len()));
    let registered = registered_names(&jobs);
    let mut fetched = Fetched::new(&jobs, staging, sizes)?;
    assemble::index_all(
        &jobs,
        source,
        blobs,
        previous,
        concurrency,
        &|result| {
            bar.inc(1);
            ready(result, &registered)
        },
        &mut |ready| fetched.add(ready?, report),
    )?;
    bar.finish_and_clear();
    report.step("fetch", started);
    let started = std::time::Instant::now();
    let crawled = fetched.finish(registered, staging, report)?;
    report.step("link", started);
    report
        .modules_rejected
        .sort_by(|a, b| a.module.cmp(&b.module));
    report.modules_stale.sort_by(|a, b| a.module.cmp(&b.module));
    if crawled.modules.is_empty() && !jobs.is_empty() {
        bail!(
            "no module could be indexed ({} registered); refusing to publish an empty registry",
            jobs.len()
        );
    }
    Ok(crawled)
}

/// Every registered gist module, in the manifest's order (results come
/// in the jobs' order).
fn jobs_of(registry: &Registry) -> Vec<Job<'_>> {
    let users = registry.folders.users.iter();
    let mut jobs: Vec<Job<'_>> = users
        .filter_map(|u| u.registry.as_ref().map(|r| (u, r)))
        .flat_map(|(u, r)| {
            r.modules.iter().map(move |(name, entry)| Job {
                user: &u.folder,
                name,
                entry,
            })
        })
        .collect();
    jobs.sort_by(|a, b| (a.user, a.name).cmp(&(b.user, b.name)));
    jobs
}

/// Every job's `user/name`, in the jobs' order.
fn registered_names(jobs: &[Job<'_>]) -> ModuleNames {
    use rayon::prelude::*;
    let names = (jobs.par_iter())
        .map(|j| format!("{}/{}", j.user, j.name).into_boxed_str())
        .collect();
    ModuleNames::new(names)
}

/// A crawl result as [`Fetched`] takes it, made on the crawl's pool: the
/// record linked and encoded there, so that the one thread writing the
/// spill only appends (linking and encoding a million records on it had
/// the pool wait a tenth of the crawl).
enum Ready {
    Rejected(Rejection),
    Accepted(Box<Accepted>),
}

/// An accepted record, encoded, with what the build's tables keep of it.
struct Accepted {
    line: Vec<u8>,
    freshness: Freshness,
    /// Set when the record is stale.
    stale: Option<Stale>,
    /// The current content's digest (hex) and the references it makes.
    digest: String,
    refs: Vec<String>,
    /// The gist and the ETag of its last response.
    etag: Option<(String, String)>,
    /// Every file of every revision: digest (hex) and size.
    files: Vec<(String, u64)>,
    /// Positions (in the jobs' order) of the modules it depends on, and
    /// its imports that name no registered module.
    linked: Vec<usize>,
    unresolved: Vec<(String, String)>,
}

/// Links `result`'s record against the `registered` names (each of its
/// imports, as it comes; see [`Fetched`]) and encodes it.
fn ready(result: Result<Indexed, Rejection>, registered: &ModuleNames) -> Result<Ready> {
    let mut i = match result {
        Ok(i) => i,
        Err(r) => return Ok(Ready::Rejected(r)),
    };
    let (mut linked, mut unresolved) = (Vec::new(), Vec::new());
    assemble::link_dependencies(
        &mut i.record,
        &i.imports,
        registered,
        &mut unresolved,
        &mut |position| linked.push(position),
    );
    let line = serde_json::to_vec(&i.record)?;
    let record = &mut i.record;
    let stale = (i.freshness == Freshness::Stale).then(|| Stale {
        module: record.full_name(),
        reason: record.stale.clone().unwrap_or_default(),
    });
    let digest = record.current.integrity.trim_start_matches("sha256:");
    let digest = digest.to_string();
    // Moved out: the record is done with once encoded.
    let revisions = std::iter::once(&mut record.current).chain(&mut record.history);
    let files = (revisions.flat_map(|r| &mut r.files))
        .map(|f| (std::mem::take(&mut f.sha256), f.size))
        .collect();
    Ok(Ready::Accepted(Box::new(Accepted {
        line,
        freshness: i.freshness,
        stale,
        digest,
        refs: i.imports.iter().map(ToString::to_string).collect(),
        etag: i.etag.map(|etag| (std::mem::take(&mut record.gist), etag)),
        files,
        linked,
        unresolved,
    })))
}

/// The crawl's results as they come, in the jobs' order. Each record's
/// imports are linked as it comes, against every *registered* name: a
/// module depends on another that was rejected only rarely, and then (and
/// only then) the records are linked again against the accepted names
/// once they are known, instead of every record being written, read back
/// and written again on every build.
struct Fetched {
    records: SpillWriter,
    /// By job: accepted, and named by some accepted module's imports.
    accepted: Vec<bool>,
    depended_on: Vec<bool>,
    /// Jobs seen so far.
    seen: usize,
    unresolved: Vec<(String, String)>,
    etags: TextMapBuilder,
    imports: TextListMapBuilder,
    blobs: MembersBuilder,
}

impl Fetched {
    /// For `jobs`, with room for ETags and imports of the given text sizes.
    fn new(jobs: &[Job<'_>], staging: &Path, (etags, imports): (usize, usize)) -> Result<Self> {
        Ok(Self {
            records: RecordSpill::create(&staging.join(RECORDS))?,
            accepted: vec![false; jobs.len()],
            depended_on: vec![false; jobs.len()],
            seen: 0,
            unresolved: Vec::new(),
            etags: TextMapBuilder::with_capacity(etags, jobs.len()),
            imports: TextListMapBuilder::with_capacity(imports, jobs.len()),
            blobs: MembersBuilder::default(),
        })
    }

    fn add(&mut self, ready: Ready, report: &mut BuildReport) -> Result<()> {
        let job = self.seen;
        self.seen += 1;
        let a = match ready {
            Ready::Accepted(a) => a,
            Ready::Rejected(r) => {
                report.modules_rejected.push(r);
                return Ok(());
            }
        };
        self.accepted[job] = true;
        match a.freshness {
            Freshness::Fetched => report.modules_fetched += 1,
            Freshness::Unchanged => report.modules_unchanged += 1,
            Freshness::Stale => report.modules_stale.extend(a.stale),
        }
        self.imports.insert(&a.digest, &a.refs);
        if let Some((gist, etag)) = &a.etag {
            self.etags.insert(gist, etag);
        }
        for (sha256, size) in &a.files {
            self.blobs.add_blob(sha256, *size);
        }
        for position in a.linked {
            self.depended_on[position] = true;
        }
        self.unresolved.extend(a.unresolved);
        self.records.push_raw(&a.line)
    }

    /// The accepted records, linked against the accepted names (the
    /// `registered` ones, when every one was accepted).
    fn finish(
        self,
        registered: ModuleNames,
        staging: &Path,
        report: &mut BuildReport,
    ) -> Result<Crawled> {
        let spill = self.records.finish()?;
        let imports = self.imports.finish();
        let all_accepted = self.accepted.iter().all(|&a| a);
        let names = if all_accepted {
            registered
        } else {
            let accepted = (self.accepted.iter().enumerate()).filter(|&(_, &a)| a);
            let full = accepted.map(|(i, _)| Box::from(registered.full_name(i)));
            ModuleNames::new(full.collect())
        };
        let rejected_named = (self.accepted.iter().zip(&self.depended_on)).any(|(&a, &d)| d && !a);
        let modules = if rejected_named {
            let relinked = relink(&spill, &names, &imports, staging, report)?;
            std::fs::remove_file(spill.path())?;
            relinked
        } else {
            report.unresolved_imports = self.unresolved;
            spill
        };
        Ok(Crawled {
            modules,
            names,
            etags: self.etags.finish(),
            imports,
            blobs: self.blobs,
        })
    }
}

/// The staged spills of the crawl: records as linked while fetched, and
/// linked again when a rejected module was among their dependencies.
const RECORDS: &str = "records.jsonl";
const RELINKED_RECORDS: &str = "records.relinked.jsonl";

/// Rewrites every record with its imports (the references its content
/// makes, by content digest in `imports`) matched against the accepted
/// `names`, on all cores, in spill order; the unresolved imports go into
/// `report`.
fn relink(
    spill: &RecordSpill,
    names: &ModuleNames,
    imports: &TextListMap,
    staging: &Path,
    report: &mut BuildReport,
) -> Result<RecordSpill> {
    let mut linked = RecordSpill::create(&staging.join(RELINKED_RECORDS))?;
    let mut unresolved = Vec::new();
    let chunks = spill.par_map_chunks(|_, line| {
        let mut record = spill.decode_line(line)?;
        let digest = record.current.integrity.trim_start_matches("sha256:");
        let refs: Vec<ModuleRef> = (imports.get(digest).into_iter().flatten())
            .filter_map(|r| ModuleRef::parse(r).ok())
            .collect();
        let mut missing = Vec::new();
        assemble::link_dependencies(&mut record, &refs, names, &mut missing, &mut |_| {});
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
