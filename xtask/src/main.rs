//! `cargo xtask`: the one entry point for building the registry site and
//! maintaining the repository.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

mod bench;

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
        after_help = "Examples:\n  cargo xtask index\n  cargo xtask index --registry ../registry --out public --signing-key ~/.config/mlld/registry.key"
    )]
    Index(IndexArgs),
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
    /// Run a benchmark; each prints its ratio against a baseline measured in the same run.
    #[command(subcommand)]
    Bench(bench::Bench),
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

#[derive(clap::Args)]
struct IndexArgs {
    /// The registry checkout: one folder per user. Default: examples/registry.
    #[arg(long)]
    registry: Option<PathBuf>,
    /// Recorded `GET /gists/{id}` responses. Default: examples/gists.
    #[arg(long)]
    gists: Option<PathBuf>,
    /// The site directory. Default: target/site.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Minisign secret key (password from MLLD_SIGNING_KEY_PASSWORD). Default: the demo key.
    #[arg(long, env = "MLLD_SIGNING_KEY_FILE")]
    signing_key: Option<PathBuf>,
    /// Snapshot serial. Default: the site's current serial plus one.
    #[arg(long)]
    serial: Option<u64>,
    /// Days until clients refuse the snapshot as expired.
    #[arg(long, default_value_t = 14)]
    expires_in_days: i64,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let root = workspace_root();
    match cli.command {
        Command::Index(args) => index(&root, args),
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
        Command::Bench(b) => bench::run(b),
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

fn index(root: &Path, args: IndexArgs) -> Result<ExitCode> {
    let registry = args
        .registry
        .unwrap_or_else(|| root.join("examples/registry"));
    let gists = args.gists.unwrap_or_else(|| root.join("examples/gists"));
    let out = args.out.unwrap_or_else(|| root.join("target/site"));
    let key_path = args
        .signing_key
        .unwrap_or_else(|| root.join("examples/keys/demo.key"));
    let password = std::env::var("MLLD_SIGNING_KEY_PASSWORD").ok();
    let key = mlld_indexer::SigningKey::from_file(&key_path, password)?;
    let config = mlld_indexer::BuildConfig {
        registry,
        out: out.clone(),
        key,
        serial: args.serial,
        created: mlld_indexer::BuildConfig::now_or_source_date_epoch()?,
        expires_in: time_days(args.expires_in_days)?,
    };
    let source = mlld_indexer::RecordedGists { dir: gists };
    let report = mlld_indexer::build(&config, &source)
        .context("index build failed; the published site is unchanged")?;
    print!("{report}");
    println!("site        {}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn time_days(days: i64) -> Result<mlld_indexer::build::Duration> {
    anyhow::ensure!(days > 0, "--expires-in-days must be at least 1");
    Ok(mlld_indexer::build::Duration::days(days))
}
