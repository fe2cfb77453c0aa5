//! `cargo xtask bench install`: the client's two heavy paths against the
//! plain tools doing the same byte work, measured in one run.
//!
//! 1. **install**: a project whose lock names 1,000 modules, installed from
//!    the local store into an empty `.mlld/cache` (`mlld-registry install
//!    --frozen --offline`), against GNU tar extracting the very files that
//!    install writes (`tar -xf cache.tar`). Target: at most 2x tar.
//! 2. **sync**: a full `mlld-registry sync --offline --from SITE` of a
//!    100,000-module snapshot into an empty store (pointer and manifest
//!    signatures, snapshot hash, every member hashed and written), against
//!    `sha256sum SNAPSHOT` then `zstd -d SNAPSHOT -o FILE` over the same
//!    bytes. Target: at most 1.5x.
//!
//! The data comes from `mlld_synth` and the indexer library with the demo
//! key; it is generated once under `target/bench/` and reused. Everything
//! runs in release builds: run from a debug `cargo xtask`, the benchmark
//! re-runs itself with `--release`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// Modules in the install benchmark's lock.
    #[arg(long, default_value_t = 1000)]
    pub install_modules: usize,
    /// Modules in the sync benchmark's snapshot.
    #[arg(long, default_value_t = 100_000)]
    pub sync_modules: usize,
    /// Timed repetitions of each side (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Where generated data and scratch space live.
    #[arg(long, default_value = "target/bench")]
    pub work: PathBuf,
}

