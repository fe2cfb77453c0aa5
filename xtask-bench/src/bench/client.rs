//! `cargo xtask bench client`: every everyday command on the path a user
//! runs — `sync` from a site on loopback, then the command on the synced
//! store — timed from process start to exit, with its peak memory.
//!
//! The baseline, measured in the same run, is the same command reading the
//! registry the way every command did before the query store: verifying
//! and parsing the whole signed manifest (the client's fallback for a store
//! without a query store, reached by moving the query store aside).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use mlld_e2e::http::{HttpServer, static_files};
use mlld_indexer::PreviousSite;
use mlld_synth::{Synth, SynthConfig};

#[derive(clap::Args)]
pub struct ClientArgs {
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    #[arg(long, default_value_t = 100_000)]
    modules: usize,
    /// Modules the benchmark project locks: it imports this many modules
    /// without dependencies, so the lock holds exactly this many.
    #[arg(long, default_value_t = 20)]
    lock: usize,
    /// Timed runs of each command (the median is reported).
    #[arg(long, default_value_t = 11)]
    runs: usize,
    /// Timed runs of each command's whole-manifest baseline (default: --runs;
    /// at 1,000,000 modules each run verifies a gigabyte of manifest).
    #[arg(long)]
    whole_runs: Option<usize>,
    /// Reuse the site a previous run built in --dir (same sizes).
    #[arg(long)]
    reuse_site: bool,
    #[arg(long, default_value = "target/bench/client")]
    dir: PathBuf,
}

use super::Measure;

#[derive(Clone)]
struct Bench {
    bin: PathBuf,
    home: PathBuf,
    project: PathBuf,
    runs: usize,
}

impl Bench {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        self.setup(&mut cmd, args);
        cmd
    }

    fn setup(&self, cmd: &mut Command, args: &[&str]) {
        cmd.arg("--project")
            .arg(&self.project)
            .args(args)
            .env("MLLD_REGISTRY_HOME", &self.home)
            .env("HOME", self.home.join("user-home"))
            .env("NO_COLOR", "1")
            .env("NO_PROXY", "127.0.0.1")
            .stdin(std::process::Stdio::null());
    }

    fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.command(args).output()?;
        ensure!(
            out.status.code().is_some_and(|c| c <= 1),
            "mlld-registry {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Median of `runs` timed runs, then one run under GNU time for the peak RSS.
    fn measure(&self, args: &[&str]) -> Result<Measure> {
        super::measure(self.runs, &|| self.command(args), &|| {
            let mut timed = Command::new("/usr/bin/time");
            timed.args(["-f", "%M"]).arg(&self.bin);
            self.setup(&mut timed, args);
            timed
        })
    }
}

