//! `cargo xtask`: the one entry point for building the registry site and
//! maintaining the repository.
//!
//! `bench` and `serve` are handed to the `xtask-bench` binary (see
//! [`delegate`]), so that this one, which `cargo xtask index` runs in
//! production, links no test-support code.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// The indexer's allocator. glibc's malloc keeps what a stage frees in its
/// heaps and per-thread arenas: at 1,000,000 modules the registry's entries
/// (freed after the crawl) and each stage's working sets stayed resident
/// into every later stage, and about a gigabyte of the incremental build's
/// peak was memory already freed. mimalloc hands freed pages back to the
/// kernel (`BENCHMARKS.md`, "Memory").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod check;
mod delegate;
mod index;
mod man;
mod publish;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build the mlld registry site and maintain this repository"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the signed snapshot and static site from a registry.
    ///
    /// With no flags it builds the embedded example registry with the demo
    /// key into target/site/, offline.
    #[command(
        after_help = "Examples:\n  cargo xtask index\n  cargo xtask index --registry ../registry --out public --signing-key ~/.config/mlld/registry.key\n  cargo xtask index --registry ../registry --out s3://my-bucket/registry --previous https://my-bucket.s3.amazonaws.com/registry --signing-key registry.key"
    )]
    Index(Box<index::IndexArgs>),
    /// Upload a built site to S3-compatible object storage: content-addressed
    /// files first (cached for a year), then the rest, latest.json last
    /// (no-cache), and objects the new site no longer needs deleted after.
    #[command(
        after_help = "Example:\n  AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… AWS_REGION=eu-west-1 cargo xtask publish --from target/site --to s3://my-bucket/registry"
    )]
    Publish(publish::PublishArgs),
    /// Validate a registry's files (and gist ownership, with --github-api); exit 1 on errors.
    #[command(
        after_help = "Examples:\n  cargo xtask check --registry .\n  GITHUB_ACTIONS=true cargo xtask check --registry . --github-api https://api.github.com"
    )]
    Check(check::CheckArgs),
    /// Serve a built site on 127.0.0.1 for preview (`--help` for options).
    #[command(
        after_help = "Example:\n  cargo xtask index && cargo xtask serve",
        disable_help_flag = true
    )]
    Serve {
        /// `[DIR] [--port PORT]`, passed to `xtask-bench serve`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Make a new minisign key pair: DIR/NAME.key and DIR/NAME.pub.
    #[command(after_help = "Example:\n  cargo xtask keygen --out ~/.config/mlld --name registry")]
    Keygen {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "mlld-registry")]
        name: String,
        /// Untrusted comment written into the secret key file.
        #[arg(long, hide = true)]
        comment: Option<String>,
    },
    /// Run a benchmark; each prints its ratio against a baseline measured in
    /// the same run (`cargo xtask bench --help` lists them).
    #[command(
        after_help = "Example:\n  cargo xtask bench crawl --users 10000 --modules 100000",
        disable_help_flag = true
    )]
    Bench {
        /// `NAME [OPTIONS]`, passed to `xtask-bench bench` (a release build).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Write man pages for mlld-registry and each subcommand (DIR/mlld-registry.1, DIR/mlld-registry-sync.1, …).
    #[command(
        after_help = "Example:\n  cargo xtask man --out target/man && man -l target/man/mlld-registry.1"
    )]
    Man(man::ManArgs),
    /// Regenerate the JSON Schemas under schemas/json/ from the Rust types.
    Schemas,
    /// Generate a synthetic registry (DIR/registry) and matching gist responses (DIR/gists).
    #[command(
        after_help = "Example:\n  cargo xtask synth --users 10000 --modules 100000 --out target/synth\n  cargo xtask index --registry target/synth/registry --gists target/synth/gists --out target/synth-site"
    )]
    Synth {
        #[arg(long, default_value_t = 100)]
        users: usize,
        #[arg(long, default_value_t = 1000)]
        modules: usize,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Where output goes by default: the user's current directory.
fn current_dir() -> Result<PathBuf> {
    use anyhow::Context;
    std::env::current_dir().context("cannot read the current directory; pass the output directory")
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
    let root = workspace_root();
    match cli.command {
        Command::Index(args) => index::run(&root, *args),
        Command::Check(args) => check::run(args),
        Command::Publish(args) => publish::run(args),
        Command::Serve { args } => delegate::run(&root, delegate::Tool::Serve, args),
        Command::Keygen { out, name, comment } => {
            let (sk, pk) =
                mlld_indexer::signing::generate_keypair(&out, &name, comment.as_deref())?;
            println!(
                "secret key: {}\npublic key: {}\nKeep the secret key out of version control; publish the public key.",
                sk.display(),
                pk.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { args } => delegate::run(&root, delegate::Tool::Bench, args),
        Command::Man(args) => man::run(args),
        Command::Synth {
            users,
            modules,
            out,
            seed,
        } => {
            let synth = mlld_synth::Synth::new(mlld_synth::SynthConfig {
                users,
                modules,
                seed,
            });
            synth.write(&out, &Default::default())?;
            println!(
                "wrote {} users and {} modules to {}",
                synth.users.len().min(modules),
                modules,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Schemas => {
            let dir = root.join("schemas/json");
            for (name, text) in mlld_schemas::json_schemas() {
                mlld_fsutil::write_atomic(&dir.join(name), text.as_bytes())?;
                println!("wrote schemas/json/{name}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