pub fn run(args: Args, root: &Path) -> Result<ExitCode> {
    if cfg!(debug_assertions) {
        // Benchmarks measure release builds: re-run this one as a release binary.
        let status = cargo_child::command(env!("CARGO"))
            .args([
                "run",
                "--quiet",
                "--release",
                "-p",
                "xtask-bench",
                "--manifest-path",
            ])
            .arg(root.join("Cargo.toml"))
            .args(["--", "bench", "install"])
            .args(["--install-modules", &args.install_modules.to_string()])
            .args(["--sync-modules", &args.sync_modules.to_string()])
            .args(["--runs", &args.runs.to_string()])
            .arg("--work")
            .arg(&args.work)
            .status()?;
        return Ok(if status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    for tool in ["tar", "sha256sum", "zstd"] {
        ensure!(
            Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok(),
            "`{tool}` is needed for the baseline; install it (GNU tar, coreutils, zstd)"
        );
    }
    // Relative to the current directory, like every xtask output.
    let work = std::path::absolute(&args.work)?;
    let client = build_client(root)?;
    println!("mlld-registry: {}", client.display());

    let install = bench_install(&client, &work, args.install_modules, args.runs)?;
    let sync = bench_sync(&client, &work, args.sync_modules, args.runs.min(3))?;

    println!(
        "\n| benchmark | mlld-registry | baseline | ratio (wall) | target | CPU: mlld-registry / baseline |"
    );
    println!("|---|---|---|---|---|---|");
    let mut ok = true;
    for (name, ours, base, target, baseline) in [
        (
            format!("install, {} modules", args.install_modules),
            install.0,
            install.1,
            2.0,
            "tar -xf",
        ),
        (
            format!("sync, {} modules", args.sync_modules),
            sync.0,
            sync.1,
            1.5,
            "sha256sum + zstd -d",
        ),
    ] {
        let ratio = ours.wall.as_secs_f64() / base.wall.as_secs_f64();
        ok &= ratio <= target;
        let cpu = match (ours.cpu, base.cpu) {
            (Some(o), Some(b)) => format!("{o:.2} s / {b:.2} s ({:.2}x)", o / b),
            _ => "n/a".into(),
        };
        println!(
            "| {name} | {:.3} s | {:.3} s ({baseline}) | {ratio:.2}x | <= {target}x {} | {cpu} |",
            ours.wall.as_secs_f64(),
            base.wall.as_secs_f64(),
            if ratio <= target { "met" } else { "MISSED" }
        );
    }
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("\nload average at the end: {}", load.trim());
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn build_client(root: &Path) -> Result<PathBuf> {
    super::release_binary(root, "mlld-registry", "mlld-registry")
}

/// A synthetic registry of `modules` modules, indexed into a signed site (cached).
fn site(work: &Path, modules: usize) -> Result<PathBuf> {
    let dir = work.join(format!("synth-{modules}"));
    let site = dir.join("site");
    if site.join("latest.json").exists() {
        return Ok(site);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let started = Instant::now();
    let synth = mlld_synth::Synth::new(mlld_synth::SynthConfig {
        users: (modules / 10).max(1),
        modules,
        seed: 1,
    });
    synth.write(&dir, &Default::default())?;
    let key = mlld_indexer::SigningKey::from_file(
        &crate::workspace_root().join("examples/keys/demo.key"),
        None,
    )?;
    let mut config = mlld_indexer::BuildConfig::new(
        dir.join("registry"),
        site.clone(),
        key,
        time::OffsetDateTime::now_utc(),
    );
    config.serial = Some(1);
    config.previous = mlld_indexer::PreviousSite::None;
    // Long enough that a reused data set stays fresh.
    config.expires_in = time::Duration::days(3650);
    let report = mlld_indexer::build(
        &config,
        &mlld_indexer::RecordedGists {
            dir: dir.join("gists"),
        },
    )?;
    ensure!(
        report.modules_accepted == modules,
        "the synthetic registry indexed {} of {modules} modules",
        report.modules_accepted
    );
    // The gist recordings are only needed to build the site.
    let _ = std::fs::remove_dir_all(dir.join("gists"));
    println!(
        "generated {modules} modules into {} in {:.1}s",
        site.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(site)
}

fn client_cmd(client: &Path, home: &Path, project: &Path) -> Command {
    let mut cmd = Command::new(client);
    cmd.env("MLLD_REGISTRY_HOME", home)
        .env("NO_COLOR", "1")
        .arg("--project")
        .arg(project)
        .stdout(Stdio::null());
    cmd
}

/// Flushes dirty pages first, so neither side pays for the other's writeback.
fn flush() {
    let _ = Command::new("sync").status();
}

/// One timed run: wall time, and CPU time (user + system) when
/// `/usr/bin/time` is there to report it.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Option<f64>,
}

fn run_ok(cmd: Command, what: &str) -> Result<Sample> {
    let time_bin = Path::new("/usr/bin/time");
    let cpu_file = tempfile::NamedTempFile::new()?;
    let mut cmd = if time_bin.exists() {
        let mut wrapped = Command::new(time_bin);
        wrapped
            .args(["-f", "%U %S", "-o"])
            .arg(cpu_file.path())
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                wrapped.env(k, v);
            }
        }
        wrapped.stdout(Stdio::null());
        wrapped
    } else {
        cmd
    };
    flush();
    let started = Instant::now();
    let out = cmd.stderr(Stdio::piped()).output()?;
    let wall = started.elapsed();
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let cpu = std::fs::read_to_string(cpu_file.path()).ok().and_then(|t| {
        let mut parts = t.split_whitespace().map(|p| p.parse::<f64>().ok());
        Some(parts.next()?? + parts.next()??)
    });
    Ok(Sample { wall, cpu })
}

/// Medians of wall and CPU time.
fn median(samples: &[Sample]) -> Sample {
    let mut walls: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
    walls.sort();
    let mut cpus: Vec<f64> = samples.iter().filter_map(|s| s.cpu).collect();
    cpus.sort_by(f64::total_cmp);
    Sample {
        wall: walls[walls.len() / 2],
        cpu: (!cpus.is_empty()).then(|| cpus[cpus.len() / 2]),
    }
}

/// Returns (install median, tar median).
fn bench_install(
    client: &Path,
    work: &Path,
    modules: usize,
    runs: usize,
) -> Result<(Sample, Sample)> {
    let site = site(work, modules)?;
    let scratch = work.join("install-run");
    let _ = std::fs::remove_dir_all(&scratch);
    let (home, project) = (scratch.join("home"), scratch.join("project"));
    std::fs::create_dir_all(&project)?;
    let key = site.join("mlld-registry.pub");
    let mut sync = client_cmd(client, &home, &project);
    sync.args(["sync", "--offline", "--from"])
        .arg(&site)
        .arg("--trusted-key")
        .arg(&key);
    run_ok(sync, "sync")?;

    // A project that imports every module; the first install (with approval) writes the lock.
    let latest: mlld_schemas::Latest =
        serde_json::from_slice(&std::fs::read(site.join("latest.json"))?)?;
    let manifest = read_manifest(&home, &latest.sha256)?;
    let source: String = manifest
        .modules
        .iter()
        .map(|m| format!("/import {{ @x }} from @{}/{}\n", m.user, m.name))
        .collect();
    std::fs::write(project.join("main.mld"), source)?;
    let install = |project: &Path| {
        let mut cmd = client_cmd(client, &home, project);
        cmd.args(["install", "--frozen", "--offline", "--trusted-key"])
            .arg(&key);
        cmd
    };
    let mut first = client_cmd(client, &home, &project);
    first
        .args(["install", "--yes", "--offline", "--trusted-key"])
        .arg(&key);
    run_ok(first, "the first install")?;

    // The baseline archive: exactly the files install writes.
    let tarball = scratch.join("cache.tar");
    let status = Command::new("tar")
        .arg("-cf")
        .arg(&tarball)
        .arg("-C")
        .arg(project.join(".mlld"))
        .arg("cache/gist")
        .status()?;
    ensure!(status.success(), "tar -cf failed");
    let files = walk_count(&project.join(".mlld/cache/gist"));
    println!("install: {modules} modules, {files} cache files");

    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        std::fs::remove_dir_all(project.join(".mlld/cache"))?;
        ours.push(run_ok(install(&project), "install")?);
        ensure!(
            walk_count(&project.join(".mlld/cache/gist")) == files,
            "install wrote a different number of files"
        );

        let dest = scratch.join("tar-out");
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::create_dir_all(&dest)?;
        let mut tar = Command::new("tar");
        tar.arg("-xf").arg(&tarball).arg("-C").arg(&dest);
        base.push(run_ok(tar, "tar -xf")?);
    }
    Ok((median(&ours), median(&base)))
}

fn read_manifest(home: &Path, sha: &str) -> Result<mlld_schemas::Manifest> {
    let path = home.join("snapshots").join(sha).join("manifest.json");
    serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .context("parsing the manifest")
}

fn walk_count(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                walk_count(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// Returns (sync median, sha256sum + zstd -d median).
fn bench_sync(client: &Path, work: &Path, modules: usize, runs: usize) -> Result<(Sample, Sample)> {
    let site = site(work, modules)?;
    let latest: mlld_schemas::Latest =
        serde_json::from_slice(&std::fs::read(site.join("latest.json"))?)?;
    let snapshot = site.join(&latest.snapshot);
    println!(
        "sync: {modules} modules, snapshot {:.1} MiB compressed",
        latest.size as f64 / (1 << 20) as f64
    );
    let scratch = work.join("sync-run");
    let key = site.join("mlld-registry.pub");
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(scratch.join("project"))?;
        let mut sync = client_cmd(client, &scratch.join("home"), &scratch.join("project"));
        sync.args(["sync", "--offline", "--from"])
            .arg(&site)
            .arg("--trusted-key")
            .arg(&key);
        ours.push(run_ok(sync, "sync")?);

        let out = scratch.join("decompressed");
        let mut baseline = Command::new("sh");
        baseline
            .args([
                "-c",
                "sha256sum \"$1\" >/dev/null && zstd -q -d -f \"$1\" -o \"$2\"",
                "sh",
            ])
            .arg(&snapshot)
            .arg(&out);
        base.push(run_ok(baseline, "sha256sum + zstd -d")?);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok((median(&ours), median(&base)))
}
