//! `cargo xtask bench <name>` (run as `xtask-bench bench <name>`): benchmarks that print a ratio against a
//! baseline measured in the same run. Results are recorded in BENCHMARKS.md.
//!
//! Each benchmark lives in its own file here and adds one variant below.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, ensure};
use clap::Subcommand;

mod client;
mod crawl;
mod install;
mod machine;
mod page;
mod scan;
mod search;
mod search_queries;
mod sparse;
mod sync;

#[derive(Subcommand)]
pub enum Bench {
    /// Every everyday command on a synced store (process start to exit, peak
    /// RSS), against the same command reading the whole signed manifest.
    #[command(
        after_help = "Example:\n  cargo xtask bench client\n  cargo xtask bench client --modules 1000000 --users 100000"
    )]
    Client(client::ClientArgs),
    /// Full crawl vs incremental rebuild of a synthetic registry against a fake GitHub on loopback.
    #[command(after_help = "Example:\n  cargo xtask bench crawl --users 10000 --modules 100000")]
    Crawl(crawl::CrawlArgs),
    /// Install a 1,000-module lock from the store (vs GNU tar) and sync a
    /// 100,000-module snapshot (vs sha256sum + zstd -d).
    #[command(
        after_help = "Example:\n  cargo xtask bench install\n  cargo xtask bench install --install-modules 200 --sync-modules 5000 --runs 3"
    )]
    Install(install::Args),
    /// The web page at 100,000 modules in headless Chromium: bytes a direct
    /// link to one module downloads, time to the first search results, site size.
    #[command(
        after_help = "Example:\n  cargo xtask bench page\n  cargo xtask bench page --modules 10000 --users 1000 --runs 3"
    )]
    Page(page::PageArgs),
    /// Search over a synthetic 100,000-module registry: index build, query
    /// latency in-process and through `mlld-registry search`, against a
    /// linear scan of every registry.json.
    #[command(
        after_help = "Example:\n  cargo xtask bench search\n  cargo xtask bench search --modules 10000 --users 1000"
    )]
    Search(search::SearchArgs),
    /// `mlld-registry install` on a project whose 50 MiB file opens `/import {`
    /// and never closes it, vs the same command on a benign file of that size.
    #[command(
        after_help = "Example:\n  cargo xtask bench scan\n  cargo xtask bench scan --megabytes 10 --runs 3"
    )]
    Scan(scan::ScanArgs),
    /// Bytes a fresh client downloads to install a 20-module lock with
    /// `sync --sparse`, vs `sync --full`, from a 100,000-module site.
    #[command(
        after_help = "Example:\n  cargo xtask bench sparse\n  cargo xtask bench sparse --modules 1000000 --users 100000"
    )]
    Sparse(sparse::SparseArgs),
    /// Bytes a delta sync downloads after 1% of a 100,000-module registry changed, vs a full sync.
    #[command(after_help = "Example:\n  cargo xtask bench sync --users 10000 --modules 100000")]
    Sync(sync::SyncArgs),
}

pub fn run(bench: Bench) -> Result<ExitCode> {
    if let Some(code) = rerun_in_release()? {
        return Ok(code);
    }
    match bench {
        Bench::Client(args) => {
            client::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Bench::Crawl(args) => {
            crawl::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Bench::Install(args) => install::run(args, &crate::workspace_root()),
        Bench::Page(args) => page::run(args),
        Bench::Search(args) => search::run(args),
        Bench::Scan(args) => {
            scan::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Bench::Sparse(args) => {
            sparse::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Bench::Sync(args) => {
            sync::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Builds the signed site of the synthetic registry in `data` (its
/// `registry/` and recorded `gists/`) into `site` with the demo key.
pub fn build_site(
    root: &Path,
    data: &Path,
    site: &Path,
    previous: mlld_indexer::PreviousSite,
) -> Result<()> {
    let key = mlld_indexer::SigningKey::from_file(&root.join("examples/keys/demo.key"), None)?;
    let mut config = mlld_indexer::BuildConfig::new(
        data.join("registry"),
        site.to_path_buf(),
        key,
        time::OffsetDateTime::now_utc(),
    );
    config.previous = previous;
    let gists = mlld_indexer::RecordedGists {
        dir: data.join("gists"),
    };
    mlld_indexer::build(&config, &gists)?;
    Ok(())
}

/// Builds `package` as a release build in the workspace at `root` and
/// returns the path of its binary `bin`.
pub fn release_binary(root: &Path, package: &str, bin: &str) -> Result<PathBuf> {
    let status = cargo_child::command(env!("CARGO"))
        .current_dir(root)
        .args(["build", "--quiet", "--release", "-p", package])
        .status()?;
    ensure!(status.success(), "building {package} failed");
    Ok(mlld_e2e::target_dir().join("release").join(bin))
}

/// Benchmarks measure optimised code: a debug build re-runs itself with `--release`.
fn rerun_in_release() -> Result<Option<ExitCode>> {
    if !cfg!(debug_assertions) {
        return Ok(None);
    }
    // Run from here (not the checkout) so that relative paths and output
    // defaults keep following the current directory.
    let manifest = crate::workspace_root().join("Cargo.toml");
    let status = cargo_child::command(env!("CARGO"))
        .args(["run", "--quiet", "--release", "--package", "xtask-bench"])
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--")
        .args(std::env::args_os().skip(1))
        .status()?;
    Ok(Some(ExitCode::from(
        status.code().unwrap_or(2).clamp(0, 255) as u8,
    )))
}

/// One measured command: median wall time over some runs (process start to
/// exit) and the peak resident memory of one more run under GNU time.
pub struct Measure {
    pub median_ms: f64,
    pub peak_mb: f64,
}

/// Times `runs` runs of the command `make` builds (after one warm-up run),
/// then one under `/usr/bin/time` (which `make_timed` builds around the
/// same arguments). Exit codes 0 and 1 count as success (1: findings).
pub fn measure(
    runs: usize,
    make: &dyn Fn() -> std::process::Command,
    make_timed: &dyn Fn() -> std::process::Command,
) -> Result<Measure> {
    use anyhow::Context as _;
    let succeeded = |out: &std::process::Output| out.status.code().is_some_and(|c| c <= 1);
    let warm = make().output()?;
    ensure!(
        succeeded(&warm),
        "the command failed: {}",
        String::from_utf8_lossy(&warm.stderr)
    );
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let started = std::time::Instant::now();
        let out = make().output()?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        ensure!(succeeded(&out), "the command failed on a timed run");
    }
    times.sort_by(f64::total_cmp);
    let out = make_timed().output().context("running /usr/bin/time")?;
    let kb: f64 = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .context("no peak RSS from /usr/bin/time")?;
    Ok(Measure {
        median_ms: times[times.len() / 2],
        peak_mb: kb / 1024.0,
    })
}
