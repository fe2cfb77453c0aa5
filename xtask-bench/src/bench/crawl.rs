//! `cargo xtask bench crawl`: a full crawl of a synthetic registry against
//! the fake GitHub on loopback, then an incremental rebuild after a share of
//! the gists changed. The full build is the baseline for the rebuild.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use mlld_e2e::fake_github::FakeGithub;
use mlld_synth::{Synth, SynthConfig};
use serde_json::Value;

use super::machine::{self, own_peak_mib, stolen_so_far};

#[derive(clap::Args)]
pub struct CrawlArgs {
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    #[arg(long, default_value_t = 100_000)]
    modules: usize,
    /// Share of gists changed before the incremental rebuild, in percent.
    #[arg(long, default_value_t = 1.0)]
    changed_percent: f64,
    /// Gists fetched at once by the indexer.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Working directory (synthetic registry and sites).
    #[arg(long, default_value = "target/bench/crawl")]
    dir: PathBuf,
    /// Time this `xtask` binary instead of a release build of the checkout
    /// (to compare two versions of the indexer on the same registry).
    #[arg(long)]
    indexer: Option<PathBuf>,
    /// Skip generating the registry and the full build: rebuild the site an
    /// earlier run left in `--dir` once the changed gists move on to this
    /// generation (an earlier run left them at its number of `--runs`, 1 by
    /// default: give one more, then the next, …). For
    /// working on the incremental build; prints its stages only.
    #[arg(long, value_name = "GENERATION", value_parser = clap::value_parser!(u32).range(2..))]
    rebuild_only: Option<u32>,
    /// Same runs to make, each a full build from nothing and the rebuild
    /// after it (the changed gists move on a generation each time); the
    /// ratio's verdict is on their median, for a shared machine's noise.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=9))]
    runs: u32,
}

struct Run {
    wall: Duration,
    report: Value,
    /// CPU time the machine's host took from this VM during the build
    /// (`steal` in /proc/stat), when the kernel reports it: the benchmark
    /// runs on shared machines, and a build that lost cores to a neighbour
    /// says so beside its time.
    stolen: Option<Duration>,
    /// Whether the kernel's dentry and inode caches were dropped before it.
    caches_dropped: bool,
    /// What touching fresh memory cost just before it (see
    /// [`machine::fresh_memory_secs_per_gib`]).
    fresh_memory: Option<f64>,
}

/// ` steal 1.2s` (0.0s when none was stolen) and ` fresh memory 0.45
/// s/GiB`, each where the machine reports it.
fn machine_notes(r: &Run) -> String {
    let stolen = r.stolen.map_or(String::new(), |d| {
        format!("  steal {:.1}s", d.as_secs_f64())
    });
    let fresh = r
        .fresh_memory
        .map_or(String::new(), |s| format!("  fresh memory {s:.2} s/GiB"));
    stolen + &fresh
}

/// Whether the kernel's dentry and inode caches were dropped before each
/// of `builds` (kept caches slow later builds; see `machine::settle`).
fn caches_note(builds: &[&Run]) -> String {
    let kept = builds.iter().filter(|r| !r.caches_dropped).count();
    if kept == 0 {
        "dropped before each build".to_string()
    } else {
        format!(
            "kept before {kept} of {} builds (dropping needs root): later full builds may run slower",
            builds.len()
        )
    }
}

fn index(
    indexer: &Path,
    args: &CrawlArgs,
    registry: &Path,
    site: &Path,
    api: &str,
    previous: Option<&str>,
    report: &Path,
) -> Result<Run> {
    let mut cmd = Command::new(indexer);
    cmd.args(["index", "--registry"])
        .arg(registry)
        .args(["--github-api", api, "--out"])
        .arg(site);
    cmd.args([
        "--concurrency",
        &args.concurrency.to_string(),
        "--report-json",
    ])
    .arg(report);
    if let Some(p) = previous {
        cmd.args(["--previous", p]);
    }
    cmd.env("GITHUB_TOKEN", "bench-token")
        .stdout(std::process::Stdio::null());
    let caches_dropped = machine::settle()?;
    let fresh_memory = machine::fresh_memory_secs_per_gib();
    let stolen_before = stolen_so_far();
    let started = Instant::now();
    let status = cmd.status().context("running the indexer")?;
    let wall = started.elapsed();
    let stolen = stolen_so_far()
        .zip(stolen_before)
        .map(|(after, before)| after.saturating_sub(before));
    ensure!(status.success(), "the index build failed");
    Ok(Run {
        wall,
        report: serde_json::from_slice(&std::fs::read(report)?)?,
        stolen,
        caches_dropped,
        fresh_memory,
    })
}

/// A build's peak resident memory in MiB.
fn peak(r: &Run) -> f64 {
    r.report["peakMemoryBytes"].as_u64().unwrap_or(0) as f64 / (1024.0 * 1024.0)
}

