//! `cargo xtask bench page`: the web page at 100,000 modules, in headless
//! Chromium against the built site on loopback. Measures what a reader
//! waits for and downloads:
//!
//! - a direct link to one module (`#/user/name`, a fresh load, no cache):
//!   every byte the server sent until the page shows the module and its
//!   text and then stays idle (target under 100 KB: the listing shards must
//!   not load), against the bytes of the home page with the whole listing
//!   (what a module link used to wait for);
//! - a direct link to a search (`#/?q=…`, a fresh load): the time from
//!   navigation to the first results on screen (the first stage, target
//!   300 ms), against the time to the results from the whole listing in
//!   the same load (what the first results used to wait for);
//! - typing a query into the loaded page: the time from the input to the
//!   results (the page waits 60 ms for the typing to pause);
//! - the site's size on disk, by top-level folder (target under 700 MB).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use mlld_e2e::http::{HttpServer, Request, static_files};
use mlld_e2e::webdriver::{Browser, find_browser};
use mlld_indexer::{BuildConfig, RecordedGists, SigningKey};
use mlld_synth::{Synth, SynthConfig};
use serde_json::json;

#[derive(clap::Args)]
pub struct PageArgs {
    #[arg(long, default_value_t = 100_000)]
    modules: usize,
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Fresh loads timed per measurement.
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Reuse the site of a previous run in the work directory.
    #[arg(long)]
    reuse: bool,
    /// Scratch directory, emptied first. Default: target/bench-page.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Print where each search link's time went: every request's start
    /// and end and the page's marks, in milliseconds from navigation.
    #[arg(long)]
    trace: bool,
}

const MODULE_BYTES_TARGET: u64 = 100_000;
const FIRST_RESULTS_TARGET: Duration = Duration::from_millis(300);
const SITE_BYTES_TARGET: u64 = 700_000_000;
/// The page's summary once the whole listing is in.
const LISTING_IN: &str = "const s = document.getElementById('summary').textContent; return /\\d/.test(s) && !/loading/.test(s)";

/// The page's requests and marks so far: `[name, start, end]`, by start.
const TRACE: &str = "const short = (n) => n.replace(/^.*\\//, '').slice(0, 14); return [...performance.getEntriesByType('resource').map((e) => [short(e.name), Math.round(e.startTime), Math.round(e.responseEnd)]), ...performance.getEntriesByType('mark').map((m) => [m.name, Math.round(m.startTime)]), ['dom', Math.round(performance.getEntriesByType('navigation')[0].domInteractive)]].sort((a, b) => a[1] - b[1]).map((e) => e.join(' ')).join(' | ')";

/// Bytes served and paths asked for since the last `take`.
#[derive(Default)]
struct Served {
    bytes: AtomicU64,
    paths: Mutex<Vec<String>>,
}

impl Served {
    fn take(&self) -> (u64, Vec<String>) {
        let paths = std::mem::take(&mut *self.paths.lock().expect("not poisoned"));
        (self.bytes.swap(0, Ordering::SeqCst), paths)
    }
}

