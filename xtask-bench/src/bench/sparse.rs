//! `cargo xtask bench sparse`: what a fresh client downloads to install a
//! project's 20-module lock with `sync --sparse`, against the full sync a
//! client without sparse sync needs (the baseline, measured in the same run
//! from the same loopback server, counting the bytes it serves).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use mlld_e2e::http::{HttpServer, Request, static_files};
use mlld_indexer::PreviousSite;
use mlld_synth::{Synth, SynthConfig};

#[derive(clap::Args)]
pub struct SparseArgs {
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    #[arg(long, default_value_t = 100_000)]
    modules: usize,
    /// Modules in the project's lock (imports without dependencies).
    #[arg(long, default_value_t = 20)]
    lock: usize,
    /// Reuse the site a previous run built in --dir (same sizes).
    #[arg(long)]
    reuse_site: bool,
    #[arg(long, default_value = "target/bench/sparse")]
    dir: PathBuf,
    /// Timed runs of each command on the sparse store (the median is reported).
    #[arg(long, default_value_t = 11)]
    runs: usize,
}

/// A client run against the counting server: its own store, one project.
struct Run<'a> {
    bin: &'a Path,
    home: PathBuf,
    project: &'a Path,
    url: String,
    key: PathBuf,
}

impl Run<'_> {
    fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.command(args).output()?;
        ensure!(
            out.status.success(),
            "mlld-registry {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.bin);
        self.setup(&mut cmd, args);
        cmd
    }

    fn setup(&self, cmd: &mut Command, args: &[&str]) {
        cmd.arg("--project")
            .arg(self.project)
            .args(args)
            .arg("--trusted-key")
            .arg(&self.key)
            .env("MLLD_REGISTRY_HOME", &self.home)
            .env("HOME", self.home.join("user-home"))
            .env("NO_PROXY", "127.0.0.1")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null());
    }

    /// The everyday commands on this (sparse) store, offline: everything
    /// they read was fetched by `sync --sparse` and the install.
    fn time_commands(&self, module: &str, runs: usize) -> Result<Vec<(String, super::Measure)>> {
        let reference = format!("@{module}");
        let commands: [&[&str]; 6] = [
            &["install", "--offline"],
            &["info", module, "--offline"],
            &["ls", "--offline"],
            &["audit", "--offline"],
            &["verify", "--offline"],
            &["resolve", &reference, "--yes", "--offline"],
        ];
        commands
            .iter()
            .map(|args| {
                let m = super::measure(runs, &|| self.command(args), &|| {
                    let mut timed = Command::new("/usr/bin/time");
                    timed.args(["-f", "%M"]).arg(self.bin);
                    self.setup(&mut timed, args);
                    timed
                })
                .with_context(|| format!("timing {}", args.join(" ")))?;
                Ok((args[0].to_string(), m))
            })
            .collect()
    }

    /// `sync` (with `how`), then `install`: bytes served and seconds taken.
    fn sync_and_install(&self, how: &str, served: &AtomicU64) -> Result<(u64, f64)> {
        served.store(0, Ordering::SeqCst);
        let started = Instant::now();
        self.ok(&["sync", how, "--from", &self.url])?;
        self.ok(&["install"])?;
        Ok((
            served.load(Ordering::SeqCst),
            started.elapsed().as_secs_f64(),
        ))
    }
}

