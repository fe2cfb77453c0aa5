//! `cargo xtask bench <name>`: benchmarks that print a ratio against a
//! baseline measured in the same run. Results are recorded in BENCHMARKS.md.
//!
//! Each benchmark lives in its own file here and adds one variant below.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

mod search;
mod search_queries;

#[derive(Subcommand)]
pub enum Bench {
    /// Search over a synthetic 100,000-module registry: index build, query
    /// latency in-process and through `mlld-registry search`, against a
    /// linear scan of every registry.json.
    #[command(
        after_help = "Example:\n  cargo xtask bench search\n  cargo xtask bench search --modules 10000 --users 1000"
    )]
    Search(search::SearchArgs),
}

pub fn run(bench: Bench) -> Result<ExitCode> {
    match bench {
        Bench::Search(args) => search::run(args),
    }
}
