//! `cargo xtask bench <name>`: benchmarks that print a ratio against a
//! baseline measured in the same run. Results are recorded in BENCHMARKS.md.
//!
//! Each benchmark lives in its own file here and adds one variant below.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

mod install;

#[derive(Subcommand)]
pub enum Bench {
    /// Install a 1,000-module lock from the store (vs GNU tar) and sync a
    /// 100,000-module snapshot (vs sha256sum + zstd -d).
    #[command(
        after_help = "Example:\n  cargo xtask bench install\n  cargo xtask bench install --install-modules 200 --sync-modules 5000 --runs 3"
    )]
    Install(install::Args),
}

pub fn run(bench: Bench) -> Result<ExitCode> {
    match bench {
        Bench::Install(args) => install::run(args, &workspace_root()),
    }
}

fn workspace_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}
