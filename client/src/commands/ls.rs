//! `ls`: the project's locked modules, their revisions and cache state, and
//! whether the current snapshot has a newer revision.

use std::process::ExitCode;

use anyhow::Result;
use mlld_schemas::ModuleRef;
use mlld_schemas::lock::parse_resolved;
use serde::Serialize;

use crate::commands::verify::state_name;
use crate::commands::{print_json, safe, short};
use crate::context::Context;
use crate::resolve::Lookup;
use crate::versioned::VersionedIndex;
use crate::workflow::is_registry_import;

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  mlld-registry ls\n  mlld-registry ls --json")]
pub struct Args {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub import: String,
    pub resolved: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gist_revision: Option<String>,
    /// A versioned module: the locked version and what the project asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    pub integrity: String,
    pub approved_at: String,
    /// Cache state: ok, missing, tampered, bad-metadata.
    pub state: &'static str,
    /// The snapshot's newest revision when it differs from the locked one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newer: Option<String>,
}

pub fn run(ctx: &Context, _args: &Args) -> Result<ExitCode> {
    let lock = ctx.project.read_lock()?;
    // The snapshot only adds "newer" hints: ls works without one.
    let registry = ctx.registry().ok();
    let lookup = registry.map(Lookup::new);
    let mut rows = Vec::new();
    for (import, e) in lock.imports.iter().filter(|(k, _)| is_registry_import(k)) {
        let (user, gist) = parse_resolved(&e.resolved).unwrap_or(("", ""));
        let state = ctx
            .project
            .cache_state(user, gist, &e.gist_revision, &e.integrity);
        let newer = ModuleRef::parse(import).ok().and_then(|r| {
            let m = lookup.as_ref()?.get(&r.user, &r.module).ok()??;
            (m.current.revision != e.gist_revision).then(|| m.current.revision.clone())
        });
        rows.push(Row {
            import: import.clone(),
            resolved: e.resolved.clone(),
            gist_revision: Some(e.gist_revision.clone()),
            version: None,
            requested: None,
            integrity: e.integrity.clone(),
            approved_at: e.approved_at.clone(),
            state: state_name(state),
            newer,
        });
    }
    let versioned = registry.map(VersionedIndex::new);
    for (key, e) in &lock.modules {
        let state = crate::versioned_cache::state(&ctx.project, key, e);
        // The version the request selects in this snapshot, when it moved.
        let newer = ModuleRef::parse(key).ok().and_then(|r| {
            let m = versioned.as_ref()?.get(&r.user, &r.module).ok()??;
            let now = crate::versioned::select(m, Some(&e.requested)).ok()?;
            (now.version != e.version).then(|| now.version.clone())
        });
        rows.push(Row {
            import: key.clone(),
            resolved: e.resolved.clone(),
            gist_revision: None,
            version: Some(e.version.clone()),
            requested: Some(e.requested.clone()),
            integrity: e.integrity.clone(),
            approved_at: e.approved_at.clone(),
            state: state_name(state),
            newer,
        });
    }
    if ctx.json {
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        crate::outln!(
            "no modules are locked; run `mlld-registry install` or `mlld-registry resolve @user/module`"
        );
    }
    // Revisions and versions share a column as wide as its widest cell.
    let ats: Vec<String> = rows.iter().map(|r| safe(&at(r)).into_owned()).collect();
    let width = ats.iter().map(|a| a.chars().count()).max().unwrap_or(0);
    for (r, at) in rows.iter().zip(&ats) {
        let newer = r
            .newer
            .as_deref()
            .map(|n| format!("  (newer: {}; `mlld-registry update`)", safe(short(n))))
            .unwrap_or_default();
        crate::outln!(
            "{:<44} {at:<width$}  {:<8} approved {}{newer}",
            safe(&r.import),
            r.state,
            safe(&r.approved_at)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Where a row is locked: its version and what was asked, or its revision.
fn at(r: &Row) -> String {
    match (&r.version, &r.requested, &r.gist_revision) {
        (Some(v), Some(req), _) => format!("{v} ({req})"),
        (_, _, Some(rev)) => short(rev).to_string(),
        _ => String::new(),
    }
}
