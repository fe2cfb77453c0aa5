//! Turns registry entries plus their gists into module records and blobs,
//! reusing the previous build where GitHub says nothing changed.

use mlld_schemas::ModuleEntry;
use mlld_schemas::import_ref::ModuleRef;
use mlld_schemas::snapshot::ModuleRecord;
use rayon::prelude::*;
use serde::Serialize;

use crate::blobs::BlobDir;
use crate::capture::{CaptureError, capture_newest, check_owner, scan_module};
use crate::crawl_state::CachedRejection;
use crate::gist::{FetchError, Fetched, GistSource};
use crate::module_names::ModuleNames;
use crate::previous::Previous;

/// One registered module to index.
pub struct Job<'a> {
    pub user: &'a str,
    pub name: &'a str,
    pub entry: &'a ModuleEntry,
}

/// A module left out of the snapshot, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Rejection {
    /// `user/module`.
    pub module: String,
    pub gist: String,
    pub reason: String,
    /// Set when the rejection was decided on the gist's content: the ETag of that response.
    #[serde(skip)]
    pub etag: Option<String>,
}

/// How a module's record came about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Fetched and captured in this build.
    Fetched,
    /// GitHub answered 304: the previous record stands.
    Unchanged,
    /// The fetch failed; the previous record stands, marked stale.
    Stale,
}

/// A module record plus the raw references its content makes, not yet
/// matched against the registry.
pub struct Indexed {
    pub record: ModuleRecord,
    pub imports: Vec<ModuleRef>,
    pub etag: Option<String>,
    pub freshness: Freshness,
}

/// Jobs a fetcher takes at once: planned together (their previous
/// records decoded on all cores), asked of the source together, and handed
/// on together unless their content passes [`FETCHED_BYTES`]. A stopped
/// sink is noticed within this many requests.
const BATCH: usize = 1024;

/// A batch's content is handed on once it reaches this much: a batch of
/// large gists goes on in several portions.
const FETCHED_BYTES: u64 = 32 << 20;

/// Threads that fetch, each with its share of the requests in flight: one
/// could not keep up with a nightly crawl of `304`s on loopback-fast
/// networks (each request costs tens of microseconds of CPU).
const FETCHERS: usize = 2;

/// Fetches and content-addresses every job, `concurrency` API requests
/// at a time, turns each result into what `sink` takes with `prepare`
/// (on the pool), and hands them to `sink` in the jobs' order.
///
/// Fetching and finishing overlap: [`FETCHERS`] threads fetch batches in
/// turn (their shares of the `concurrency` requests in flight, see
/// [`GistSource::fetch_many`]) while the pool of `concurrency` threads
/// finishes the portions before (reusing previous records, capturing
/// changed gists, which fetches raw files of truncated ones, then
/// `prepare`) and the sink takes their results. What the crawl holds is
/// bounded whatever the registry's size: the batches being planned (one a
/// fetcher), and three portions of a batch at most (one being finished,
/// one fetched or waiting to be handed on by each fetcher).
pub fn index_all<T: Send>(
    jobs: &[Job<'_>],
    source: &dyn GistSource,
    blobs: &BlobDir,
    previous: Option<&Previous>,
    concurrency: usize,
    prepare: &Prepare<'_, T>,
    sink: &mut dyn FnMut(T) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(concurrency.max(1))
        .build()?;
    let concurrency = concurrency.max(1);
    let fetchers = FETCHERS.min(concurrency);
    std::thread::scope(|s| {
        let pool = &pool;
        let mut receivers = Vec::new();
        for k in 0..fetchers {
            // The fetchers' shares add up to `concurrency`.
            let in_flight = concurrency / fetchers + usize::from(k < concurrency % fetchers);
            // Handed over, not queued: a fetcher holds one portion at most.
            let (send, receive) = std::sync::mpsc::sync_channel::<Portion<'_, '_>>(0);
            receivers.push(receive);
            s.spawn(move || {
                for batch in jobs.chunks(BATCH).skip(k).step_by(fetchers) {
                    let plans =
                        pool.install(|| batch.par_iter().map(|j| plan(j, previous)).collect());
                    if fetch_portions(batch, plans, source, in_flight, &send).is_err() {
                        return; // The sink stopped.
                    }
                }
            });
        }
        // Batches in order: each fetcher's portions, in turn, until its batch is whole.
        for k in (0..fetchers).cycle() {
            loop {
                let Ok(portion) = receivers[k].recv() else {
                    return Ok(()); // Every batch was handed on.
                };
                let last = portion.last;
                let results: Vec<_> = pool.install(|| {
                    (portion
                        .jobs
                        .par_iter()
                        .zip(portion.plans)
                        .zip(portion.fetched))
                    .map(|((job, plan), fetched)| {
                        prepare(finish(job, plan, fetched, source, blobs, previous))
                    })
                    .collect()
                });
                results.into_iter().try_for_each(&mut *sink)?;
                if last {
                    break;
                }
            }
        }
        Ok(())
    })
}

/// What turns a job's result into what the sink takes, on the pool.
pub type Prepare<'a, T> = dyn Fn(Result<Indexed, Rejection>) -> T + Sync + 'a;

/// Jobs with what was fetched for them, handed from a fetching thread to the pool.
struct Portion<'j, 'p> {
    jobs: &'j [Job<'j>],
    plans: Vec<Plan<'p>>,
    fetched: Vec<Result<Fetched, FetchError>>,
    /// The batch's last portion.
    last: bool,
}

