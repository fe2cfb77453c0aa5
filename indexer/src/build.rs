//! One index build: registry → gists → blobs → signed snapshot → site.
//!
//! [`build`] is the sequence of the build's stages; each stage is a
//! function in `build/` that takes what earlier stages produced and returns
//! what later ones need, and is timed in the report under its name.

mod crawl;
mod inputs;
mod manifest;
mod outputs;
mod pack;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
pub use time::{Duration, OffsetDateTime};

use crate::gist::GistSource;
use crate::progress::Progress;
use crate::publish;
use crate::raw::HttpRawConfig;
pub use crate::raw::RawConfig;
use crate::report::BuildReport;
use crate::signing::SigningKey;

/// Where the previous build comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PreviousSite {
    /// The output directory's current site.
    Output,
    /// Another site: a directory or an http(s) URL.
    At(String),
    /// Start afresh: a full crawl, serial 1 unless given.
    None,
}

pub struct BuildConfig {
    pub registry: PathBuf,
    /// The site directory; built in place, `latest.json` replaced last.
    pub out: PathBuf,
    pub key: SigningKey,
    /// Defaults to the previous serial plus one.
    pub serial: Option<u64>,
    /// The build time (from `SOURCE_DATE_EPOCH` for reproducible builds).
    pub created: OffsetDateTime,
    pub expires_in: Duration,
    pub previous: PreviousSite,
    /// Gists fetched at once.
    pub concurrency: usize,
    /// Snapshots kept on the site (the newest first); older ones are deleted.
    pub keep_snapshots: usize,
    /// Where versioned modules' files are fetched (default: raw.githubusercontent.com).
    pub raw: RawConfig,
    /// Reading a previous site over HTTP: no byte for this long ends the
    /// build with an error (a stalled site), and so does a download slower
    /// on average than `previous_min_rate` bytes a second.
    pub previous_idle_timeout: std::time::Duration,
    pub previous_min_rate: u64,
}

impl BuildConfig {
    /// A configuration with the defaults for everything but the paths and key.
    pub fn new(registry: PathBuf, out: PathBuf, key: SigningKey, created: OffsetDateTime) -> Self {
        Self {
            registry,
            out,
            key,
            serial: None,
            created,
            expires_in: Duration::days(14),
            previous: PreviousSite::Output,
            concurrency: 8,
            keep_snapshots: 3,
            raw: RawConfig::Http(HttpRawConfig::default()),
            previous_idle_timeout: std::time::Duration::from_secs(20),
            previous_min_rate: 64 << 10,
        }
    }

    /// How a previous site is read over HTTP.
    pub(crate) fn timeouts(&self) -> crate::previous::Timeouts {
        crate::previous::Timeouts {
            idle: self.previous_idle_timeout,
            min_rate: self.previous_min_rate,
        }
    }

    /// The build time: `SOURCE_DATE_EPOCH` when set, else now.
    pub fn now_or_source_date_epoch() -> Result<OffsetDateTime> {
        match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) => {
                let secs: i64 = v.trim().parse().with_context(|| {
                    format!("SOURCE_DATE_EPOCH=`{v}` is not a number of seconds")
                })?;
                Ok(OffsetDateTime::from_unix_timestamp(secs)?)
            }
            Err(_) => Ok(OffsetDateTime::now_utc()),
        }
    }
}

