//! `cargo xtask index`: one build of the registry site.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mlld_indexer::{
    BuildConfig, GistSource, GithubConfig, GithubGists, HttpRawConfig, PreviousSite, RawConfig,
    RecordedGists,
};
use mlld_schemas::versioned::RAW_HOST;

#[derive(clap::Args)]
pub struct IndexArgs {
    /// The registry checkout: one folder per user. Default: examples/registry.
    #[arg(long)]
    registry: Option<PathBuf>,
    /// Read gists from recorded `GET /gists/{id}` responses in DIR instead of
    /// the GitHub API. Default with the embedded examples: examples/gists.
    #[arg(long, value_name = "DIR")]
    gists: Option<PathBuf>,
    /// The GitHub REST API to crawl (token from GITHUB_TOKEN).
    #[arg(long, value_name = "URL", default_value = "https://api.github.com")]
    github_api: String,
    /// The raw host versioned modules (`modules/…`) are fetched from, in
    /// place of https://raw.githubusercontent.com (a mirror, or a test server).
    #[arg(long, value_name = "URL", default_value = mlld_schemas::versioned::RAW_HOST)]
    raw_base: String,
    /// Read versioned modules' files from DIR/{owner}/{repo}/{commit}/{path}
    /// instead of a raw host. Default with the embedded examples: examples/raw.
    #[arg(long, value_name = "DIR", conflicts_with = "raw_base")]
    raw: Option<PathBuf>,
    /// The site directory, or s3://BUCKET/PREFIX: the site is built in a
    /// staging directory, then uploaded in the safe order (content first,
    /// latest.json last, garbage after). Default: target/site under the
    /// current directory.
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    out: Option<PathBuf>,
    /// With --out s3://…: the directory the site is built in (kept
    /// afterwards): new, empty, or the last build's (a copy of --previous,
    /// built on in place). Default: a temporary directory under target/.
    #[arg(long, value_name = "DIR")]
    staging: Option<PathBuf>,
    #[command(flatten)]
    s3: crate::publish::S3Args,
    /// The last published site (a directory or URL) for an incremental build;
    /// `none` for a full crawl. Default: the output directory. An --out that
    /// already holds a site must be a copy of it (the last build, kept),
    /// which is read in place. With --out s3://… it must be given: the
    /// bucket's public URL, or none.
    #[arg(long, value_name = "DIR|URL|none")]
    previous: Option<String>,
    /// Minisign secret key (password from MLLD_SIGNING_KEY_PASSWORD). Default: the demo key.
    #[arg(long, env = "MLLD_SIGNING_KEY_FILE")]
    signing_key: Option<PathBuf>,
    /// Snapshot serial. Default: the previous serial plus one.
    #[arg(long)]
    serial: Option<u64>,
    /// Days until clients refuse the snapshot as expired.
    #[arg(long, default_value_t = 14)]
    expires_in_days: i64,
    /// Gists fetched at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds one request may take.
    #[arg(long, default_value_t = 30)]
    request_timeout: u64,
    /// Reading the previous site over HTTP: seconds without a byte before the build fails.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,
    /// Reading the previous site over HTTP: the slowest average speed in
    /// bytes a second (with the size, the download's deadline).
    #[arg(long, default_value_t = 65536, value_parser = clap::value_parser!(u64).range(1..))]
    min_rate: u64,
    /// Seconds the whole crawl may take; gists not refreshed by then keep their last good record.
    #[arg(long, default_value_t = 3000)]
    time_budget: u64,
    /// Tries per request for 5xx, timeouts, broken bodies and secondary limits.
    #[arg(long, default_value_t = 5)]
    max_attempts: u32,
    /// The first retry's backoff in milliseconds (doubles each retry, with jitter).
    #[arg(long, default_value_t = 500)]
    retry_base_ms: u64,
    /// Snapshots kept on the site, newest first; older ones (and blobs only they used) are deleted.
    #[arg(long, default_value_t = 3)]
    keep_snapshots: usize,
    /// Also write the build report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    report_json: Option<PathBuf>,
}

