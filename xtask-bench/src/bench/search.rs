//! `cargo xtask bench search`: a synthetic registry of 100,000 modules built
//! into a signed snapshot, then, in one run: the index build time and size,
//! in-process query latency over a mixed query set, the release
//! `mlld-registry search` command end to end on a store synced from the
//! site (the path a user runs), and the same queries answered
//! by a linear scan over every `registry.json`, with the ratio.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use mlld_indexer::{BuildConfig, RecordedGists, SigningKey, search_index};
use mlld_registry::search_query::{SearchIndex, SearchQuery};
use mlld_registry::store::Store;
use mlld_registry::sync::snapshot_import::{self, Limits};
use mlld_registry::trust::TrustedKeys;
use mlld_schemas::search::INDEX_DIR;
use mlld_synth::{Synth, SynthConfig};

use super::search_queries::{self, BenchQuery};

#[derive(clap::Args)]
pub struct SearchArgs {
    #[arg(long, default_value_t = 100_000)]
    modules: usize,
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Distinct queries in the mixed set.
    #[arg(long, default_value_t = 400)]
    queries: usize,
    /// Times the whole set is run in-process.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// `mlld-registry search` runs timed end to end.
    #[arg(long, default_value_t = 48)]
    cli_runs: usize,
    /// Queries answered by the linear scan (each reads every registry.json).
    #[arg(long, default_value_t = 16)]
    scan_queries: usize,
    /// Reuse the registry, snapshot and store of a previous run in the work directory.
    #[arg(long)]
    reuse: bool,
    /// Scratch directory, emptied first. Default: target/bench-search.
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

const LIMIT: usize = 20;

pub fn run(args: SearchArgs) -> Result<ExitCode> {
    let root = crate::workspace_root();
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/bench-search"));
    let work = std::path::absolute(work)?;
    let synth = Synth::new(SynthConfig {
        users: args.users,
        modules: args.modules,
        seed: 1,
    });
    let site = work.join("site");
    let (build_time, snapshot) = if args.reuse {
        let latest: mlld_schemas::Latest =
            serde_json::from_slice(&std::fs::read(site.join("latest.json")).with_context(
                || format!("--reuse needs a previous run's site in {}", site.display()),
            )?)?;
        (None, site.join(latest.snapshot))
    } else {
        if work.exists() {
            std::fs::remove_dir_all(&work)
                .with_context(|| format!("emptying {}", work.display()))?;
        }
        synth.write(&work.join("synth"), &Default::default())?;
        // The whole indexer, as `cargo xtask index` runs it.
        let mut config = BuildConfig::new(
            work.join("synth/registry"),
            site.clone(),
            SigningKey::from_file(&root.join("examples/keys/demo.key"), None)?,
            BuildConfig::now_or_source_date_epoch()?,
        );
        config.serial = Some(1);
        config.previous = mlld_indexer::PreviousSite::None;
        let report = mlld_indexer::build(
            &config,
            &RecordedGists {
                dir: work.join("synth/gists"),
            },
        )?;
        ensure!(
            report.modules_accepted == args.modules,
            "only {} of {} modules were accepted",
            report.modules_accepted,
            args.modules
        );
        (Some(report.elapsed), site.join(&report.snapshot))
    };
    let public_key = site.join("mlld-registry.pub");

    // Import it as the client does; the store then holds the blobs and the index.
    let store = Store::at(work.join("home"));
    let keys = TrustedKeys::load(Some(&public_key), &[])?;
    let verified = snapshot_import::import(
        &store,
        &snapshot,
        &keys,
        mlld_indexer::build::OffsetDateTime::now_utc(),
        Limits::default(),
    )?;
    let shipped = store
        .snapshot_dir(&verified.snapshot_sha256)
        .join(INDEX_DIR);

    // The index alone, rebuilt from the same modules: time, size, and byte-identity with the shipped one.
    let rebuild = work.join("rebuild");
    if rebuild.exists() {
        std::fs::remove_dir_all(&rebuild)?;
    }
    std::fs::create_dir_all(&rebuild)?;
    // The site publishes every blob loose: the rebuild reads content from there.
    let site_blobs = mlld_indexer::blobs::BlobDir::new(&site, None);
    let spill = work.join("records.jsonl");
    let records =
        mlld_indexer::record_spill::RecordSpill::from_records(&spill, &verified.manifest.modules)?;
    let started = Instant::now();
    let (versioned, advisories) = (&verified.manifest.versioned, &verified.manifest.advisories);
    let members = search_index::write(&rebuild, &site_blobs, &records, versioned, advisories)?;
    let index_build = started.elapsed();
    let index_bytes: u64 = members.values().map(|m| m.size).sum();
    let identical = members.keys().all(|path| {
        let name = path.trim_start_matches("index/");
        std::fs::read(rebuild.join(path)).ok() == std::fs::read(shipped.join(name)).ok()
    });

    let queries = search_queries::mixed(&synth, args.queries, 7);
    let index = SearchIndex::open(&shipped)?;
    let in_process = in_process(&index, &queries, args.rounds)?;
    let cli = cli(
        &root,
        &work,
        &site,
        &public_key,
        &queries[..args.cli_runs.min(queries.len())],
    )?;
    let registry = work.join("synth/registry");
    let mut scan = Vec::new();
    for q in queries.iter().take(args.scan_queries) {
        let started = Instant::now();
        std::hint::black_box(search_queries::linear_scan(&registry, &q.text, LIMIT)?);
        scan.push(started.elapsed());
    }
    scan.sort();

    let all = sorted(in_process.iter().map(|(_, d)| *d).collect());
    let (p50, p99) = (percentile(&all, 0.50), percentile(&all, 0.99));
    let cli_median = percentile(&cli, 0.50);
    let scan_median = percentile(&scan, 0.50);
    println!(
        "search benchmark: {} modules, {} users (mlld_synth, seed 1)",
        args.modules, args.users
    );
    if let Some(elapsed) = build_time {
        println!(
            "whole index build   {:.1} s, snapshot {:.1} MB (blobs, manifest, index)",
            elapsed.as_secs_f64(),
            mb(std::fs::metadata(&snapshot)?.len())
        );
    }
    println!(
        "search index build  {:.2} s, {:.1} MB in {} files; rebuilt byte-identical: {}",
        index_build.as_secs_f64(),
        mb(index_bytes),
        members.len(),
        if identical { "yes" } else { "NO" }
    );
    println!(
        "in-process query    p50 {}  p99 {}  ({} queries x {} rounds, limit {LIMIT})   target p50 < 0.5 ms, p99 < 3 ms",
        ms(p50),
        ms(p99),
        queries.len(),
        args.rounds
    );
    let mut kinds: Vec<&str> = queries.iter().map(|q| q.kind).collect();
    kinds.dedup();
    kinds.sort();
    kinds.dedup();
    for kind in kinds {
        let times = sorted(
            in_process
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, d)| *d)
                .collect(),
        );
        println!(
            "  {kind:<17} p50 {}  p99 {}",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99))
        );
    }
    println!(
        "mlld-registry search  median {}  p90 {}  ({} runs of the release binary on a synced store)   target < 25 ms",
        ms(cli_median),
        ms(percentile(&cli, 0.9)),
        cli.len()
    );
    println!(
        "linear scan         median {}  ({} queries, each reading {} registry.json files)",
        ms(scan_median),
        scan.len(),
        args.users
    );
    println!(
        "ratio               scan / in-process p50 = {:.0}x; scan / command median = {:.0}x   target >= 20x",
        scan_median.as_secs_f64() / p50.as_secs_f64(),
        scan_median.as_secs_f64() / cli_median.as_secs_f64()
    );
    let met = p50 < Duration::from_micros(500)
        && p99 < Duration::from_millis(3)
        && cli_median < Duration::from_millis(25)
        && scan_median.as_secs_f64() / p50.as_secs_f64() >= 20.0
        && identical;
    println!(
        "targets             {}",
        if met { "met" } else { "NOT met" }
    );
    Ok(if met {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Every query `rounds` times (after one warm-up round), each timed alone.
fn in_process(
    index: &SearchIndex,
    queries: &[BenchQuery],
    rounds: usize,
) -> Result<Vec<(&'static str, Duration)>> {
    let parsed: Vec<(&'static str, SearchQuery)> = queries
        .iter()
        .map(|q| Ok((q.kind, SearchQuery::parse(&q.text, None, &[])?)))
        .collect::<Result<_>>()?;
    for (kind, query) in &parsed {
        let hits = index.search(query, LIMIT)?;
        if *kind == "exact name" {
            ensure!(
                hits.first().is_some_and(|h| h.module == query.text),
                "`{}` does not rank its exact name first",
                query.text
            );
        }
    }
    let mut times = Vec::with_capacity(parsed.len() * rounds);
    for _ in 0..rounds {
        for (kind, query) in &parsed {
            let started = Instant::now();
            std::hint::black_box(index.search(query, LIMIT)?);
            times.push((*kind, started.elapsed()));
        }
    }
    Ok(times)
}

/// Wall time of the release binary per query on the path a user runs:
/// `sync` from the site, then `search` on the synced store (after a warm-up).
fn cli(
    root: &Path,
    work: &Path,
    site: &Path,
    key: &Path,
    queries: &[BenchQuery],
) -> Result<Vec<Duration>> {
    let bin = super::release_binary(root, "mlld-registry", "mlld-registry")?;
    let project = work.join("project");
    std::fs::create_dir_all(&project)?;
    let home = work.join("home-synced");
    let _ = std::fs::remove_dir_all(&home);
    let out = Command::new(&bin)
        .args(["sync", "--offline", "--from"])
        .arg(site)
        .arg("--trusted-key")
        .arg(key)
        .env("MLLD_REGISTRY_HOME", &home)
        .output()?;
    ensure!(
        out.status.success(),
        "mlld-registry sync failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = |text: &str| -> Result<Duration> {
        let started = Instant::now();
        let out = Command::new(&bin)
            .arg("search")
            .args(text.split_whitespace())
            .arg("--project")
            .arg(&project)
            .arg("--trusted-key")
            .arg(key)
            .env("MLLD_REGISTRY_HOME", &home)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()?;
        let elapsed = started.elapsed();
        if !matches!(out.status.code(), Some(0 | 1)) {
            bail!(
                "mlld-registry search {text} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(elapsed)
    };
    run("warm up")?;
    let mut times = Vec::with_capacity(queries.len());
    for q in queries {
        times.push(run(&q.text)?);
    }
    Ok(sorted(times))
}

fn sorted(mut v: Vec<Duration>) -> Vec<Duration> {
    v.sort();
    v
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}
