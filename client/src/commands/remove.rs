//! `remove MODULE`: drops a lock entry and the dependencies nothing else
//! needs any more (both lock maps, transitively), with their project cache
//! entries and their entries in mlld's `mlld-lock.json`.

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::commands::{print_json, safe};
use crate::context::Context;
use crate::lock_graph::{self, LockGraph, Removed, key_of};
use crate::resolve::{Lookup, closest_names};
use crate::versioned::VersionedIndex;
use crate::workflow::Request;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  mlld-registry remove @sarah-k/eval-report\n  mlld-registry remove mlld://adamavenir/json-utils   # the Phase-1 module, when the name has both layouts\n  mlld-registry remove @alice-dev/prompt-lib --json\n\nDelete the module's imports from the sources first: `install` locks every import again.\n\nOutput with --json (the data of the JSON envelope, see README): {\"removed\":[{\"import\",\"at\",\"cache\"}],\"stillImported\":[\"file:line\"]}\n\nExit codes:\n  0  the module (and what only it needed) was removed\n  2  an error: not in the lock file, another locked module needs it, bad input"
)]
pub struct Args {
    /// @user/module, user/module, mlld://user/module (the Phase-1 module) or
    /// @author/name (a versioned module).
    pub module: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoveReport {
    /// The module named first, then the dependencies that went with it.
    pub removed: Vec<Removed>,
    /// Where the project's files still import the module (`file:line`).
    pub still_imported: Vec<String>,
}

pub fn run(ctx: &Context, args: &Args) -> Result<ExitCode> {
    let report = remove(ctx, &args.module)?;
    for at in &report.still_imported {
        eprintln!(
            "warning: {} still imports {}; `mlld-registry install` would lock it again. Delete the import too.",
            safe(at),
            safe(&report.removed[0].import)
        );
    }
    if ctx.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    for (i, r) in report.removed.iter().enumerate() {
        let why = if i == 0 { "" } else { ", no longer needed" };
        crate::outln!(
            "removed {} ({}{why})",
            safe(&r.import),
            safe(crate::commands::short(&r.at))
        );
        if let Some(cache) = &r.cache {
            crate::outln!("  deleted {}", safe(cache));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Removes the lock entry `reference` names and what only it needed.
pub fn remove(ctx: &Context, reference: &str) -> Result<RemoveReport> {
    let request = Request::parse(reference)?;
    if let Some(pin) = &request.reference.pin {
        bail!(
            "`remove` takes a module without a pin (`@{}`): mlld-registry remove {}",
            safe(pin),
            request.reference.at_name()
        );
    }
    let verified = ctx.registry()?;
    let prefixes = ctx.project_config()?.prefixes.clone();
    // Problems in the sources are `install`'s to report; the imports found stand.
    let (found, _) = lock_graph::project_roots(&ctx.project, &prefixes)?;
    let _guard = ctx.project.exclusive()?;
    ctx.project.clean_staging()?;
    crate::mlld_home::check(ctx)?;
    let mut lock = ctx.project.read_lock()?;
    let lookup = Lookup::new(verified);
    let index = VersionedIndex::new(verified);
    let Some(key) = key_of(&lock, &lookup, &index, &request) else {
        let keys = lock.imports.keys().chain(lock.modules.keys()).cloned();
        let near = closest_names(&request.reference.full_name(), keys, 3);
        let hint = if near.is_empty() {
            String::new()
        } else {
            format!(" Did you mean {}?", near.join(", "))
        };
        bail!(
            "{} is not in the lock file ({}).{hint} `mlld-registry ls` lists what is locked",
            request.reference,
            ctx.project.lock_path().display()
        );
    };
    let graph = LockGraph::new(&lock, &lookup, &index);
    let needed_by = graph.dependents(&key);
    if !needed_by.is_empty() {
        bail!(
            "{key} is a dependency of {}: removing it alone would leave the lock incomplete (`install` would lock it again); remove {} instead, nothing was changed",
            needed_by.join(", "),
            if needed_by.len() == 1 {
                "that module"
            } else {
                "those modules"
            }
        );
    }
    let mut still_imported = Vec::new();
    let mut roots = Vec::new();
    for f in &found {
        match key_of(&lock, &lookup, &index, &f.request) {
            Some(k) if k == key => still_imported.push(format!("{}:{}", f.file.display(), f.line)),
            Some(k) => roots.push(k),
            None => {}
        }
    }
    // What the module reaches goes, unless the rest of the lock or a
    // source import still reaches it.
    let candidates = graph.reachable([key.clone()]);
    roots.extend(graph.keys().filter(|k| !candidates.contains(*k)).cloned());
    let keep = graph.reachable(roots);
    let mut gone: BTreeSet<String> = candidates.difference(&keep).cloned().collect();
    gone.insert(key.clone());
    let dropped = lock_graph::drop_entries(&mut lock, &gone);
    lock_graph::check_removable(&ctx.project, &dropped)?;
    ctx.project.write_lock(&lock)?;
    let mut removed = lock_graph::clean_dropped(ctx, &lock, dropped)?;
    removed.sort_by_key(|r| r.import != key);
    Ok(RemoveReport {
        removed,
        still_imported,
    })
}
