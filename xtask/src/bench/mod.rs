//! `cargo xtask bench <name>`: benchmarks that print a ratio against a
//! baseline measured in the same run. Results are recorded in BENCHMARKS.md.
//!
//! Each benchmark lives in its own file here and adds one variant below.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum Bench {}

pub fn run(bench: Bench) -> Result<ExitCode> {
    match bench {}
}