/// A build's stages, `load registry 1.2s peak 3 MiB [steps], …`.
fn stages(r: &Run) -> String {
    let Some(stages) = r.report["stages"].as_array() else {
        return String::new();
    };
    let described = stages.iter().map(|s| {
        let peak = s["peakMemoryBytes"]
            .as_u64()
            .map_or(String::new(), |b| format!(" peak {} MiB", b >> 20));
        format!(
            "{} {:.1}s{}{peak}{}",
            s["stage"].as_str().unwrap_or("?"),
            s["seconds"].as_f64().unwrap_or(0.0),
            cpu(s),
            steps(&s["steps"])
        )
    });
    described.collect::<Vec<_>>().join(", ")
}

/// A stage's timed steps, ` [name 1.2s, …]`, or nothing.
fn steps(steps: &Value) -> String {
    let Some(steps) = steps.as_array().filter(|s| !s.is_empty()) else {
        return String::new();
    };
    let named = steps.iter().map(|s| {
        let name = s["step"].as_str().unwrap_or("?");
        format!(
            "{name} {:.1}s{}",
            s["seconds"].as_f64().unwrap_or(0.0),
            cpu(s)
        )
    });
    format!(" [{}]", named.collect::<Vec<_>>().join(", "))
}

/// ` (cpu 1.8s)`: the CPU a stage or step used, where the report has it.
fn cpu(timed: &Value) -> String {
    timed["cpuSeconds"]
        .as_f64()
        .map_or(String::new(), |c| format!(" (cpu {c:.1}s)"))
}

/// Every `step`-th gist: the ones that change before the rebuild.
fn changed_gists(synth: &Synth, args: &CrawlArgs) -> Vec<usize> {
    let step = (100.0 / args.changed_percent).round().max(1.0) as usize;
    (0..synth.modules.len()).step_by(step).collect()
}

/// The fake GitHub serving every gist at generation 0, the changed ones at `changed_generation`.
fn serve_gists(synth: &Synth, changed: &[usize], changed_generation: u32) -> FakeGithub {
    let github = FakeGithub::start();
    github.stop_logging();
    // A limit the full crawl fits in: the benchmark measures the indexer, not the wait for a reset.
    github.rate_limit(10_000_000, 10_000_000, Duration::from_secs(3600));
    for i in 0..synth.modules.len() {
        github.put(&synth.gist_response(i, 0));
    }
    for &i in changed {
        github.put(&synth.gist_response(i, changed_generation));
    }
    github
}

/// The incremental rebuild against `github`, and the rate-limited requests the fake counted.
fn rebuild(
    indexer: &Path,
    args: &CrawlArgs,
    github: &FakeGithub,
    changed: usize,
) -> Result<(Run, u64)> {
    let counted_before = github.counts.get(&github.counts.counted);
    eprintln!("incremental build after {changed} gists changed…");
    let incr = index(
        indexer,
        args,
        &args.dir.join("registry"),
        &args.dir.join("site"),
        &github.url(),
        None,
        &args.dir.join("incremental.json"),
    )?;
    ensure!(
        incr.report["modulesFetched"].as_u64() == Some(changed as u64),
        "the rebuild fetched {} gists, not the {changed} changed",
        incr.report["modulesFetched"],
    );
    Ok((
        incr,
        github.counts.get(&github.counts.counted) - counted_before,
    ))
}

