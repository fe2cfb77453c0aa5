//! `doctor`: checks everything the client depends on and prints one line
//! per check (ok, warn or error). Exit 1 when a check found an error.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use crate::commands::{FINDING, exit, print_json};
use crate::config::{ProjectConfig, UserConfig};
use crate::context::{Context, Expired, Flags};
use crate::output::count;
use crate::project::Project;
use crate::store::Store;
use crate::trust::TrustedKeys;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  mlld-registry doctor\n  mlld-registry doctor --json\n\nExit codes: 0 no check found an error (warnings allowed), 1 a check found an error, 2 the checks could not run."
)]
pub struct Args {}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Error,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    pub message: String,
}

fn check(check: &'static str, status: Status, message: impl Into<String>) -> Check {
    Check {
        check,
        status,
        message: message.into(),
    }
}

pub fn run(project: &Project, store: &Store, flags: &Flags) -> Result<ExitCode> {
    let checks = checks(project, store, flags);
    let failed = checks.iter().any(|c| c.status == Status::Error);
    if flags.json {
        print_json(&serde_json::json!({ "checks": checks, "ok": !failed }))?;
    } else {
        for c in &checks {
            let label = match c.status {
                Status::Ok => crate::color::paint("ok   ", "32"),
                Status::Warn => crate::color::paint("warn ", "33"),
                Status::Error => crate::color::paint("error", "1;31"),
            };
            let message = mlld_schemas::terminal::terminal_safe(&c.message);
            crate::outln!("{label} {:<17} {message}", c.check);
        }
    }
    Ok(if failed {
        exit(FINDING)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn checks(project: &Project, store: &Store, flags: &Flags) -> Vec<Check> {
    let mut out = Vec::new();
    let user = match UserConfig::load() {
        Ok(c) => {
            out.push(check("user config", Status::Ok, "readable (or absent)"));
            c
        }
        Err(e) => {
            out.push(check("user config", Status::Error, format!("{e:#}")));
            UserConfig::default()
        }
    };
    out.push(match ProjectConfig::load(project.root()) {
        Ok(_) => check("project config", Status::Ok, "readable (or absent)"),
        Err(e) => check("project config", Status::Error, format!("{e:#}")),
    });
    let keys = TrustedKeys::load(flags.trusted_key.as_deref(), &user.trusted_keys);
    out.push(match &keys {
        Ok(k) => check(
            "trusted keys",
            Status::Ok,
            format!("key {}", k.fingerprint()),
        ),
        Err(e) => check("trusted keys", Status::Error, format!("{e:#}")),
    });
    out.push(store_check(store));
    if let Ok(keys) = &keys {
        out.push(snapshot_check(store, keys));
    }
    let ctx = Context::new(
        Project::new(project.root()),
        Store::at(store.root()),
        user,
        flags.clone(),
    );
    out.push(cache_check(&ctx));
    out.push(json_file_check(
        "mlld lock file",
        &project
            .root()
            .join(mlld_schemas::mlld_files::MLLD_LOCK_NAME),
    ));
    if let Some(home) = super::config::mlld_home() {
        out.push(json_file_check(
            "mlld cache index",
            &home.join("cache/sha256/index.json"),
        ));
    }
    out
}

fn store_check(store: &Store) -> Check {
    if !store.root().exists() {
        return check(
            "store",
            Status::Warn,
            format!(
                "{} does not exist yet: run `mlld-registry sync`",
                store.root().display()
            ),
        );
    }
    match store.state() {
        Ok(_) => check(
            "store",
            Status::Ok,
            format!(
                "{}, {}",
                store.root().display(),
                count(dir_size(store.root()), "byte", "bytes")
            ),
        ),
        Err(e) => check("store", Status::Error, format!("{e:#}")),
    }
}

fn snapshot_check(store: &Store, keys: &TrustedKeys) -> Check {
    let state = match store.state() {
        Ok(s) => s,
        Err(e) => return check("snapshot", Status::Error, format!("{e:#}")),
    };
    let Some(current) = state.current else {
        return check(
            "snapshot",
            Status::Warn,
            "none synced yet: run `mlld-registry sync`",
        );
    };
    if let Some(sparse) = &current.sparse {
        return sparse_check(store, &current, sparse);
    }
    let verified = match store.load_manifest(&current.snapshot, keys) {
        Ok(Some(v)) => v,
        Ok(None) => {
            return check(
                "snapshot",
                Status::Error,
                format!(
                    "the current snapshot {} is missing from the store: run `mlld-registry sync`",
                    current.snapshot
                ),
            );
        }
        Err(e) => return check("snapshot", Status::Error, format!("{e:#}")),
    };
    let m = &verified.manifest;
    let summary = format!(
        "serial {}, synced {}, expires {}",
        m.serial,
        synced_ago(&current.synced_at),
        m.expires
    );
    fresh_or_expired(m.serial, &m.expires, summary)
}

/// How long ago a store was synced, in days.
fn synced_ago(synced_at: &str) -> String {
    let now = time::OffsetDateTime::now_utc();
    mlld_schemas::names::parse_timestamp(synced_at)
        .map(|at| match (now - at).whole_days() {
            ..=0 => "today".to_string(),
            days => format!("{} ago", count(days, "day", "days")),
        })
        .unwrap_or_else(|_| "at an unknown time".into())
}

/// The snapshot check: an error once expired, else `summary`.
fn fresh_or_expired(serial: u64, expires: &str, summary: String) -> Check {
    match Expired::at(serial, expires, time::OffsetDateTime::now_utc()) {
        Some(expired) => check(
            "snapshot",
            Status::Error,
            format!("{expired}: run `mlld-registry sync`"),
        ),
        None => check("snapshot", Status::Ok, summary),
    }
}

/// A sparse store: its root opens (and still hashes to its name); how much
/// of the registry is held locally.
fn sparse_check(
    store: &Store,
    current: &crate::store::Current,
    sparse: &crate::store::SparseCurrent,
) -> Check {
    let opened = crate::sparse::SparseSource::open(store, sparse, true, Default::default());
    let source = match opened {
        Ok(s) => s,
        Err(e) => return check("snapshot", Status::Error, format!("{e:#}")),
    };
    let root = &source.root;
    let held = std::fs::read_dir(store.root().join("sparse/shards"))
        .map(|d| d.flatten().count())
        .unwrap_or(0);
    let summary = format!(
        "sparse, serial {}, synced {}, expires {}; {held} of {} shards held, the rest fetched from {} when read",
        root.serial,
        synced_ago(&current.synced_at),
        root.expires,
        root.shards.len(),
        crate::commands::safe(&sparse.site)
    );
    fresh_or_expired(root.serial, &root.expires, summary)
}

fn cache_check(ctx: &Context) -> Check {
    match super::verify::verify(ctx) {
        Ok(checked) => {
            let bad = checked.iter().filter(|c| c.state != "ok").count();
            if bad == 0 {
                check(
                    "project cache",
                    Status::Ok,
                    format!(
                        "{} match the lock",
                        count(checked.len(), "entry", "entries")
                    ),
                )
            } else {
                check(
                    "project cache",
                    Status::Error,
                    format!(
                        "{} of {} missing or damaged: run `mlld-registry install`",
                        bad,
                        count(checked.len(), "entry", "entries")
                    ),
                )
            }
        }
        Err(e) => check("project cache", Status::Error, format!("{e:#}")),
    }
}

/// A JSON file mlld reads: absent is fine, unreadable or not JSON is an error.
fn json_file_check(name: &'static str, path: &Path) -> Check {
    match crate::input::read_text(path) {
        Ok(None) => check(name, Status::Ok, format!("{} (absent)", path.display())),
        Ok(Some(text)) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(_)) => check(name, Status::Ok, path.display().to_string()),
            Ok(_) => check(
                name,
                Status::Error,
                format!("{}: not a JSON object; mlld cannot read it", path.display()),
            ),
            Err(e) => check(
                name,
                Status::Error,
                format!(
                    "{}:{}:{}: {e}; mlld cannot read it",
                    path.display(),
                    e.line(),
                    e.column()
                ),
            ),
        },
        Err(e) => check(name, Status::Error, format!("{e:#}")),
    }
}

/// Bytes under `dir` (symlinks not followed).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}