pub fn run(args: ClientArgs) -> Result<()> {
    ensure!(
        args.runs > 0 && args.lock > 0,
        "--runs and --lock must be at least 1"
    );
    let root = crate::workspace_root();
    let dir = std::path::absolute(&args.dir)?;
    let bin = super::release_binary(&root, "mlld-registry", "mlld-registry")?;
    let (data, site) = (dir.join("data"), dir.join("site"));
    let synth = Synth::new(SynthConfig {
        users: args.users,
        modules: args.modules,
        seed: 11,
    });
    if !(args.reuse_site && site.join("latest.json").is_file()) {
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!("generating and indexing {} modules…", args.modules);
        synth.write(&data, &BTreeMap::new())?;
        super::build_site(&root, &data, &site, PreviousSite::None)?;
    }
    for scratch in ["home", "project", "query-aside"] {
        let _ = std::fs::remove_dir_all(dir.join(scratch));
    }
    let server = HttpServer::start(static_files(site.clone()));
    let bench = Bench {
        bin,
        home: dir.join("home"),
        project: dir.join("project"),
        runs: args.runs,
    };
    std::fs::create_dir_all(&bench.project)?;
    let key = site.join("mlld-registry.pub");
    let key = key.to_str().context("UTF-8 path")?;
    print_header(&args);
    let sync = full_sync(&bench, &server.url(), key, &site)?;
    print_sync(&sync);

    // The project imports `lock` modules spread over the registry, each
    // without dependencies, so that the lock holds exactly `lock` modules.
    let step = (args.modules / args.lock).max(1);
    let roots: Vec<&mlld_synth::SynthModule> = (0..args.lock)
        .filter_map(|k| (k * step..args.modules).find(|&i| is_leaf(&data, &synth, i)))
        .map(|i| &synth.modules[i])
        .collect();
    ensure!(
        roots.len() == args.lock,
        "the registry has too few modules without dependencies for a {}-module lock",
        args.lock
    );
    let mut source = String::new();
    for m in &roots {
        source.push_str(&format!("/import {{ @x }} from @{}/{}\n", m.user, m.name));
    }
    std::fs::write(bench.project.join("main.mld"), source)?;
    let k = ["--trusted-key", key];
    let with_key = |args: &[&'static str]| -> Vec<String> {
        args.iter().chain(&k).map(|s| s.to_string()).collect()
    };
    bench.ok(&[&["install", "--yes"][..], &k].concat())?;
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bench.project.join(".mlld/mlld.lock.json"))?)?;
    let locked = lock["imports"].as_object().map_or(0, |m| m.len());
    ensure!(
        locked == args.lock,
        "the project's lock holds {locked} modules, not {}",
        args.lock
    );
    let probe = roots[0];
    let info_name = format!("{}/{}", probe.user, probe.name);
    // Resolving a module the lock already holds keeps the lock as it is.
    let again = roots[roots.len() / 2];
    let again_name = format!("@{}/{}", again.user, again.name);
    let word = probe.name.split('-').next().unwrap_or("json").to_string();

    let commands: Vec<(&str, Vec<String>)> = vec![
        ("install (cached lock)", with_key(&["install"])),
        (
            "info",
            vec!["info".into(), info_name.clone(), k[0].into(), k[1].into()],
        ),
        ("ls", with_key(&["ls"])),
        ("audit", with_key(&["audit"])),
        ("verify", with_key(&["verify"])),
        (
            "search",
            vec!["search".into(), word.clone(), k[0].into(), k[1].into()],
        ),
        (
            "resolve (locked)",
            vec![
                "resolve".into(),
                again_name.clone(),
                "--yes".into(),
                k[0].into(),
                k[1].into(),
            ],
        ),
    ];
    let args_whole_runs = args.whole_runs.unwrap_or(args.runs).max(1);
    let query = current_snapshot(&bench.home)?.join("query");
    let aside = dir.join("query-aside");
    print_table_header(locked);
    for (name, args) in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let lean = bench.measure(&args)?;
        std::fs::rename(&query, &aside)?;
        let whole = Bench {
            runs: args_whole_runs,
            ..bench.clone()
        }
        .measure(&args);
        std::fs::rename(&aside, &query)?;
        // Printed as measured: a later failure keeps the earlier figures.
        print_row(name, &lean, &whole?);
    }
    Ok(())
}

/// The full sync a fresh client runs, from the site on loopback HTTP into
/// the empty store, against `sha256sum` plus `zstd -d` over the same
/// snapshot file (what verifying and unpacking it costs at the least).
struct FullSync {
    snapshot_mb: f64,
    sync: Measure,
    baseline_ms: f64,
}

