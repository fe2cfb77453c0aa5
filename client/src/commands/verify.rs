//! `verify`: re-hash every cached module against the lock file. Exit 1 when
//! an entry is missing or does not match; `install` repairs them. Needs no
//! snapshot and no network.

use std::process::ExitCode;

use anyhow::{Result, bail};
use mlld_schemas::lock::parse_resolved;
use serde::Serialize;

use crate::commands::{FINDING, exit, print_json, safe, short};
use crate::context::Context;
use crate::output::count;
use crate::project::CacheState;
use crate::workflow::is_registry_import;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  mlld-registry verify\n  mlld-registry verify --json\n\nExit codes: 0 every entry matches, 1 an entry is missing or damaged (run `mlld-registry install`), 2 error."
)]
pub struct Args {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Checked {
    pub import: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gist_revision: Option<String>,
    /// The locked version of a versioned module (every file re-hashed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `ok`, `missing`, `tampered` (content does not match the lock) or `bad-metadata`.
    pub state: &'static str,
}

pub fn state_name(s: CacheState) -> &'static str {
    match s {
        CacheState::Valid => "ok",
        CacheState::Missing => "missing",
        CacheState::Tampered => "tampered",
        CacheState::BadMetadata => "bad-metadata",
    }
}

pub fn run(ctx: &Context, _args: &Args) -> Result<ExitCode> {
    let checked = verify(ctx)?;
    let problems = checked.iter().filter(|c| c.state != "ok").count();
    if ctx.json {
        print_json(&serde_json::json!({ "entries": checked, "problems": problems }))?;
    } else {
        for c in checked.iter().filter(|c| c.state != "ok") {
            let at = c
                .version
                .as_deref()
                .or(c.gist_revision.as_deref().map(short))
                .unwrap_or("");
            crate::outln!("{:<12} {} @ {}", c.state, safe(&c.import), safe(at));
        }
        crate::outln!(
            "{} of {} {} the lock{}",
            checked.len() - problems,
            count(checked.len(), "cached module", "cached modules"),
            if checked.len() - problems == 1 {
                "matches"
            } else {
                "match"
            },
            if problems > 0 {
                "; run `mlld-registry install` to repair the others"
            } else {
                ""
            }
        );
    }
    Ok(if problems > 0 {
        exit(FINDING)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn verify(ctx: &Context) -> Result<Vec<Checked>> {
    let lock = ctx.project.read_lock()?;
    let mut out = Vec::new();
    for (import, entry) in lock.imports.iter().filter(|(k, _)| is_registry_import(k)) {
        let Some((user, gist)) = parse_resolved(&entry.resolved) else {
            bail!("{import}: `{}` is not a gist reference", entry.resolved);
        };
        let state = ctx
            .project
            .cache_state(user, gist, &entry.gist_revision, &entry.integrity);
        out.push(Checked {
            import: import.clone(),
            gist_revision: Some(entry.gist_revision.clone()),
            version: None,
            state: state_name(state),
        });
    }
    for (key, entry) in &lock.modules {
        let state = crate::versioned_cache::state(&ctx.project, key, entry);
        out.push(Checked {
            import: key.clone(),
            gist_revision: None,
            version: Some(entry.version.clone()),
            state: state_name(state),
        });
    }
    Ok(out)
}