pub fn run(args: CrawlArgs) -> Result<()> {
    let dir = &args.dir;
    let synth = Synth::new(SynthConfig {
        users: args.users,
        modules: args.modules,
        seed: 42,
    });
    // The indexer as users run it: `cargo xtask index`, a release build.
    let indexer = match &args.indexer {
        Some(path) => path.clone(),
        None => super::release_binary(&crate::workspace_root(), "xtask", "xtask")?,
    };
    let changed = changed_gists(&synth, &args);
    if let Some(generation) = args.rebuild_only {
        let github = serve_gists(&synth, &changed, generation);
        let (incr, _) = rebuild(&indexer, &args, &github, changed.len())?;
        println!(
            "incremental build  {:>8.2}s  peak memory {:.0} MiB{}",
            incr.wall.as_secs_f64(),
            peak(&incr),
            machine_notes(&incr)
        );
        println!("                   ({})", stages(&incr));
        println!("kernel dentry and inode caches  {}", caches_note(&[&incr]));
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(dir);
    let registry = dir.join("registry");
    eprintln!(
        "generating {} modules for {} users…",
        args.modules, args.users
    );
    synth.write_registry(&registry)?;
    let github = serve_gists(&synth, &[], 0);
    let mut pairs = Vec::with_capacity(args.runs as usize);
    for generation in 1..=args.runs {
        pairs.push(same_run(
            &indexer,
            &args,
            (&synth, &github),
            &changed,
            generation,
        )?);
    }
    print_results(&args, changed.len(), &pairs);
    Ok(())
}

/// One full build and the incremental rebuild measured against it.
struct Pair {
    full: Run,
    incr: Run,
    /// Rate-limited requests the fake counted during the rebuild.
    counted: u64,
}

impl Pair {
    fn time_ratio(&self) -> f64 {
        self.incr.wall.as_secs_f64() / self.full.wall.as_secs_f64()
    }

    /// Rate-limited requests the rebuild reported, over the changed gists.
    fn request_ratio(&self, changed: usize) -> (u64, f64) {
        let primary = self.incr.report["requests"]["primary"]
            .as_u64()
            .unwrap_or(u64::MAX);
        (primary, primary as f64 / changed as f64)
    }
}

/// A full build of the registry from nothing (the site of an earlier pair
/// removed first), then the changed gists move on to `generation` and the
/// site is rebuilt incrementally.
fn same_run(
    indexer: &Path,
    args: &CrawlArgs,
    (synth, github): (&Synth, &FakeGithub),
    changed: &[usize],
    generation: u32,
) -> Result<Pair> {
    let site = args.dir.join("site");
    if generation > 1 {
        eprintln!("same run {generation} of {}…", args.runs);
        std::fs::remove_dir_all(&site).context("removing the last run's site")?;
    }
    eprintln!("full build…");
    let registry = args.dir.join("registry");
    let full_report = args.dir.join("full.json");
    let full = index(
        indexer,
        args,
        &registry,
        &site,
        &github.url(),
        Some("none"),
        &full_report,
    )?;
    let modules = full.report["modulesAccepted"].as_u64().unwrap_or(0);
    ensure!(
        modules as usize == args.modules,
        "only {modules} of {} modules were accepted",
        args.modules
    );
    for &i in changed {
        github.put(&synth.gist_response(i, generation));
    }
    let (incr, counted) = rebuild(indexer, args, github, changed.len())?;
    Ok(Pair {
        full,
        incr,
        counted,
    })
}

/// Every pair's builds, then the targets: the median ratio over the
/// pairs (this machine is shared, and one pair can be a slow one), the
/// worst request ratio, the highest peak.
fn print_results(args: &CrawlArgs, changed: usize, pairs: &[Pair]) {
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!(
        "crawl benchmark: {} users, {} modules, {changed} changed ({}%), concurrency {}",
        args.users, args.modules, args.changed_percent, args.concurrency
    );
    for (i, pair) in pairs.iter().enumerate() {
        if pairs.len() > 1 {
            println!(
                "same run {} of {}: ratio {:.3}",
                i + 1,
                pairs.len(),
                pair.time_ratio()
            );
        }
        print_pair(args, pair);
    }
    for pair in pairs {
        let (primary, ratio) = pair.request_ratio(changed);
        println!(
            "rate-limited requests / changed gists  {primary} / {changed} = {ratio:.3}  (target <= 1.05: {})  [fake GitHub counted {}]",
            verdict(ratio <= 1.05),
            pair.counted
        );
    }
    let mut ratios: Vec<f64> = pairs.iter().map(Pair::time_ratio).collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    let of = if ratios.len() > 1 {
        let each: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
        format!(" (median of {})", each.join(", "))
    } else {
        String::new()
    };
    println!(
        "incremental / full wall time           {median:.3}{of}  (target <= 0.25: {})",
        verdict(median <= 0.25)
    );
    let builds: Vec<&Run> = pairs.iter().flat_map(|p| [&p.full, &p.incr]).collect();
    println!(
        "kernel dentry and inode caches         {}",
        caches_note(&builds)
    );
    if let Some(own) = own_peak_mib() {
        println!(
            "benchmark process peak                 {own:.0} MiB  (the synthetic registry and the fake GitHub's responses, beside the indexer)"
        );
    }
    let peak_mib = (pairs.iter())
        .map(|p| peak(&p.full).max(peak(&p.incr)))
        .fold(0.0, f64::max);
    let per_module = peak_mib * 1024.0 * 1024.0 / args.modules.max(1) as f64;
    // The target is for 1,000,000 modules: under 2 GiB there, memory
    // growing linearly must stay under 2,147 bytes a module at any size.
    let budget = 2048.0 * 1024.0 * 1024.0 / 1_000_000.0;
    println!(
        "indexer peak memory                    {peak_mib:.0} MiB, {per_module:.0} bytes a module  (< 2048 MiB at 1,000,000 modules needs < {budget:.0}: {})",
        verdict(peak_mib > 0.0 && per_module < budget)
    );
}

/// One pair's two builds, with their stages.
fn print_pair(args: &CrawlArgs, Pair { full, incr, .. }: &Pair) {
    let snapshot_mb = full.report["snapshotBytes"].as_u64().unwrap_or(0) as f64 / 1e6;
    println!(
        "full build         {:>8.2}s  {:>8.0} modules/s  snapshot {snapshot_mb:.1} MB  peak memory {:.0} MiB{}",
        full.wall.as_secs_f64(),
        args.modules as f64 / full.wall.as_secs_f64(),
        peak(full),
        machine_notes(full)
    );
    println!("                   ({})", stages(full));
    println!(
        "incremental build  {:>8.2}s  peak memory {:.0} MiB{}",
        incr.wall.as_secs_f64(),
        peak(incr),
        machine_notes(incr)
    );
    println!("                   ({})", stages(incr));
}