fn full_sync(bench: &Bench, url: &str, key: &str, site: &Path) -> Result<FullSync> {
    let latest: mlld_schemas::Latest =
        serde_json::from_slice(&std::fs::read(site.join("latest.json"))?)?;
    let snapshot = site.join(&latest.snapshot);
    let args = ["sync", "--full", "--from", url, "--trusted-key", key];
    let fresh = || {
        let _ = std::fs::remove_dir_all(&bench.home);
    };
    let mut times = Vec::new();
    for _ in 0..3 {
        fresh();
        let started = Instant::now();
        bench.ok(&args)?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    fresh();
    let mut timed = Command::new("/usr/bin/time");
    timed.args(["-f", "%M"]).arg(&bench.bin);
    bench.setup(&mut timed, &args);
    let out = timed.output().context("running /usr/bin/time")?;
    ensure!(out.status.success(), "the timed sync failed");
    let kb: f64 = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .context("no peak RSS from /usr/bin/time")?;
    let scratch = bench.home.with_file_name("decompressed");
    let mut base = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let status = Command::new("sh")
            .args([
                "-c",
                "sha256sum \"$1\" >/dev/null && zstd -q -d -f \"$1\" -o \"$2\"",
                "sh",
            ])
            .arg(&snapshot)
            .arg(&scratch)
            .status()?;
        base.push(started.elapsed().as_secs_f64() * 1e3);
        ensure!(status.success(), "sha256sum + zstd -d failed");
    }
    let _ = std::fs::remove_file(&scratch);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok(FullSync {
        snapshot_mb: latest.size as f64 / 1e6,
        sync: Measure {
            median_ms: median(&mut times),
            peak_mb: kb / 1024.0,
        },
        baseline_ms: median(&mut base),
    })
}

/// Whether module `index` imports no other module in the gist the site was
/// last built from (`data/gists/`): a reused site may have moved some
/// modules to a later revision (`bench sync`), whose content differs.
fn is_leaf(data: &Path, synth: &Synth, index: usize) -> bool {
    let gist = data
        .join("gists")
        .join(format!("{}.json", synth.modules[index].gist));
    let Ok(bytes) = std::fs::read(gist) else {
        return !synth.content(index, 0).contains("\n/import ");
    };
    let Ok(gist) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return false;
    };
    let files = gist["files"]
        .as_object()
        .into_iter()
        .flat_map(|f| f.values());
    !files
        .filter_map(|f| f["content"].as_str())
        .any(|c| c.contains("\n/import "))
}

fn current_snapshot(home: &Path) -> Result<PathBuf> {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join("state.json"))?)?;
    let sha = state["current"]["snapshot"]
        .as_str()
        .context("no current snapshot")?;
    Ok(home.join("snapshots").join(sha))
}

fn print_header(args: &ClientArgs) {
    println!(
        "client benchmark: {} modules by {} users; project lock of {} imported modules; median of {} runs, process start to exit",
        args.modules, args.users, args.lock, args.runs
    );
}

fn print_sync(sync: &FullSync) {
    let ratio = sync.sync.median_ms / sync.baseline_ms;
    println!(
        "sync --full from loopback HTTP ({:.1} MB snapshot): {:.2} s, peak {:.1} MB; sha256sum + zstd -d {:.2} s; ratio {ratio:.2} (targets: < 512 MB, ratio <= 1.5) {}",
        sync.snapshot_mb,
        sync.sync.median_ms / 1e3,
        sync.sync.peak_mb,
        sync.baseline_ms / 1e3,
        if sync.sync.peak_mb < 512.0 && ratio <= 1.5 {
            "ok"
        } else {
            "MISSED"
        }
    );
}

fn print_table_header(locked: usize) {
    println!("commands on the synced store, the project's lock holding {locked} modules:");
    println!(
        "{:<24} {:>10} {:>9}   {:>12} {:>10}   {:>7}  target (< 20 ms, < 50 MB)",
        "command", "query ms", "peak MB", "manifest ms", "peak MB", "ratio"
    );
}

fn print_row(name: &str, lean: &Measure, whole: &Measure) {
    let ok = lean.median_ms < 20.0 && lean.peak_mb < 50.0;
    println!(
        "{:<24} {:>10.1} {:>9.1}   {:>12.1} {:>10.1}   {:>6.1}x  {}",
        name,
        lean.median_ms,
        lean.peak_mb,
        whole.median_ms,
        whole.peak_mb,
        whole.median_ms / lean.median_ms,
        if ok { "ok" } else { "MISSED" }
    );
}
