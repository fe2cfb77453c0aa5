//! Usage statistics, as the registry guide's StatsCollector keeps them: off
//! unless a config enables them, appended to `.mlld/stats/usage.jsonl` one
//! JSON object a line, and never sent anywhere.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::project::Project;

pub const IMPORT: &str = "import";
pub const CACHE_HIT: &str = "cache-hit";
pub const UPDATE: &str = "update";
pub const INSTALL: &str = "install";
pub const EVENTS: [&str; 4] = [IMPORT, CACHE_HIT, UPDATE, INSTALL];

pub const USAGE_FILE: &str = ".mlld/stats/usage.jsonl";

/// One line of `usage.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Event {
    pub timestamp: String,
    pub module: String,
    pub event: String,
}

pub fn usage_path(project: &Project) -> PathBuf {
    project.root().join(USAGE_FILE)
}

/// Appends events when statistics are enabled. Statistics never fail a
/// command: a write error is reported on stderr and the command goes on.
pub fn record(ctx: &Context, events: &[(String, &str)]) {
    if events.is_empty() || !ctx.stats_enabled() {
        return;
    }
    let timestamp = mlld_schemas::names::format_timestamp(ctx.now);
    let mut text = String::new();
    for (module, event) in events {
        let line = Event {
            timestamp: timestamp.clone(),
            module: module.clone(),
            event: event.to_string(),
        };
        text.push_str(&serde_json::to_string(&line).expect("events serialize"));
        text.push('\n');
    }
    let path = usage_path(&ctx.project);
    let result = (|| -> std::io::Result<()> {
        let mut f = ctx.project.fs().open_append(&path)?;
        // One write of whole lines: O_APPEND keeps concurrent writers' lines apart.
        f.write_all(text.as_bytes())
    })();
    if let Err(e) = result {
        eprintln!(
            "warning: could not record usage statistics in {}: {e}",
            path.display()
        );
    }
}

/// Counts per module and event, from events at or after `since`.
#[derive(Debug, Default, Serialize)]
pub struct Aggregate {
    pub since: Option<String>,
    pub events: usize,
    /// Malformed lines skipped (a line cut by a crash, for example).
    pub skipped: usize,
    pub modules: BTreeMap<String, BTreeMap<String, u64>>,
    pub totals: BTreeMap<String, u64>,
}

pub fn aggregate(project: &Project, since: Option<time::OffsetDateTime>) -> Result<Aggregate> {
    let path = usage_path(project);
    let text = crate::input::read_text(&path)?.unwrap_or_default();
    let mut agg = Aggregate {
        since: since.map(mlld_schemas::names::format_timestamp),
        ..Aggregate::default()
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Some((event, at)) = serde_json::from_str::<Event>(line).ok().and_then(|e| {
            let at = mlld_schemas::names::parse_timestamp(&e.timestamp).ok()?;
            Some((e, at))
        }) else {
            agg.skipped += 1;
            continue;
        };
        if since.is_some_and(|s| at < s) {
            continue;
        }
        agg.events += 1;
        *agg.modules
            .entry(event.module)
            .or_default()
            .entry(event.event.clone())
            .or_default() += 1;
        *agg.totals.entry(event.event).or_default() += 1;
    }
    Ok(agg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_per_module_and_event_and_skips_damaged_lines() {
        let dir = tempfile::tempdir().unwrap();
        let project = Project::new(dir.path());
        let path = usage_path(&project);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            concat!(
                "{\"timestamp\":\"2025-01-01T00:00:00Z\",\"module\":\"mlld://a/x\",\"event\":\"import\"}\n",
                "{\"timestamp\":\"2025-02-01T00:00:00Z\",\"module\":\"mlld://a/x\",\"event\":\"cache-hit\"}\n",
                "{\"timestamp\":\"2025-02-02T00:00:00Z\",\"module\":\"mlld://b/y\",\"event\":\"cache-hit\"}\n",
                "{\"timestamp\":\"2025-02-0",
            ),
        )
        .unwrap();
        let all = aggregate(&project, None).unwrap();
        assert_eq!((all.events, all.skipped), (3, 1));
        assert_eq!(all.modules["mlld://a/x"]["import"], 1);
        assert_eq!(all.totals["cache-hit"], 2);
        let since = mlld_schemas::names::parse_timestamp("2025-01-15T00:00:00Z").unwrap();
        let later = aggregate(&project, Some(since)).unwrap();
        assert_eq!(later.events, 2);
        assert!(!later.totals.contains_key("import"));
    }
}
