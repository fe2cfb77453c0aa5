//! `install`: lock what the project's mlld files import (and their
//! dependencies), then bring every lock entry into the cache at its locked
//! revision, repairing damaged entries.

use std::process::ExitCode;

use anyhow::Result;
use mlld_schemas::{LockEntry, LockFile};
use serde::Serialize;

use crate::commands::{print_json, safe};
use crate::context::Context;
use crate::json_output::{Problem, Problems};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::project::CacheState;
use crate::workflow::{self, Locker, Request, is_registry_import};
use crate::{imported_state, lock_graph, mlld_config, mlld_home, scan, usage, versioned_lock};
use std::collections::BTreeSet;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  mlld-registry install\n  mlld-registry install --frozen --offline   # CI: the lock must be complete, no network\n  mlld-registry install --snapshot registry.tar.zst --trusted-key mlld-registry.pub"
)]
pub struct Args {
    /// Fail instead of changing the lock file (for CI).
    #[arg(long)]
    pub frozen: bool,
}

#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallReport {
    /// Lock entries this run added (imports found in the project, dependencies).
    pub locked: Vec<String>,
    /// Entries written to the cache for the first time.
    pub installed: Vec<String>,
    /// Entries already cached and intact.
    pub cached: Vec<String>,
    /// Entries whose cached files were missing parts or damaged, now rewritten.
    pub repaired: Vec<String>,
    /// Entries no import of the project reaches any more, dropped with
    /// their cache entries.
    pub removed: Vec<crate::lock_graph::Removed>,
}

