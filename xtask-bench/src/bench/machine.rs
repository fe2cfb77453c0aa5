//! What the benchmarks read of the machine (Linux's `/proc`, through the
//! indexer's `memory` readers where they serve), and how a timed build is
//! given the same start as the one before it.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use mlld_indexer::memory;

/// This process's peak resident memory, in MiB: `VmHWM`, or more where a
/// fresh-memory probe reset it (its 128 MiB are not the benchmark's).
pub fn own_peak_mib() -> Option<f64> {
    let bytes = memory::peak_bytes()?.max(PEAK_BEFORE_PROBES.load(Ordering::Relaxed));
    Some(bytes as f64 / (1024.0 * 1024.0))
}

/// The highest peak seen before a probe reset it, in bytes.
static PEAK_BEFORE_PROBES: AtomicU64 = AtomicU64::new(0);

/// CPU time stolen from this machine so far, summed over its cores.
pub fn stolen_so_far() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().find(|l| l.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal …, in USER_HZ (100 a second on Linux).
    let ticks: u64 = cpu.split_whitespace().nth(8)?.parse().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Seconds to touch a gibibyte of memory this process never had: 128 MiB
/// zeroed (the system allocator maps a block this large afresh and leaves
/// it untouched, unless `MALLOC_MMAP_THRESHOLD_` says otherwise), one
/// byte written a page, then freed; the build that follows finds those
/// pages backed. On a virtual machine whose host takes back the guest's
/// free memory (virtio-balloon's free page reporting), a page the guest
/// hands out again is backed anew by the host, and this ranged from under
/// half a second to over five: every page a build allocates or writes to
/// the page cache pays it, so it says how the machine stood when a build
/// was timed. `None` off Linux.
pub fn fresh_memory_secs_per_gib() -> Option<f64> {
    const PROBE: usize = 128 << 20;
    const PAGE: usize = 4096;
    if !cfg!(target_os = "linux") {
        return None;
    }
    if let Some(bytes) = memory::peak_bytes() {
        PEAK_BEFORE_PROBES.fetch_max(bytes, Ordering::Relaxed);
    }
    let mut probe = vec![0u8; PROBE];
    let started = std::time::Instant::now();
    for offset in (0..PROBE).step_by(PAGE) {
        probe[offset] = 1;
    }
    std::hint::black_box(&probe);
    let secs = started.elapsed().as_secs_f64();
    drop(probe);
    // The peak back to what is resident now: the probe is not the
    // benchmark's own memory.
    memory::reset_peak();
    Some(secs * (1u64 << 30) as f64 / PROBE as f64)
}

/// Before a timed build: flushes what earlier steps wrote (a full build
/// writes gigabytes of small files), so that no build pays for another's
/// writeback; then, where the kernel allows it (as root), drops the
/// dentry and inode caches (`drop_caches` 2: file contents stay cached).
/// Each full build creates over a million files and the next run deletes
/// them; their cached entries piled up from run to run, and each later
/// full build's crawl took more CPU (by half over three runs at 1,000,000
/// modules; at 20,000 it fell back when the caches were dropped by hand,
/// then grew again) while the rebuilds, which create few files, held
/// steady: later pairs' ratios looked better than the first's. Dropping
/// removes that trend, not the machine's noise. Whether they were dropped.
pub fn settle() -> Result<bool> {
    Command::new("sync").status().context("running sync")?;
    Ok(std::fs::write("/proc/sys/vm/drop_caches", "2").is_ok())
}
