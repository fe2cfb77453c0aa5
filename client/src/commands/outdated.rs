//! `outdated`: the locked modules the snapshot has something newer for,
//! with the locked revision or version (current), the newest the source
//! pins allow (wanted, what `update` would move to) and the newest there is
//! (latest). Exit 1 when a module is outdated, for CI.

use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use crate::commands::{FINDING, exit, print_json, safe, short};
use crate::context::Context;
use crate::pins::{self, Pin, SourcePins};
use crate::resolve::Lookup;
use crate::versioned::VersionedIndex;
use crate::workflow::is_registry_import;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  mlld-registry outdated\n  mlld-registry outdated --json      # CI: exit 1 when something is outdated\n  mlld-registry outdated --snapshot registry.tar.zst --trusted-key mlld-registry.pub\n\nColumns: MODULE, CURRENT (locked), WANTED (the newest the pins in the sources allow, what `update` moves to), LATEST (the newest in the snapshot), PINNED (the pins, where they are written).\nGist modules show revisions, versioned modules versions.\n\nOutput with --json (the data of the JSON envelope, see README): {\"outdated\":[{\"import\",\"kind\":\"gist\"|\"versioned\",\"current\",\"wanted\",\"latest\",\"requested\",\"pins\":[{\"spec\",\"at\"}]}]}\n\nExit codes:\n  0  every locked module is at the newest revision or version there is\n  1  at least one locked module is outdated\n  2  an error: no snapshot, a bad lock file, pins that contradict each other"
)]
pub struct Args {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outdated {
    /// The lock key.
    pub import: String,
    /// `gist` (revisions) or `versioned` (versions).
    pub kind: &'static str,
    pub current: String,
    /// The newest the source pins allow (a versioned module without pins:
    /// what its locked range or tag selects).
    pub wanted: String,
    pub latest: String,
    /// A versioned module's locked range or tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    pub pins: Vec<PinView>,
}

#[derive(Debug, Serialize)]
pub struct PinView {
    pub spec: String,
    /// `file:line`.
    pub at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    outdated: &'a [Outdated],
}

pub fn run(ctx: &Context, _args: &Args) -> Result<ExitCode> {
    let rows = outdated(ctx)?;
    if ctx.json {
        print_json(&Report { outdated: &rows })?;
    } else {
        crate::out!("{}", render(&rows));
    }
    Ok(if rows.is_empty() {
        ExitCode::SUCCESS
    } else {
        exit(FINDING)
    })
}

/// The outdated lock entries, in lock order (Phase-1, then versioned).
pub fn outdated(ctx: &Context) -> Result<Vec<Outdated>> {
    let verified = ctx.registry()?;
    let lock = ctx.project.read_lock()?;
    let lookup = Lookup::new(verified);
    let index = VersionedIndex::new(verified);
    let source_pins = SourcePins::scan(ctx, &lock, &lookup, &index)?;
    let view = |pins: &[Pin]| -> Vec<PinView> {
        pins.iter()
            .map(|p| PinView {
                spec: p.spec.clone(),
                at: p.at.clone(),
            })
            .collect()
    };
    let mut rows = Vec::new();
    for (key, entry) in lock.imports.iter().filter(|(k, _)| is_registry_import(k)) {
        let Ok(r) = mlld_schemas::ModuleRef::parse(key) else {
            continue;
        };
        // Gone from the snapshot: nothing is newer (`ls` says so).
        let Some(module) = lookup.get(&r.user, &r.module)? else {
            continue;
        };
        if module.current.revision == entry.gist_revision {
            continue;
        }
        let pins = source_pins.of(key);
        let wanted = pins::wanted_revision(module, pins)?;
        rows.push(Outdated {
            import: key.clone(),
            kind: "gist",
            current: entry.gist_revision.clone(),
            wanted: wanted.revision.clone(),
            latest: module.current.revision.clone(),
            requested: None,
            pins: view(pins),
        });
    }
    for (key, entry) in &lock.modules {
        let Ok(r) = mlld_schemas::ModuleRef::parse(key) else {
            continue;
        };
        let Some(module) = index.get(&r.user, &r.module)? else {
            continue;
        };
        let pins = source_pins.of(key);
        let (wanted, _) = pins::wanted_version(module, &entry.requested, pins)?;
        let latest = module.latest().map_or(&wanted.version, |l| &l.version);
        if !pins::newer(latest, &entry.version) && !pins::newer(&wanted.version, &entry.version) {
            continue;
        }
        rows.push(Outdated {
            import: key.clone(),
            kind: "versioned",
            current: entry.version.clone(),
            wanted: wanted.version.clone(),
            latest: latest.clone(),
            requested: Some(entry.requested.clone()),
            pins: view(pins),
        });
    }
    Ok(rows)
}

/// The table, or one line saying nothing is outdated.
pub fn render(rows: &[Outdated]) -> String {
    if rows.is_empty() {
        return "every locked module is at the newest revision or version in the snapshot\n".into();
    }
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            let pinned = if r.pins.is_empty() {
                r.requested
                    .as_deref()
                    .map_or("-".into(), |q| format!("{q} (lock)"))
            } else {
                r.pins
                    .iter()
                    .map(|p| format!("{} at {}", p.spec, p.at))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            [
                safe(&r.import).into_owned(),
                safe(short(&r.current)).into_owned(),
                safe(short(&r.wanted)).into_owned(),
                safe(short(&r.latest)).into_owned(),
                safe(&pinned).into_owned(),
            ]
        })
        .collect();
    let header = ["MODULE", "CURRENT", "WANTED", "LATEST", "PINNED"].map(String::from);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&cells) {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&cells) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!(
        "{} outdated\n",
        crate::output::count(rows.len() as u64, "module", "modules")
    ));
    out
}