pub fn run(ctx: &Context, args: &Args) -> Result<ExitCode> {
    let report = install(ctx, args.frozen)?;
    if ctx.json {
        print_json(&report)?;
    } else {
        for r in &report.removed {
            crate::outln!(
                "removed {} ({}): no import in the project reaches it any more",
                safe(&r.import),
                safe(crate::commands::short(&r.at))
            );
        }
        for (label, list) in [
            ("locked", &report.locked),
            ("installed", &report.installed),
            ("repaired", &report.repaired),
        ] {
            for import in list {
                crate::outln!("{label} {}", safe(import));
            }
        }
        crate::outln!(
            "{} installed, {} repaired, {} already cached",
            report.installed.len(),
            report.repaired.len(),
            report.cached.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn install(ctx: &Context, frozen: bool) -> Result<InstallReport> {
    let prefixes = ctx.project_config()?.prefixes.clone();
    let (mut found, mut problems) = scan::project_imports(ctx.project.root(), &prefixes)?;
    let (declared, config_problems) = mlld_config::dependencies(ctx.project.root());
    found.extend(declared);
    problems.extend(config_problems);
    let verified = ctx.registry()?;
    let _guard = ctx.project.exclusive()?;
    ctx.project.clean_staging()?;
    mlld_home::check(ctx)?;
    let lock: LockFile = ctx.project.read_lock()?;
    let mut locker = Locker::new(ctx, verified, lock);
    locker.frozen = frozen;
    let mut report = InstallReport::default();
    // Every problem in the project is reported in one run; nothing is
    // written unless there is none.
    let mut errors: Vec<Problem> = problems
        .iter()
        .map(|p| Problem {
            code: "invalid-input",
            file: p.file.display().to_string(),
            line: p.line,
            column: p.column,
            message: p.message.clone(),
        })
        .collect();
    for f in &found {
        let at = format!("imported at {}:{}", f.file.display(), f.line);
        locker.approvals.origin = Some(at);
        match locker.lock_requests(std::slice::from_ref(&f.request)) {
            Ok(locked) => report
                .locked
                .extend(locked.into_iter().filter(|l| l.added).map(|l| l.import)),
            Err(e) => errors.push(Problem {
                code: "unresolved",
                file: f.file.display().to_string(),
                line: f.line,
                column: None,
                message: format!("{} ({e:#})", f.request.reference),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(Problems {
            summary: format!("{} problem(s); nothing was changed:", errors.len()),
            items: errors,
        }
        .into());
    }
    let dropped = prune(ctx, &mut locker, &found, frozen)?;
    // What the lock holds stands, with its dependencies.
    let mut roots: Vec<Request> = Vec::new();
    for import in locker.lock.imports.keys().filter(|k| is_registry_import(k)) {
        roots.push(Request::parse(import)?);
    }
    for key in locker.lock.modules.keys() {
        let request = Request::parse(key)?;
        let r = &request.reference;
        // Gone from the snapshot: the entry stands and its cache may serve.
        if locker.versioned.get(&r.user, &r.module)?.is_some() {
            roots.push(request);
        }
    }
    locker.approvals.origin = None;
    let locked = locker.lock_requests(&roots)?;
    locker.approve_pending()?;
    report
        .locked
        .extend(locked.into_iter().filter(|l| l.added).map(|l| l.import));
    if locker.changed {
        ctx.project.write_lock(&locker.lock)?;
    }
    let mut events = Vec::new();
    let entries: Vec<(&String, &LockEntry)> = locker
        .lock
        .imports
        .iter()
        .filter(|(k, _)| is_registry_import(k))
        .collect();
    let project = &ctx.project;
    let states = par_each(&entries, |(import, entry)| {
        workflow::cache_state_of(project, import, entry)
    })?;
    let mut prepared = Vec::with_capacity(entries.len());
    for ((import, entry), state) in entries.iter().zip(states) {
        let p = workflow::prepare_entry(
            ctx,
            Some(verified),
            Some(&locker.lookup),
            import,
            entry,
            state,
        )?;
        prepared.push(((*import).clone(), p));
    }
    par_each(&prepared, |(_, p)| p.write(project))?;
    let mut prepared: Vec<(String, CacheState)> =
        prepared.into_iter().map(|(i, p)| (i, p.state)).collect();
    for (key, entry) in &locker.lock.modules {
        let snapshot = Some((verified, &locker.versioned));
        let state = versioned_lock::install_entry(ctx, snapshot, key, entry)?;
        prepared.push((key.clone(), state));
    }
    let mut keys = Vec::new();
    for (import, state) in prepared {
        let (list, event) = match state {
            CacheState::Valid => (&mut report.cached, usage::CACHE_HIT),
            CacheState::Missing => (&mut report.installed, usage::INSTALL),
            CacheState::Tampered | CacheState::BadMetadata => {
                (&mut report.repaired, usage::INSTALL)
            }
        };
        list.push(import.clone());
        keys.push(import.clone());
        events.push((import, event));
    }
    report.removed = lock_graph::clean_dropped(ctx, &locker.lock, dropped)?;
    mlld_home::sync(ctx, &locker.lock, &keys)?;
    usage::record(ctx, &events);
    Ok(report)
}

/// The lock follows the project: drops the entries that no import of the
/// project (its files and `mlld-config.json`) reaches any more, directly or
/// through dependencies, after imports that reached them were deleted;
/// `--frozen` fails instead, naming them. Returns
/// the dropped entries, whose caches go once the lock is written.
fn prune(
    ctx: &Context,
    locker: &mut Locker<'_>,
    found: &[scan::Found],
    frozen: bool,
) -> Result<Vec<(lock_graph::Removed, lock_graph::Entry)>> {
    let (lock, lookup, index) = (&locker.lock, &locker.lookup, &locker.versioned);
    let graph = lock_graph::LockGraph::new(lock, lookup, index);
    let roots = found
        .iter()
        .filter_map(|f| lock_graph::key_of(lock, lookup, index, &f.request));
    let keep = graph.reachable(roots);
    // Only what imports held before and hold no more: an entry locked by
    // `resolve` and never imported stays (see `imported_state`).
    let before = imported_state::read(&ctx.project);
    let unused: BTreeSet<String> = graph
        .keys()
        .filter(|k| !keep.contains(*k) && before.contains(*k))
        .cloned()
        .collect();
    if unused.is_empty() {
        if !frozen {
            imported_state::write(&ctx.project, &keep)?;
        }
        return Ok(Vec::new());
    }
    if frozen {
        let names: Vec<&str> = unused.iter().map(String::as_str).collect();
        anyhow::bail!(
            "the lock holds {} that no import in the project reaches any more: {}; --frozen forbids changing the lock. Run `mlld-registry install` without --frozen (it removes them) and commit .mlld/mlld.lock.json",
            crate::output::count(unused.len() as u64, "module", "modules"),
            crate::commands::safe(&names.join(", "))
        );
    }
    locker.changed = true;
    let dropped = lock_graph::drop_entries(&mut locker.lock, &unused);
    // Refused before anything is written: the imported set too, or the next
    // run would no longer know these were imported and keep them for good.
    lock_graph::check_removable(&ctx.project, &dropped)?;
    imported_state::write(&ctx.project, &keep)?;
    Ok(dropped)
}

/// Runs `f` over `items` on a few threads, results in order. Checking and
/// writing many small cache files is system-call bound (and waits on the
/// file system), and every entry is independent.
fn par_each<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> Result<R> + Sync) -> Result<Vec<R>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
    let next = AtomicUsize::new(0);
    let worker = || -> Result<Vec<(usize, R)>> {
        let mut out = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else {
                return Ok(out);
            };
            out.push((i, f(item)?));
        }
    };
    let parts: Vec<Result<Vec<(usize, R)>>> = std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads.min(items.len().max(1)))
            .map(|_| s.spawn(worker))
            .collect();
        let mut parts = vec![worker()];
        parts.extend(
            helpers
                .into_iter()
                .map(|h| h.join().expect("cache workers do not panic")),
        );
        parts
    });
    let mut all = Vec::with_capacity(items.len());
    for part in parts {
        all.extend(part?);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, r)| r).collect())
}
