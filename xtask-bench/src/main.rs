//! `xtask-bench`: the developer tools that need the test-support crate
//! (`mlld-e2e`: loopback servers, a fake GitHub), kept out of the `xtask`
//! binary so that `cargo xtask index` links none of it. Run through
//! `cargo xtask bench …` and `cargo xtask serve …`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod bench;
mod serve;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Benchmarks and the site preview (run through `cargo xtask`)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a benchmark; each prints its ratio against a baseline measured in the same run.
    #[command(subcommand)]
    Bench(bench::Bench),
    /// Serve a built site on 127.0.0.1 for preview.
    #[command(after_help = "Example:\n  cargo xtask index && cargo xtask serve")]
    Serve(serve::ServeArgs),
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask-bench lives in the workspace")
        .to_path_buf()
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            let message = format!("{e:#}");
            eprintln!(
                "error: {}",
                mlld_schemas::terminal::terminal_safe_block(&message)
            );
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Bench(b) => bench::run(b),
        Command::Serve(args) => serve::run(args),
    }
}

/// The current directory, where output goes by default (never the checkout
/// the binary was built from).
fn current_dir() -> Result<PathBuf> {
    use anyhow::Context;
    std::env::current_dir().context("cannot read the current directory; pass the output directory")
}