/// Fetches `batch`'s gists as `plans` say, `in_flight` at a time, and
/// sends them on in portions; an error when the receiver is gone.
fn fetch_portions<'j, 'p>(
    batch: &'j [Job<'j>],
    mut plans: Vec<Plan<'p>>,
    source: &dyn GistSource,
    in_flight: usize,
    send: &std::sync::mpsc::SyncSender<Portion<'j, 'p>>,
) -> Result<(), ()> {
    let mut done = 0;
    while done < batch.len() {
        let requests: Vec<(&str, Option<&str>)> = (batch[done..].iter().zip(&plans))
            .map(|(job, plan)| (job.entry.gist.as_str(), plan.etag))
            .collect();
        let mut fetched = source.fetch_many(&requests, in_flight, FETCHED_BYTES);
        if fetched.is_empty() {
            // Every job gets a result, whatever a source does.
            fetched.push(Err(FetchError::Failed(
                "the gist source answered nothing".into(),
            )));
        }
        fetched.truncate(requests.len());
        let n = fetched.len();
        let rest = plans.split_off(n);
        let portion = Portion {
            jobs: &batch[done..done + n],
            plans: std::mem::replace(&mut plans, rest),
            fetched,
            last: done + n == batch.len(),
        };
        send.send(portion).map_err(|_| ())?;
        done += n;
    }
    Ok(())
}

/// What a job needs before its gist is fetched: the previous record, a
/// cached rejection, and the ETag to revalidate them with.
struct Plan<'p> {
    prev: Option<ModuleRecord>,
    cached_rejection: Option<&'p CachedRejection>,
    etag: Option<&'p str>,
}

fn plan<'p>(job: &Job<'_>, previous: Option<&'p Previous>) -> Plan<'p> {
    // Taken, not copied: the previous record is freed when this job ends.
    let prev = previous.and_then(|p| p.take_module(job.user, job.name, &job.entry.gist));
    let cached_rejection = previous.and_then(|p| p.rejection(job.user, job.name, &job.entry.gist));
    let etag = match (&prev, cached_rejection) {
        (Some(_), _) => previous.and_then(|p| p.etag(&job.entry.gist)),
        (None, Some(r)) => Some(r.etag.as_str()),
        (None, None) => None,
    };
    Plan {
        prev,
        cached_rejection,
        etag,
    }
}

