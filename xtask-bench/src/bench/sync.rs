//! `cargo xtask bench sync`: after a share of the modules changed, how many
//! bytes a delta sync downloads compared with the full snapshot (the
//! baseline, measured in the same run with `sync --full`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use mlld_e2e::http::{HttpServer, static_files};
use mlld_indexer::PreviousSite;
use mlld_synth::{Synth, SynthConfig};
use serde_json::Value;

#[derive(clap::Args)]
pub struct SyncArgs {
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    #[arg(long, default_value_t = 100_000)]
    modules: usize,
    /// Share of modules changed between the two builds, in percent.
    #[arg(long, default_value_t = 1.0)]
    changed_percent: f64,
    #[arg(long, default_value = "target/bench/sync")]
    dir: PathBuf,
    /// Seed of the synthetic registry (`bench client` uses 11).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Start from the site and data another run built in --dir with the
    /// same sizes and seed (e.g. `bench client`'s 1,000,000-module site),
    /// instead of building the first site; the rebuild replaces it.
    #[arg(long)]
    reuse_site: bool,
    /// The revision the changed modules move to: a second run on a reused
    /// site needs a new one (2, 3, …) for anything to change.
    #[arg(long, default_value_t = 1)]
    change_revision: u32,
}

fn sync(bin: &Path, home: &Path, url: &str, key: &Path, full: bool) -> Result<(Value, f64)> {
    let mut cmd = Command::new(bin);
    cmd.args(["sync", "--json", "--from", url, "--trusted-key"])
        .arg(key)
        .env("MLLD_REGISTRY_HOME", home)
        .env("NO_PROXY", "127.0.0.1");
    if full {
        cmd.arg("--full");
    }
    let started = Instant::now();
    let out = cmd.output().context("running mlld-registry sync")?;
    let secs = started.elapsed().as_secs_f64();
    ensure!(
        out.status.success(),
        "sync failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    // The `--json` envelope: the report is its `data`.
    let envelope: Value = serde_json::from_str(text.lines().last().context("no report")?)?;
    Ok((envelope["data"].clone(), secs))
}

pub fn run(args: SyncArgs) -> Result<()> {
    let root = crate::workspace_root();
    // Relative to the current directory, like every xtask output.
    let dir = std::path::absolute(&args.dir)?;
    let (data, site) = (dir.join("data"), dir.join("site"));
    let reuse = args.reuse_site && site.join("latest.json").is_file();
    if !reuse {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let bin = super::release_binary(&root, "mlld-registry", "mlld-registry")?;

    let synth = Synth::new(SynthConfig {
        users: args.users,
        modules: args.modules,
        seed: args.seed,
    });
    if !reuse {
        eprintln!("generating and indexing {} modules…", args.modules);
        synth.write(&data, &BTreeMap::new())?;
        super::build_site(&root, &data, &site, PreviousSite::Output)?;
    }
    let server = HttpServer::start(static_files(site.clone()));
    let key = site.join("mlld-registry.pub");
    let (home_delta, home_full) = (dir.join("home-delta"), dir.join("home-full"));
    for home in [&home_delta, &home_full] {
        let _ = std::fs::remove_dir_all(home);
    }
    sync(&bin, &home_delta, &server.url(), &key, false)?;
    sync(&bin, &home_full, &server.url(), &key, false)?;

    let step = (100.0 / args.changed_percent).round().max(1.0) as usize;
    let changed: BTreeMap<usize, u32> = (0..args.modules)
        .step_by(step)
        .map(|i| (i, args.change_revision))
        .collect();
    eprintln!("changing {} modules and rebuilding…", changed.len());
    synth.write(&data, &changed)?;
    super::build_site(&root, &data, &site, PreviousSite::Output)?;

    let (full, full_secs) = sync(&bin, &home_full, &server.url(), &key, true)?;
    let (delta, delta_secs) = sync(&bin, &home_delta, &server.url(), &key, false)?;
    ensure!(
        full["mode"] == "full" && delta["mode"] == "delta",
        "unexpected modes: {} / {}",
        full["mode"],
        delta["mode"]
    );
    let full_bytes = full["downloadedBytes"].as_u64().unwrap_or(0) as f64;
    let delta_bytes = delta["downloadedBytes"].as_u64().unwrap_or(0) as f64;
    let d = &delta["delta"];
    ensure!(
        d["route"] == "patch",
        "the delta sync did not use the patch: {}",
        d["patchUnusable"]
    );
    let patch_bytes = d["patchBytes"].as_u64().unwrap_or(0) as f64;
    let pack_bytes = d["blobPackBytes"].as_u64().unwrap_or(0) as f64;
    let blob_bytes = d["blobBytesFetched"].as_u64().unwrap_or(0) as f64;
    let ratio = delta_bytes / full_bytes;
    println!(
        "sync benchmark: {} modules, {} changed ({}%)",
        args.modules,
        changed.len(),
        args.changed_percent
    );
    println!(
        "full sync    {:>10.1} MB  {full_secs:>6.2}s",
        full_bytes / 1e6
    );
    println!(
        "delta sync   {:>10.2} MB  {delta_secs:>6.2}s  (patch {:.2} MB, blob pack {:.2} MB with {} blobs, {} blobs fetched loose {:.2} MB, {} blobs reused)",
        delta_bytes / 1e6,
        patch_bytes / 1e6,
        pack_bytes / 1e6,
        d["blobsFromPack"],
        d["blobsFetched"],
        blob_bytes / 1e6,
        d["blobsReused"]
    );
    println!(
        "delta / full bytes  {ratio:.3}  (target <= 0.05: {})",
        if ratio <= 0.05 { "ok" } else { "MISSED" }
    );
    Ok(())
}