pub fn run(args: PageArgs) -> Result<ExitCode> {
    let Some((chromium, driver)) = find_browser() else {
        bail!("needs chromium and chromedriver (see .ci/run)");
    };
    let work = std::path::absolute(
        args.work_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("target/bench-page")),
    )?;
    let site = work.join("site");
    let synth = Synth::new(SynthConfig {
        users: args.users,
        modules: args.modules,
        seed: 1,
    });
    if !args.reuse {
        build(&synth, &work, &site)?;
    }
    let sizes = site_size(&site)?;
    let total: u64 = sizes.values().sum();

    let served = Arc::new(Served::default());
    let files = static_files(site.clone());
    let counter = served.clone();
    let server = HttpServer::start(Arc::new(move |req: &Request| {
        counter
            .paths
            .lock()
            .expect("not poisoned")
            .push(req.path().to_string());
        // Every run is a first visit: nothing comes from the browser's cache.
        let response = files(req).header("cache-control", "no-store");
        counter
            .bytes
            .fetch_add(response.body.len() as u64, Ordering::SeqCst);
        response
    }));
    let browser = Browser::start(&chromium, &driver)?;
    let base = server.url();

    let picks: Vec<&mlld_synth::SynthModule> = (0..args.runs)
        .map(|i| &synth.modules[(i * 7919 + 13) % synth.modules.len()])
        .collect();

    // The baseline of a module link: the home page with the whole listing.
    blank(&browser)?;
    served.take();
    browser.goto(&format!("{base}/#/"))?;
    browser.wait_for(LISTING_IN)?;
    let listing_bytes = served.take().0;

    // A direct link to one module.
    let mut module_bytes = Vec::new();
    let mut shard_loads = 0;
    for m in &picks {
        blank(&browser)?;
        served.take();
        browser.goto(&format!("{base}/#/{}/{}", m.user, m.name))?;
        browser.wait_for(&format!(
            "const n = document.querySelector('#module .name'); return n && n.textContent === {} && document.getElementById('content')",
            json!(format!("{}/{}", m.user, m.name))
        ))?;
        // Anything the page would still fetch (it must fetch nothing more).
        std::thread::sleep(Duration::from_millis(500));
        let (bytes, paths) = served.take();
        shard_loads += paths
            .iter()
            .filter(|p| p.contains("listing-") || p.contains("search-"))
            .count();
        module_bytes.push(bytes);
    }
    module_bytes.sort_unstable();

    // A direct link to a search: navigation to the first results, and to
    // the results from the whole listing.
    let queries = queries(&synth, args.runs);
    let (mut first, mut whole) = (Vec::new(), Vec::new());
    let mut agreed = 0;
    for q in &queries {
        blank(&browser)?;
        browser.goto(&format!("{base}/#/?q={}", escape(q)))?;
        let at = browser.wait_for(
            "const m = performance.getEntriesByName('mlld:results'); return m.length && m[0].startTime",
        )?;
        first.push(Duration::from_secs_f64(at.as_f64().unwrap_or(0.0) / 1000.0));
        if args.trace {
            println!("trace {q:?}: {}", browser.eval(TRACE)?);
        }
        browser.wait_for(LISTING_IN)?;
        let at = browser.wait_for(
            "const m = performance.getEntriesByName('mlld:results'); return m.length && m[m.length - 1].startTime",
        )?;
        whole.push(Duration::from_secs_f64(at.as_f64().unwrap_or(0.0) / 1000.0));
        // The first stage's best 50 against the whole listing's, now that
        // every row is in.
        let same = browser.eval(&format!(
            "const q = mlldSearch.parse({}); const stage = mlldSearch.firstStage(q, mlldSearch.size()); return JSON.stringify(mlldSearch.stageRank(q, stage, mlldSearch.rowAt, 50).map(mlldSearch.rowAt)) === JSON.stringify(mlldSearch.run(q).slice(0, 50))",
            json!(q)
        ))?;
        agreed += usize::from(same == json!(true));
    }
    first.sort_unstable();
    whole.sort_unstable();

    // Typing into the loaded page, the whole listing in.
    blank(&browser)?;
    browser.goto(&format!("{base}/#/"))?;
    browser.wait_for(LISTING_IN)?;
    let mut typed = Vec::new();
    for q in &queries {
        browser.eval(&format!(
            "window.typedAt = performance.now(); const q = document.getElementById('q'); q.value = {}; q.dispatchEvent(new Event('input')); return 1",
            json!(q)
        ))?;
        let at = browser.wait_for("const m = performance.getEntriesByName('mlld:results'); const last = m.length && m[m.length - 1].startTime; return last > window.typedAt && last - window.typedAt")?;
        typed.push(Duration::from_secs_f64(at.as_f64().unwrap_or(0.0) / 1000.0));
    }
    typed.sort_unstable();
    drop(browser);

    let median = |v: &[Duration]| v[v.len() / 2];
    println!(
        "site                 {} modules, {:.1} MB ({})",
        args.modules,
        mb(total),
        sizes
            .iter()
            .map(|(k, v)| format!("{k} {:.1} MB", mb(*v)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let module_median = module_bytes[module_bytes.len() / 2];
    println!(
        "module direct link   median {:.1} KB, max {:.1} KB, listing shards or search parts loaded {shard_loads}; whole listing (baseline) {:.1} KB; ratio {:.4}   target < 100 KB",
        kb(module_median),
        kb(*module_bytes.last().expect("runs > 0")),
        kb(listing_bytes),
        module_median as f64 / listing_bytes as f64,
    );
    println!(
        "search direct link   first results median {}, max {}; from the whole listing (baseline) median {}, max {}; ratio {:.3}   target < 300 ms",
        ms(median(&first)),
        ms(*first.last().expect("runs > 0")),
        ms(median(&whole)),
        ms(*whole.last().expect("runs > 0")),
        median(&first).as_secs_f64() / median(&whole).as_secs_f64(),
    );
    println!(
        "first stage          the same best 50 as the whole listing for {agreed} of {} queries",
        queries.len()
    );
    println!(
        "search as you type   results median {}, max {} (60 ms of it the typing pause)",
        ms(median(&typed)),
        ms(*typed.last().expect("runs > 0"))
    );
    let met = *module_bytes.last().expect("runs > 0") < MODULE_BYTES_TARGET
        && shard_loads == 0
        && median(&first) < FIRST_RESULTS_TARGET
        && total < SITE_BYTES_TARGET;
    println!(
        "targets              {}",
        if met { "met" } else { "NOT met" }
    );
    Ok(if met {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The synthetic registry and its site, built as `cargo xtask index` builds.
fn build(synth: &Synth, work: &Path, site: &Path) -> Result<()> {
    if work.exists() {
        std::fs::remove_dir_all(work).with_context(|| format!("emptying {}", work.display()))?;
    }
    synth.write(&work.join("synth"), &Default::default())?;
    let root = crate::workspace_root();
    let mut config = BuildConfig::new(
        work.join("synth/registry"),
        site.to_path_buf(),
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
        report.modules_accepted == synth.modules.len(),
        "only {} of {} modules were accepted",
        report.modules_accepted,
        synth.modules.len()
    );
    Ok(())
}

/// Bytes of every file under `site`, by top-level entry.
fn site_size(site: &Path) -> Result<BTreeMap<String, u64>> {
    let mut sizes = BTreeMap::new();
    for entry in walk(site)? {
        let rel = entry.strip_prefix(site).expect("walked below site");
        let top = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = rel.file_name().unwrap_or_default().to_string_lossy();
        let key = if top == "data" && rel.components().count() > 2 {
            // Folders of data files: the dependents' buckets.
            let folder = rel.components().nth(1).expect("more than two components");
            format!("data/{}/", folder.as_os_str().to_string_lossy())
        } else if top == "data" {
            // The listing and the search parts apart.
            format!("data/{}", name.split('-').next().unwrap_or_default())
        } else if top == "snapshots" && name.ends_with(".index.tar.zst") {
            "snapshots/ (index only)".to_string()
        } else if top == "snapshots" && name.ends_with(".tar.zst") {
            "snapshots/ (full)".to_string()
        } else if rel.components().count() > 1 {
            format!("{top}/")
        } else if name.starts_with("crawl-state.json") && !name.ends_with(".minisig") {
            name.into_owned()
        } else {
            "other files".to_string()
        };
        *sizes.entry(key).or_insert(0) += std::fs::metadata(&entry)?.len();
    }
    Ok(sizes)
}

fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    Ok(out)
}

/// Queries a reader might type: a whole name, a name's first word, a
/// typo, an author filter.
fn queries(synth: &Synth, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let m = &synth.modules[(i * 104_729 + 7) % synth.modules.len()];
            let first = m.name.split('-').next().unwrap_or(&m.name).to_string();
            match i % 4 {
                0 => m.name.clone(),
                1 => first,
                2 if first.len() >= 4 => {
                    let mut c: Vec<char> = first.chars().collect();
                    c.swap(1, 2);
                    c.into_iter().collect()
                }
                _ => format!("author:{}", m.user.to_lowercase()),
            }
        })
        .collect()
}

fn blank(browser: &Browser) -> Result<()> {
    browser.goto("about:blank")
}

fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn kb(bytes: u64) -> f64 {
    bytes as f64 / 1000.0
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}