/// The job's record (or rejection) from its plan and what its fetch yielded.
fn finish(
    job: &Job<'_>,
    plan: Plan<'_>,
    fetched: Result<Fetched, FetchError>,
    source: &dyn GistSource,
    blobs: &BlobDir,
    previous: Option<&Previous>,
) -> Result<Indexed, Rejection> {
    let reject = |reason: String| Rejection {
        module: format!("{}/{}", job.user, job.name),
        gist: job.entry.gist.clone(),
        reason,
        etag: None,
    };
    let Plan {
        prev,
        cached_rejection,
        etag,
    } = plan;
    let stale_or_reject = |prev: Option<ModuleRecord>, reason: String| match prev {
        Some(m) => reuse(
            job,
            previous.expect("a previous record implies a previous build"),
            m,
            blobs,
            Some(reason),
            etag.map(str::to_string),
        )
        .map_err(reject),
        None => Err(reject(reason)),
    };
    match fetched {
        Ok(Fetched::NotModified) => match (prev, cached_rejection) {
            (Some(m), _) => reuse(
                job,
                previous.expect("a previous record implies a previous build"),
                m,
                blobs,
                None,
                etag.map(str::to_string),
            )
            .map_err(reject),
            (None, Some(r)) => Err(Rejection {
                etag: Some(r.etag.clone()),
                ..reject(r.reason.clone())
            }),
            (None, None) => Err(reject(format!(
                "gist {} answered 304 to a request without a validator",
                job.entry.gist
            ))),
        },
        Ok(Fetched::Fresh { gist, etag }) => {
            let content_rejection = |reason: String| Rejection {
                etag: etag.clone(),
                ..reject(reason)
            };
            check_owner(job.user, &gist).map_err(content_rejection)?;
            let (current, imports) = match capture_newest(job.name, &gist, source, blobs) {
                Ok(captured) => captured,
                Err(CaptureError::Rejected(reason)) => return Err(content_rejection(reason)),
                Err(CaptureError::Unavailable(why)) => {
                    return stale_or_reject(
                        prev,
                        format!("gist {} could not be captured: {why}", job.entry.gist),
                    );
                }
            };
            let mut history = Vec::new();
            if let Some(m) = prev {
                // Every revision captured before stays: pinned locks keep installing.
                let revisions = std::iter::once(m.current).chain(m.history);
                for r in revisions.filter(|r| r.revision != current.revision) {
                    adopt_revision(&r, blobs).map_err(reject)?;
                    history.push(r);
                }
            }
            let record = new_record(job, gist.updated_at.clone(), current, history, None);
            Ok(Indexed {
                record,
                imports,
                etag,
                freshness: Freshness::Fetched,
            })
        }
        Err(FetchError::NotFound) => stale_or_reject(
            prev,
            format!(
                "gist {} was not found on GitHub (deleted, or made private)",
                job.entry.gist
            ),
        ),
        Err(FetchError::Deferred(why)) => stale_or_reject(
            prev,
            format!("gist {} was not refreshed: {why}", job.entry.gist),
        ),
        Err(FetchError::Failed(why)) => stale_or_reject(
            prev,
            format!("gist {} could not be fetched: {why}", job.entry.gist),
        ),
    }
}

fn new_record(
    job: &Job<'_>,
    updated: Option<String>,
    current: mlld_schemas::RevisionRecord,
    history: Vec<mlld_schemas::RevisionRecord>,
    stale: Option<String>,
) -> ModuleRecord {
    ModuleRecord {
        user: job.user.to_string(),
        name: job.name.to_string(),
        gist: job.entry.gist.clone(),
        description: job.entry.description.clone(),
        tags: job.entry.tags.clone(),
        created: job.entry.created.clone(),
        updated,
        current,
        history,
        stale,
    }
}

/// The previous record, with today's registry metadata and its blobs carried over.
fn reuse(
    job: &Job<'_>,
    previous: &Previous,
    m: ModuleRecord,
    blobs: &BlobDir,
    stale: Option<String>,
    etag: Option<String>,
) -> Result<Indexed, String> {
    for r in m.revisions() {
        adopt_revision(r, blobs)?;
    }
    let hex = m.current.integrity.trim_start_matches("sha256:");
    let cached = (previous.imports.get(hex))
        .map(|refs| refs.filter_map(|r| ModuleRef::parse(r).ok()).collect());
    let imports = match cached {
        Some(imports) => imports,
        None => {
            let path = blobs.require(hex).map_err(|e| e.to_string())?;
            let content =
                std::fs::read(path).map_err(|e| format!("reading the previous content: {e}"))?;
            scan_module(&m.current.file, &content)?
        }
    };
    let freshness = if stale.is_some() {
        Freshness::Stale
    } else {
        Freshness::Unchanged
    };
    // Moved, not copied: a million unchanged records a night.
    let record = new_record(job, m.updated, m.current, m.history, stale);
    Ok(Indexed {
        record,
        imports,
        etag,
        freshness,
    })
}

fn adopt_revision(r: &mlld_schemas::RevisionRecord, blobs: &BlobDir) -> Result<(), String> {
    for f in &r.files {
        blobs
            .ensure(&f.sha256)
            .map_err(|e| format!("carrying over from the previous snapshot: {e}"))?;
    }
    Ok(())
}

/// Matches a module's imports against the modules' `names`: known ones
/// become the current revision's `dependencies` (canonical `user/module`)
/// and their positions are handed to `linked`, the rest are added to
/// `unresolved` as `(module, reference)` pairs for the report.
pub fn link_dependencies(
    record: &mut ModuleRecord,
    imports: &[ModuleRef],
    names: &ModuleNames,
    unresolved: &mut Vec<(String, String)>,
    linked: &mut dyn FnMut(usize),
) {
    let own = record.full_name();
    let mut deps = Vec::new();
    for r in imports {
        match names.find(&r.user, &r.module) {
            Some(i) if names.full_name(i) != own => {
                linked(i);
                deps.push(names.full_name(i).to_string());
            }
            Some(_) => {}
            None => unresolved.push((own.clone(), r.to_string())),
        }
    }
    deps.sort();
    deps.dedup();
    record.current.dependencies = deps;
}