/// Builds the site at `config.out` from the registry at `config.registry`,
/// fetching gists from `source`: a new signed snapshot, its delta from the
/// previous one, the web page, and `latest.json` replaced last. The stages
/// run in this order; each is timed in the report under its name.
pub fn build(config: &BuildConfig, source: &dyn GistSource) -> Result<BuildReport> {
    let started = Instant::now();
    let mut report = BuildReport::default();
    let progress = &Progress::new();

    let mut registry = timed(progress, &mut report, "load registry", |r| {
        inputs::load_registry(&config.registry, r)
    })?;
    let staging = inputs::open_staging(&config.out)?;
    let staging_dir = staging.path();
    // Not beside the registry's load: both spread their work over rayon's
    // threads, and side by side at 1,000,000 modules they took longer
    // than one after the other (28.7 s against about 24).
    let inputs::Start {
        mut previous,
        blobs,
        serial,
    } = timed(progress, &mut report, "read previous site", |r| {
        inputs::read_previous(config, staging_dir, r)
    })?;

    let crawl::Crawled {
        modules,
        names,
        etags,
        imports,
        blobs: blob_members,
    } = timed(progress, &mut report, "crawl gists", |r| {
        let concurrency = config.concurrency;
        crawl::crawl_gists(
            &registry,
            source,
            &blobs,
            previous.as_ref(),
            concurrency,
            staging_dir,
            progress,
            r,
        )
    })?;
    let versions = timed(progress, &mut report, "fetch versions", |r| {
        let phase1 = crate::versioned_build::Phase1 {
            records: &modules,
            names: &names,
        };
        let previous = previous.as_ref();
        crawl::fetch_versions(config, &registry, phase1, source, &blobs, previous, r)
    })?;
    drop(names);
    report.previous_records_unreadable = previous.as_ref().map_or(0, |p| p.unreadable_records());
    registry.release_modules();
    let mut diagnostics = registry.take_diagnostics();
    diagnostics.extend(versions.diagnostics);
    if let Some(p) = previous.as_mut() {
        p.release_records();
        p.release_versioned();
    }

    let delta_base = outputs::DeltaBase::start(previous.as_ref())?;
    let manifest::Signed {
        signed,
        manifest_file,
        search,
    } = timed(progress, &mut report, "search index and manifest", |r| {
        let records = manifest::Records {
            modules,
            blob_members,
            versioned: versions.modules,
            advisories: manifest::advisories(&registry),
        };
        let previous = previous.as_mut();
        manifest::sign_manifest(config, serial, records, &blobs, previous, staging_dir, r)
    })?;
    let (packed, site) = timed(progress, &mut report, "pack, delta and site data", |r| {
        let pack = || {
            let (file, created) = (manifest_file.as_path(), config.created);
            let previous = previous.as_ref();
            pack::pack_snapshots(file, &signed, created, &blobs, previous, staging_dir)
        };
        let (manifest, previous) = (&signed.manifest, previous.as_ref());
        let dirs = (staging_dir, config.out.as_path());
        let pack = (pack, delta_base);
        outputs::pack_delta_and_site_data(pack, manifest, &blobs, previous, dirs, r)
    })?;

    let latest = outputs::latest(&packed, &signed.manifest, &site);
    let staged = outputs::Staged {
        packed,
        site,
        etags,
        imports,
        search,
        versions_rejected: versions.rejections,
    };
    let published = timed(progress, &mut report, "publish", |r| {
        outputs::publish_site(
            config,
            staged,
            &latest,
            &signed,
            &blobs,
            previous.as_ref(),
            r,
        )
    })?;
    crate::memory::reset_peak();
    report.begin_stage();
    let t = Instant::now();
    // After the flip nothing refers to these any more.
    let members = &signed.manifest.members;
    publish::clean_up(
        &config.out,
        &published.retired,
        &published.removed_pages,
        members,
    )?;
    let (root_path, root) = &published.sparse;
    let previous_root = previous.as_ref().and_then(|p| p.latest.sparse.as_ref());
    crate::sparse_writer::clean_up(
        &config.out,
        (root_path, root),
        previous_root.map(|f| f.path.as_str()),
    )?;
    if let Some(previous) = &previous {
        crate::site_data::remove_legacy_pages(
            &config.out,
            &previous.pages,
            &published.state.pages,
        )?;
    }
    report.stage("clean up", t);

    outputs::count_into(&mut report, &registry, &signed, latest, diagnostics);
    report.signed_with_demo_key = config.key.is_demo;
    report.requests = source.request_stats();
    report.elapsed = started.elapsed();
    // Freeing a registry's worth of records takes half a second at 100,000
    // modules; nothing waits for it (a process that exits first skips it).
    let state = published.state;
    std::thread::spawn(move || drop((registry, previous, signed, state)));
    Ok(report)
}

/// Runs one stage: announces it, and records its time in the report when
/// it succeeds.
fn timed<T>(
    progress: &Progress,
    report: &mut BuildReport,
    name: &'static str,
    run: impl FnOnce(&mut BuildReport) -> Result<T>,
) -> Result<T> {
    progress.stage(name);
    crate::memory::reset_peak();
    report.begin_stage();
    let started = Instant::now();
    let out = run(report)?;
    report.stage(name, started);
    Ok(out)
}
