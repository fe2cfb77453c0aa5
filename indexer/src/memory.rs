//! The build process's resident memory, read from Linux's
//! `/proc/self/status`, so the report can say which stage holds the peak.
//! Elsewhere every reading is `None` and nothing is reset.

const STATUS: &str = "/proc/self/status";

/// Starts a new peak: Linux (4.0 and later) resets `VmHWM` to the current
/// resident size when `5` is written to `clear_refs`. Returns whether it did.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The highest resident size since the process started or the last
/// [`reset_peak`], in bytes.
pub fn peak_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|kib| kib * 1024)
}

/// The resident size now, in bytes.
pub fn resident_bytes() -> Option<u64> {
    status_kib("VmRSS:").map(|kib| kib * 1024)
}

/// The CPU time (user and system, all threads) the process has used, in
/// seconds, from `/proc/self/stat`: with wall time it says how much of the
/// machine a stage kept busy. Linux counts it in clock ticks of
/// `USER_HZ`, 100 a second on x86 and ARM (asking `sysconf` would need
/// `unsafe`, which the workspace forbids; the figure is for reports only).
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count from its `)`.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after `)`.
    Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(STATUS).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_reset_peak_forgets_memory_already_freed() {
        let before = peak_bytes().expect("Linux reports VmHWM");
        // Touch 64 MiB so the peak rises, then free it.
        let big = vec![1u8; 64 << 20];
        assert!(big.iter().step_by(4096).all(|&b| b == 1));
        let raised = peak_bytes().unwrap();
        assert!(raised >= before + (60 << 20), "{before} → {raised}");
        drop(big);
        assert!(cpu_seconds().is_some());
        if reset_peak() {
            let after = peak_bytes().unwrap();
            assert!(after + (60 << 20) <= raised, "{raised} → {after}");
            assert!(resident_bytes().unwrap() <= after + (8 << 20));
        }
    }
}