pub fn run(args: SparseArgs) -> Result<()> {
    ensure!(args.lock > 0, "--lock must be at least 1");
    let root = crate::workspace_root();
    let dir = std::path::absolute(&args.dir)?;
    let (data, site) = (dir.join("data"), dir.join("site"));
    let bin = super::release_binary(&root, "mlld-registry", "mlld-registry")?;
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
    for scratch in ["project", "author", "fresh", "full"] {
        let _ = std::fs::remove_dir_all(dir.join(scratch));
    }
    let served = Arc::new(AtomicU64::new(0));
    let server = counting_server(&site, served.clone());
    let project = dir.join("project");
    std::fs::create_dir_all(&project)?;
    std::fs::write(project.join("main.mld"), imports(&synth, args.lock))?;
    let run = |home: &str| Run {
        bin: &bin,
        home: dir.join(home),
        project: &project,
        url: server.url(),
        key: site.join("mlld-registry.pub"),
    };

    // The author locks the imports (sparse, fetching on demand).
    let author = run("author");
    author.ok(&["sync", "--sparse", "--from", &author.url])?;
    author.ok(&["install", "--yes"])?;
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(project.join(".mlld/mlld.lock.json"))?)?;
    let locked = lock["imports"].as_object().map_or(0, |m| m.len());
    std::fs::remove_dir_all(project.join(".mlld/cache"))?;

    // A fresh client with that lock: sparse, then full (the baseline).
    let fresh = run("fresh");
    let (sparse_bytes, sparse_secs) = fresh.sync_and_install("--sparse", &served)?;
    let module = first_import(&project)?;
    let timed = fresh.time_commands(&module, args.runs)?;
    std::fs::remove_dir_all(project.join(".mlld/cache"))?;
    let snapshot = std::fs::metadata(snapshot_file(&site)?)?.len();
    // A full sync may be refused at this size (the whole manifest over the
    // client's cap): the baseline is then the snapshot file it would have
    // to download, and the table says so.
    let (full_bytes, full_time) = match run("full").sync_and_install("--full", &served) {
        Ok((bytes, secs)) => (bytes, format!("{secs:.2} s")),
        Err(e) => {
            eprintln!("the full sync was refused: {e:#}");
            (
                snapshot,
                "refused (baseline: the snapshot file's size)".to_string(),
            )
        }
    };

    println!(
        "bench sparse: a fresh client installs a {locked}-module lock from a {}-module site (loopback)",
        args.modules
    );
    println!("| path | downloaded | wall time |");
    println!("|---|---|---|");
    println!(
        "| `sync --sparse` + `install` | {:.2} MB | {sparse_secs:.2} s |",
        mb(sparse_bytes)
    );
    println!(
        "| `sync --full` + `install` (baseline) | {:.2} MB | {full_time} |",
        mb(full_bytes)
    );
    println!(
        "ratio: {:.4} of the bytes (snapshot file {:.1} MB)",
        sparse_bytes as f64 / full_bytes as f64,
        mb(snapshot)
    );
    println!();
    println!(
        "commands on the sparse store after that install, offline (median of {} runs; peak RSS):",
        args.runs
    );
    println!("| command | median | peak RSS |");
    println!("|---|---|---|");
    for (name, m) in &timed {
        println!("| `{name}` | {:.1} ms | {:.1} MB |", m.median_ms, m.peak_mb);
    }
    Ok(())
}

/// `lock` imports of modules that import nothing, spread over the registry.
fn imports(synth: &Synth, lock: usize) -> String {
    let step = (synth.modules.len() / (lock * 8)).max(1);
    let leaves = (0..synth.modules.len())
        .step_by(step)
        .filter(|&i| !synth.content(i, 0).contains("/import"))
        .take(lock);
    leaves
        .map(|i| {
            let m = &synth.modules[i];
            format!("/import {{ @x }} from @{}/{}\n", m.user, m.name)
        })
        .collect()
}

/// The site on loopback, adding every response body's size to `served`.
fn counting_server(site: &Path, served: Arc<AtomicU64>) -> HttpServer {
    let files = static_files(site.to_path_buf());
    HttpServer::start(Arc::new(move |r: &Request| {
        let resp = files(r);
        served.fetch_add(resp.body.len() as u64, Ordering::SeqCst);
        resp
    }))
}

/// `user/name` of the project's first import.
fn first_import(project: &Path) -> Result<String> {
    let source = std::fs::read_to_string(project.join("main.mld"))?;
    source
        .lines()
        .find_map(|l| l.split(" from @").nth(1))
        .map(|m| m.trim().to_string())
        .context("the project imports a module")
}

fn snapshot_file(site: &Path) -> Result<PathBuf> {
    let latest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(site.join("latest.json"))?)?;
    let rel = latest["snapshot"]
        .as_str()
        .context("latest.json names a snapshot")?;
    Ok(site.join(rel))
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}
