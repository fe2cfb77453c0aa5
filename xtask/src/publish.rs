//! `cargo xtask publish`: upload a built site to S3-compatible object
//! storage in the safe order (see `mlld_indexer::object_publish`). `cargo
//! xtask index --out s3://…` builds into a staging directory and ends here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use mlld_indexer::{ObjectPublishConfig, ObjectTarget};

/// How to reach the bucket (shared by `index --out s3://…` and `publish`).
#[derive(clap::Args, Clone)]
pub struct S3Args {
    /// The S3-compatible endpoint for s3:// targets (MinIO, R2, Ceph, …).
    /// Default: AWS_ENDPOINT_URL, else AWS. Credentials and region come
    /// from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION.
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// Uploads to an s3:// target in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    upload_concurrency: u64,
    /// Retries per S3 request on server errors and timeouts.
    #[arg(long, default_value_t = 5)]
    s3_retries: usize,
    /// Files at least this many bytes go up as multipart uploads.
    #[arg(long, default_value_t = 64 << 20, hide = true)]
    multipart_threshold: u64,
}

impl S3Args {
    pub fn config(&self) -> ObjectPublishConfig {
        ObjectPublishConfig {
            endpoint: self.s3_endpoint.clone(),
            concurrency: self.upload_concurrency as usize,
            max_retries: self.s3_retries,
            multipart_threshold: self.multipart_threshold,
            request_timeout: Duration::from_secs(300),
            ..ObjectPublishConfig::default()
        }
    }
}

#[derive(clap::Args)]
pub struct PublishArgs {
    /// The built site directory (from `cargo xtask index --out DIR`).
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// Where to publish: s3://BUCKET/PREFIX (the bucket must exist; the
    /// prefix belongs to the site: objects under it the site no longer
    /// needs are deleted after the flip).
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    to: String,
    #[command(flatten)]
    s3: S3Args,
}

pub fn run(args: PublishArgs) -> Result<ExitCode> {
    let target = parse_target(&args.to)?;
    upload(&args.from, &target, &args.s3)?;
    Ok(ExitCode::SUCCESS)
}

/// `s3://BUCKET/PREFIX`, or an error saying what was expected.
pub fn parse_target(url: &str) -> Result<ObjectTarget> {
    ObjectTarget::parse(url).with_context(|| format!("{url} is not an s3://BUCKET/PREFIX URL"))?
}

/// Publishes `site` to `target` and prints what it did.
pub fn upload(site: &std::path::Path, target: &ObjectTarget, s3: &S3Args) -> Result<()> {
    let report = mlld_indexer::object_publish::publish(site, target, &s3.config())
        .with_context(|| format!("publishing {} to {target}", site.display()))?;
    print!("{report}");
    println!("published   {target}");
    Ok(())
}
