//! `cargo xtask bench scan`: the import scanner on a hostile file, through
//! the path a user runs (`mlld-registry install` on a synced store).
//!
//! The hostile file opens `/import {` and never closes it, then holds
//! millions of newlines (issue 11: a scanner that rescans the growing text
//! on every line took over a minute on 4 MB). The baseline is the same
//! command on a project whose file has the same size and no imports, so
//! the ratio is what the hostile shape costs beyond reading the bytes.
//! Both projects also import one real module, so `install` does its whole
//! job (scan, lock, cache) in each run.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use mlld_e2e::project::synced;
use mlld_e2e::{Client, assert_ok};

#[derive(clap::Args)]
pub struct ScanArgs {
    /// Size of each generated `.mld` file, in MiB.
    #[arg(long, default_value_t = 50)]
    pub megabytes: usize,
    /// Timed runs of each command (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

/// The import every project holds, so that install locks and caches something.
const REAL_IMPORT: &str = "/import { @parse } from mlld://adamavenir/json-utils\n";

pub fn run(args: ScanArgs) -> Result<()> {
    ensure!(args.runs > 0, "--runs must be at least 1");
    let dir = tempfile::tempdir_in(std::env::current_dir()?)?;
    let bytes = args.megabytes << 20;
    let hostile = project(&dir.path().join("hostile"), &hostile_text(bytes))?;
    let benign = project(&dir.path().join("benign"), &benign_text(bytes))?;
    let hostile_time = median(&hostile, args.runs)?;
    let benign_time = median(&benign, args.runs)?;
    let ratio = hostile_time.as_secs_f64() / benign_time.as_secs_f64();
    println!(
        "scan      {} MiB: hostile (an unclosed `/import {{`, then only newlines) vs a benign file of the same size",
        args.megabytes
    );
    println!(
        "install   hostile {:.3} s, benign {:.3} s (median of {} runs each, process start to exit)",
        hostile_time.as_secs_f64(),
        benign_time.as_secs_f64(),
        args.runs
    );
    println!("ratio     {ratio:.2} (hostile / benign; target: hostile under 1 s)");
    Ok(())
}

/// `/import {` then newlines, to `bytes`, then one real import.
fn hostile_text(bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 128);
    text.push_str(REAL_IMPORT);
    text.push_str("/import {\n");
    while text.len() < bytes {
        text.push('\n');
    }
    text
}

/// Ordinary prose lines of the same total size.
fn benign_text(bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 128);
    text.push_str(REAL_IMPORT);
    while text.len() < bytes {
        text.push_str("plain text without any directive\n");
    }
    text
}

/// A project holding `main.mld`, with the example site synced into its
/// own store (the user's path: `sync`, then the command).
fn project(dir: &Path, text: &str) -> Result<Client> {
    std::fs::create_dir_all(dir)?;
    let (_site, client) = synced(dir);
    std::fs::write(client.project.join("main.mld"), text)?;
    Ok(client)
}

/// The median wall time of `install --yes` (lock and cache removed first,
/// so each run does the whole job).
fn median(client: &Client, runs: usize) -> Result<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let _ = std::fs::remove_dir_all(client.project.join(".mlld"));
        let _ = std::fs::remove_file(client.project.join("mlld-lock.json"));
        let started = Instant::now();
        let out = client.run(&["install", "--yes", "--offline"]);
        times.push(started.elapsed());
        assert_ok(&out);
    }
    times.sort();
    Ok(times[times.len() / 2])
}
