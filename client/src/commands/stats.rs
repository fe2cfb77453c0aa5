//! `stats [--since DATE]`: usage statistics aggregated per module and event,
//! from `.mlld/stats/usage.jsonl`. Recording is off unless `"stats": true`
//! is set in the user or project config; nothing ever leaves the machine.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::commands::print_json;
use crate::config::PROJECT_CONFIG;
use crate::context::Context;
use crate::output::count;
use crate::usage::{self, EVENTS};

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  mlld-registry stats\n  mlld-registry stats --since 2025-01-01 --json\n\nEnable recording with {\"stats\": true} in .mlld/config.json or the user config file."
)]
pub struct Args {
    /// Only events at or after this date (YYYY-MM-DD) or time (RFC 3339).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
}

fn parse_since(s: &str) -> Result<time::OffsetDateTime> {
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_string()
    };
    match mlld_schemas::names::parse_timestamp(&full) {
        Ok(t) => Ok(t),
        Err(_) => bail!("--since `{s}` is not a date (YYYY-MM-DD) or an RFC 3339 time"),
    }
}

pub fn run(ctx: &Context, args: &Args) -> Result<ExitCode> {
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let agg = usage::aggregate(&ctx.project, since)?;
    if ctx.json {
        let mut value = serde_json::to_value(&agg)?;
        value["enabled"] = ctx.stats_enabled().into();
        print_json(&value)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !ctx.stats_enabled() {
        eprintln!(
            "note: usage statistics are off; enable them with {{\"stats\": true}} in {PROJECT_CONFIG} or the user config file"
        );
    }
    crate::outln!(
        "{:<44} {:>7} {:>9} {:>7} {:>7}",
        "module",
        EVENTS[0],
        EVENTS[1],
        EVENTS[2],
        EVENTS[3]
    );
    for (module, counts) in &agg.modules {
        let n = |e: &str| counts.get(e).copied().unwrap_or(0);
        let module = crate::commands::safe(module);
        crate::outln!(
            "{module:<44} {:>7} {:>9} {:>7} {:>7}",
            n(EVENTS[0]),
            n(EVENTS[1]),
            n(EVENTS[2]),
            n(EVENTS[3])
        );
    }
    crate::outln!("{}", count(agg.events, "event", "events"));
    Ok(ExitCode::SUCCESS)
}