pub fn run(root: &Path, args: IndexArgs) -> Result<ExitCode> {
    let examples = args.registry.is_none();
    let registry = args
        .registry
        .unwrap_or_else(|| root.join("examples/registry"));
    let bucket = match args.out.as_deref().and_then(Path::to_str) {
        Some(url) if url.starts_with("s3://") => Some(crate::publish::parse_target(url)?),
        _ => None,
    };
    let staging = match &bucket {
        Some(target) => Some(Staging::open(
            target,
            args.staging,
            args.previous.as_deref(),
        )?),
        None => None,
    };
    // Output follows where the user is, never the xtask's own source tree.
    let out = match (&staging, args.out) {
        (Some(staging), _) => staging.path().to_path_buf(),
        (None, Some(out)) => out,
        (None, None) => crate::current_dir()?.join("target/site"),
    };
    let key_path = args
        .signing_key
        .unwrap_or_else(|| root.join("examples/keys/demo.key"));
    let password = std::env::var("MLLD_SIGNING_KEY_PASSWORD").ok();
    let key = mlld_indexer::SigningKey::from_file(&key_path, password)?;
    anyhow::ensure!(
        args.expires_in_days > 0,
        "--expires-in-days must be at least 1"
    );
    let mut config = BuildConfig::new(
        registry,
        out.clone(),
        key,
        BuildConfig::now_or_source_date_epoch()?,
    );
    config.serial = args.serial;
    config.expires_in = mlld_indexer::build::Duration::days(args.expires_in_days);
    config.concurrency = args.concurrency;
    config.keep_snapshots = args.keep_snapshots;
    let recorded_raw = args
        .raw
        .or_else(|| (examples && args.raw_base == RAW_HOST).then(|| root.join("examples/raw")));
    config.raw = match recorded_raw {
        Some(dir) => RawConfig::Recorded(dir),
        None => RawConfig::Http(HttpRawConfig {
            base: args.raw_base,
            request_timeout: Duration::from_secs(args.request_timeout),
            max_attempts: args.max_attempts.max(1),
            retry_base: Duration::from_millis(args.retry_base_ms),
            ..HttpRawConfig::default()
        }),
    };
    config.previous_idle_timeout = Duration::from_secs(args.idle_timeout);
    config.previous_min_rate = args.min_rate;
    config.previous = match args.previous.as_deref() {
        None => PreviousSite::Output,
        Some("none") => PreviousSite::None,
        Some(p) => PreviousSite::At(p.to_string()),
    };
    // A real registry crawls GitHub unless recorded responses are named.
    let recorded = args
        .gists
        .or_else(|| examples.then(|| root.join("examples/gists")));
    let source: Box<dyn GistSource> = match recorded {
        Some(dir) => Box::new(RecordedGists { dir }),
        None => Box::new(GithubGists::new(GithubConfig {
            api: args.github_api,
            token: std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty()),
            request_timeout: Duration::from_secs(args.request_timeout),
            deadline: Instant::now() + Duration::from_secs(args.time_budget),
            max_attempts: args.max_attempts.max(1),
            retry_base: Duration::from_millis(args.retry_base_ms),
        })?),
    };
    let mut report = mlld_indexer::build(&config, source.as_ref())
        .context("index build failed; the published site is unchanged")?;
    // The build resets the kernel's peak at each stage and keeps the highest.
    report.peak_memory_bytes = report
        .peak_memory_bytes
        .max(mlld_indexer::memory::peak_bytes());
    print!("{report}");
    println!("site        {}", out.display());
    if let Some(path) = args.report_json {
        let mut json = serde_json::to_vec_pretty(&report)?;
        json.push(b'\n');
        mlld_fsutil::write_atomic(&path, &json)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(target) = &bucket {
        crate::publish::upload(&out, target, &args.s3)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Where a site bound for object storage is built: a directory the user
/// named (new, empty or a copy of the published site; kept), or a
/// temporary one under `target/`.
enum Staging {
    Kept(PathBuf),
    Temporary(tempfile::TempDir),
}

impl Staging {
    fn open(
        target: &mlld_indexer::ObjectTarget,
        dir: Option<PathBuf>,
        previous: Option<&str>,
    ) -> Result<Self> {
        // Building on the empty staging directory would restart at serial 1,
        // which every client refuses as a rollback.
        anyhow::ensure!(
            previous.is_some(),
            "--out {target} needs --previous: the bucket's public URL (e.g. https://BUCKET.s3.amazonaws.com/PREFIX) for an incremental build, or none for a full one"
        );
        match dir {
            Some(dir) => {
                let empty = std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_none());
                // Anything in it is uploaded: it may hold only the last
                // build, which the indexer checks is the published site.
                if !empty {
                    anyhow::ensure!(
                        previous != Some("none"),
                        "--staging {} is not empty, and --previous none builds afresh: name a new or empty directory",
                        dir.display()
                    );
                    anyhow::ensure!(
                        dir.join("latest.json").is_file(),
                        "--staging {} is not empty and holds no site to build on; name a new or empty directory",
                        dir.display()
                    );
                }
                Ok(Self::Kept(dir))
            }
            None => {
                let parent = crate::current_dir()?.join("target");
                std::fs::create_dir_all(&parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
                let dir = tempfile::Builder::new()
                    .prefix("s3-staging-")
                    .tempdir_in(&parent)
                    .with_context(|| {
                        format!("creating a staging directory in {}", parent.display())
                    })?;
                Ok(Self::Temporary(dir))
            }
        }
    }

    fn path(&self) -> &Path {
        match self {
            Self::Kept(dir) => dir,
            Self::Temporary(dir) => dir.path(),
        }
    }
}
