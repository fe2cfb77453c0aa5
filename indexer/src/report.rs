//! The build report: what went in, what was left out and why.

use std::fmt;
use std::time::Duration;

use mlld_schemas::Diagnostic;
use serde::Serialize;

use crate::assemble::Rejection;
use crate::gist::RequestStats;

/// A module whose last good record was kept because this crawl could not refresh it.
#[derive(Clone, Debug, Serialize)]
pub struct Stale {
    pub module: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StageTime {
    pub stage: &'static str,
    pub seconds: f64,
    /// The highest resident memory during the stage (Linux), and what
    /// stayed resident when it ended: which stage holds the build's peak.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resident_after_bytes: Option<u64>,
    /// CPU seconds the process used during the stage (Linux): over
    /// `seconds`, how many cores it kept busy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    /// The stage's own steps, timed where one stage does several things.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepTime>,
}

/// One step of a stage and its time.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepTime {
    pub step: &'static str,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
}

/// Where a previous site named by `--previous` was read from.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviousRead {
    /// `--previous`.
    pub source: String,
    /// The directory or URL read: the output directory when it held a copy.
    pub read_from: String,
}

impl PreviousRead {
    /// `--previous` was `source`, and the build read `read_from`.
    pub fn new(source: &str, read_from: &str) -> Self {
        let (source, read_from) = (source.to_string(), read_from.to_string());
        Self { source, read_from }
    }
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildReport {
    pub serial: u64,
    /// Which layouts the registry directory holds.
    pub layouts: crate::versioned_load::Layouts,
    pub users: usize,
    /// User folders whose registry.json was unusable.
    pub users_rejected: Vec<String>,
    pub modules_accepted: usize,
    pub modules_rejected: Vec<Rejection>,
    /// Accepted modules whose record was kept from the previous build because the fetch failed.
    pub modules_stale: Vec<Stale>,
    /// Accepted modules fetched and captured in this build.
    pub modules_fetched: usize,
    /// Accepted modules GitHub reported unchanged (304).
    pub modules_unchanged: usize,
    /// Where the previous site named by `--previous` was read from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_site: Option<PreviousRead>,
    /// Previous records that could not be read back, so fetched again.
    #[serde(skip_serializing_if = "is_zero")]
    pub previous_records_unreadable: usize,
    /// Versioned modules (`modules/{author}/{name}`) with at least one accepted version.
    pub versioned_modules: usize,
    pub versions_accepted: usize,
    /// Versions left out, with the file and the reason (hash mismatch, unpinned source, fetch failure…).
    pub versions_rejected: Vec<crate::versioned_load::VersionRejection>,
    /// Accepted versions whose files were fetched in this build.
    pub versions_fetched: usize,
    /// Accepted versions taken from the previous snapshot without a request (same pinned source).
    pub versions_reused: usize,
    /// Requests for raw files of versioned modules.
    pub raw_requests: Option<crate::raw::RawStats>,
    /// Names registered in both layouts (`author/name`): `mlld://author/name` and hex
    /// revision pins name the gist module, every other reference the versioned one.
    pub name_overlaps: Vec<String>,
    /// HTTP requests, when the gists came from GitHub.
    pub requests: Option<RequestStats>,
    pub stages: Vec<StageTime>,
    /// Steps timed in the running stage, which the stage's entry takes.
    #[serde(skip)]
    steps: Vec<StepTime>,
    /// CPU seconds the process had used when the running stage, and its
    /// last step, began.
    #[serde(skip)]
    stage_cpu_mark: f64,
    #[serde(skip)]
    step_cpu_mark: f64,
    /// Registry imports in module content that name no accepted module: (module, reference).
    pub unresolved_imports: Vec<(String, String)>,
    pub advisories: usize,
    pub blobs: usize,
    /// Compressed frames copied from the previous snapshot, and compressed afresh.
    pub frames_reused: usize,
    pub frames_compressed: usize,
    pub snapshot: String,
    pub snapshot_bytes: u64,
    /// How the search index was built (full, or on the previous base).
    pub search_index: Option<crate::search_incremental::IndexBuild>,
    /// Bytes of the delta from the previous snapshot (patch plus blob pack), when one was written.
    pub delta_bytes: Option<u64>,
    #[serde(skip)]
    pub diagnostics: Vec<Diagnostic>,
    pub errors: usize,
    pub warnings: usize,
    pub signed_with_demo_key: bool,
    /// Peak resident memory of the build process, where the platform reports it.
    pub peak_memory_bytes: Option<u64>,
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
}

/// The CPU seconds used since `mark`, which moves to now.
fn cpu_since(mark: &mut f64) -> Option<f64> {
    let now = crate::memory::cpu_seconds()?;
    Some(now - std::mem::replace(mark, now))
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl BuildReport {
    /// Records a step of the running stage, begun at `started`.
    pub fn step(&mut self, step: &'static str, started: std::time::Instant) {
        let seconds = started.elapsed().as_secs_f64();
        let cpu_seconds = cpu_since(&mut self.step_cpu_mark);
        self.steps.push(StepTime {
            step,
            seconds,
            cpu_seconds,
        });
    }

    /// Records a step that ran beside another of the stage's steps, for
    /// `seconds` of wall time; no CPU time, which the process counts for
    /// both at once.
    pub fn concurrent_step(&mut self, step: &'static str, seconds: f64) {
        self.steps.push(StepTime {
            step,
            seconds,
            cpu_seconds: None,
        });
    }

    /// Marks the start of a stage: its CPU time (and its steps') counts
    /// from here, not from the end of the stage before.
    pub fn begin_stage(&mut self) {
        let now = crate::memory::cpu_seconds().unwrap_or_default();
        (self.stage_cpu_mark, self.step_cpu_mark) = (now, now);
    }

    /// Records a stage that began at `started` (and, where the platform
    /// allows, with [`crate::memory::reset_peak`]): its time and memory.
    pub fn stage(&mut self, stage: &'static str, started: std::time::Instant) {
        let peak = crate::memory::peak_bytes();
        let cpu_seconds = cpu_since(&mut self.stage_cpu_mark);
        self.stages.push(StageTime {
            cpu_seconds,
            stage,
            seconds: started.elapsed().as_secs_f64(),
            peak_memory_bytes: peak,
            resident_after_bytes: crate::memory::resident_bytes(),
            steps: std::mem::take(&mut self.steps),
        });
        self.peak_memory_bytes = self.peak_memory_bytes.max(peak);
    }
}

impl fmt::Display for BuildReport {
    /// Names and reasons come from registry files and gists: shown terminal-safe.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use mlld_schemas::terminal::terminal_safe as safe;
        for d in &self.diagnostics {
            writeln!(f, "{d}")?;
        }
        if !self.diagnostics.is_empty() {
            writeln!(f)?;
        }
        writeln!(f, "serial      {}", self.serial)?;
        writeln!(f, "layout      {}", self.layouts.describe())?;
        if let Some(p) = &self.previous_site {
            writeln!(
                f,
                "previous    {} read from {}",
                safe(&p.source),
                safe(&p.read_from)
            )?;
        }
        writeln!(
            f,
            "users       {} ({} rejected)",
            self.users,
            self.users_rejected.len()
        )?;
        for u in &self.users_rejected {
            writeln!(
                f,
                "  rejected user {}: registry.json is unusable (see the errors above)",
                safe(u)
            )?;
        }
        writeln!(
            f,
            "modules     {} accepted, {} rejected",
            self.modules_accepted,
            self.modules_rejected.len()
        )?;
        for r in &self.modules_rejected {
            writeln!(f, "  rejected {}: {}", safe(&r.module), safe(&r.reason))?;
        }
        writeln!(
            f,
            "            {} fetched, {} unchanged, {} stale",
            self.modules_fetched,
            self.modules_unchanged,
            self.modules_stale.len()
        )?;
        for s in &self.modules_stale {
            writeln!(f, "  stale {}: {}", safe(&s.module), safe(&s.reason))?;
        }
        if self.previous_records_unreadable > 0 {
            writeln!(
                f,
                "  warning: {} records of the previous build could not be read back and were fetched again",
                self.previous_records_unreadable
            )?;
        }
        if self.layouts.versioned {
            writeln!(
                f,
                "versions    {} accepted in {} modules, {} rejected",
                self.versions_accepted,
                self.versioned_modules,
                self.versions_rejected.len()
            )?;
            for r in &self.versions_rejected {
                writeln!(
                    f,
                    "  rejected {}@{} ({}): {}",
                    r.module, r.version, r.file, r.reason
                )?;
            }
            writeln!(
                f,
                "            {} fetched, {} reused from the previous snapshot",
                self.versions_fetched, self.versions_reused
            )?;
            if let Some(raw) = &self.raw_requests {
                writeln!(
                    f,
                    "            {} raw requests ({} retries), {} bytes downloaded",
                    raw.requests, raw.retries, raw.bytes_downloaded
                )?;
            }
            for name in &self.name_overlaps {
                writeln!(
                    f,
                    "  warning: {name} is in both layouts: mlld://{name} and @{name}@<hex revision> name the gist module, @{name} (with a version, range or tag) the versioned one"
                )?;
            }
        }
        for (module, reference) in &self.unresolved_imports {
            writeln!(
                f,
                "  note: {} imports {}, which is not in the registry",
                safe(module),
                safe(reference)
            )?;
        }
        writeln!(f, "advisories  {}", self.advisories)?;
        writeln!(
            f,
            "blobs       {} ({} frames reused, {} compressed)",
            self.blobs, self.frames_reused, self.frames_compressed
        )?;
        writeln!(
            f,
            "snapshot    {} ({} bytes)",
            self.snapshot, self.snapshot_bytes
        )?;
        match self.search_index {
            Some(crate::search_incremental::IndexBuild::Incremental { changed, removed }) => {
                writeln!(
                    f,
                    "search      on the previous base segment: {changed} documents added or replaced, {removed} removed"
                )?
            }
            Some(crate::search_incremental::IndexBuild::Full) => {
                writeln!(f, "search      full rebuild")?
            }
            None => {}
        }
        if let Some(bytes) = self.delta_bytes {
            writeln!(f, "delta       {bytes} bytes from the previous snapshot")?;
        }
        if let Some(r) = &self.requests {
            writeln!(
                f,
                "requests    {} ({} against the primary limit, {} not modified, {} retries, {} raw), {} bytes downloaded, {}s waiting for rate limits",
                r.requests,
                r.primary,
                r.not_modified,
                r.retries,
                r.raw_requests,
                r.bytes_downloaded,
                r.rate_limit_wait_secs
            )?;
        }
        let stages: Vec<String> = self
            .stages
            .iter()
            .map(|s| match s.peak_memory_bytes {
                Some(peak) => format!("{} {:.2}s {} MiB", s.stage, s.seconds, peak >> 20),
                None => format!("{} {:.2}s", s.stage, s.seconds),
            })
            .collect();
        writeln!(
            f,
            "time        {:.2}s ({})",
            self.elapsed.as_secs_f64(),
            stages.join(", ")
        )?;
        if let Some(bytes) = self.peak_memory_bytes {
            writeln!(f, "memory      {} MiB peak", bytes / (1024 * 1024))?;
        }
        if self.signed_with_demo_key {
            writeln!(
                f,
                "warning: signed with the DEMO key; never publish this site as a real registry"
            )?;
        }
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Keeps this thread busy for `ms` milliseconds.
    fn spin(ms: u64) {
        let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
        let mut x = 0u64;
        while std::time::Instant::now() < until {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
    }

    #[test]
    fn stages_and_steps_count_the_cpu_they_used() {
        let mut report = BuildReport::default();
        report.begin_stage();
        let started = std::time::Instant::now();
        spin(120);
        report.step("busy", started);
        report.stage("one", started);
        let stage = report.stages[0].cpu_seconds.unwrap();
        let step = report.stages[0].steps[0].cpu_seconds.unwrap();
        // The process's CPU: other tests' threads may add to it, never less.
        assert!(stage >= 0.08 && step >= 0.08, "{stage} {step}");
    }
}
