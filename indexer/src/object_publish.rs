//! Publishing a built site to S3-compatible object storage, in the order
//! that keeps the published site valid at every moment:
//!
//! 1. content-addressed files (snapshots, deltas, blobs, listing shards),
//!    `Cache-Control: public, max-age=31536000, immutable`: new names, so
//!    readers of the old site see nothing change;
//! 2. the other files (pages, dependents' buckets, schemas, the public
//!    key), `Cache-Control: no-cache`, then the page's entry points
//!    (`data/site.js`, `index.html`), which name data files;
//! 3. the flip, one file after the other (`no-cache`): the signed crawl
//!    state (it names the snapshot it belongs to), `latest.json.minisig`,
//!    then `latest.json`;
//! 4. only then, objects the new site neither holds nor keeps are deleted.
//!
//! A failure before step 3 leaves the old `latest.json`, and everything it
//! names, in place; a failure within it puts the files it replaced back
//! (from server-side copies made just before). Objects already holding a file's bytes (same size, and
//! an MD5 ETag or stored `sha256` metadata that matches) are not uploaded
//! again, so a nightly publish sends only what changed. The bucket is
//! listed once; the prefix belongs to the site (anything else under it is
//! garbage).

mod flip;
mod local;
mod plan;
mod remote;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use mlld_schemas::Latest;
use mlld_schemas::snapshot::LATEST_NAME;

use local::LocalSite;
pub use plan::{CACHE_IMMUTABLE, CACHE_REVALIDATE, PathClass};
use plan::{Decision, LocalFile, Phases};
use remote::Bucket;

/// Where a site is published: `s3://bucket/prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectTarget {
    pub bucket: String,
    /// Without leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
}

impl ObjectTarget {
    /// Parses `s3://bucket[/prefix]`; `None` when `url` is not an `s3://` URL.
    pub fn parse(url: &str) -> Option<Result<Self>> {
        let rest = url.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        Some(if bucket.is_empty() {
            Err(anyhow::anyhow!(
                "{url} names no bucket; write s3://BUCKET/PREFIX"
            ))
        } else if prefix.split('/').any(|p| p == "." || p == "..") || prefix.contains("//") {
            Err(anyhow::anyhow!(
                "{url}: the prefix must be plain path segments"
            ))
        } else {
            Ok(Self {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            })
        })
    }

    /// The `s3://` URL of the site file `rel`.
    pub fn url(&self, rel: &str) -> String {
        match self.prefix.as_str() {
            "" => format!("s3://{}/{rel}", self.bucket),
            p => format!("s3://{}/{p}/{rel}", self.bucket),
        }
    }
}

impl fmt::Display for ObjectTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix.as_str() {
            "" => write!(f, "s3://{}", self.bucket),
            p => write!(f, "s3://{}/{p}", self.bucket),
        }
    }
}

/// How to reach the bucket and how hard to push.
#[derive(Clone, Debug)]
pub struct ObjectPublishConfig {
    /// The S3 endpoint (a server other than AWS); default `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Retries per request (5xx, timeouts); client errors are not retried.
    pub max_retries: usize,
    pub request_timeout: Duration,
    /// Files this large or larger go up in parts of `part_size` bytes.
    pub multipart_threshold: u64,
    pub part_size: usize,
}

impl Default for ObjectPublishConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            concurrency: 16,
            max_retries: 5,
            request_timeout: Duration::from_secs(300),
            multipart_threshold: 64 << 20,
            part_size: 16 << 20,
        }
    }
}

/// What one publish did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishReport {
    pub serial: u64,
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    /// Files the bucket already held with the same bytes.
    pub unchanged: usize,
    pub deleted: usize,
    /// Whether `latest.json` was replaced (false: the bucket already held it).
    pub flipped: bool,
}

impl PublishReport {
    fn count_uploads(&mut self, files: &[&LocalFile]) {
        self.uploaded += files.len();
        self.uploaded_bytes += files.iter().map(|f| f.size).sum::<u64>();
    }
}

impl fmt::Display for PublishReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "published   serial {}{}",
            self.serial,
            if self.flipped {
                ""
            } else {
                " (latest.json was already in place)"
            }
        )?;
        writeln!(
            f,
            "uploaded    {} files, {} bytes; {} unchanged",
            self.uploaded, self.uploaded_bytes, self.unchanged
        )?;
        writeln!(
            f,
            "deleted     {} objects the new site no longer needs",
            self.deleted
        )
    }
}

/// Publishes the site built at `site` to `target` (see the module's doc
/// for the order). The bucket must exist.
pub fn publish(
    site: &Path,
    target: &ObjectTarget,
    config: &ObjectPublishConfig,
) -> Result<PublishReport> {
    let local = LocalSite::read(site)?;
    let bucket = Bucket::connect(target, config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the upload runtime")?;
    runtime.block_on(
        Publisher {
            site,
            local: &local,
            bucket: &bucket,
            target,
            concurrency: config.concurrency.max(1),
        }
        .run(),
    )
}

struct Publisher<'a> {
    site: &'a Path,
    local: &'a LocalSite,
    bucket: &'a Bucket,
    target: &'a ObjectTarget,
    concurrency: usize,
}

/// `latest.json` and its signature are small; a larger one is not ours.
const MAX_POINTER_BYTES: u64 = 1 << 20;

impl Publisher<'_> {
    async fn run(self) -> Result<PublishReport> {
        let remote = self.bucket.list().await?;
        let published = self.check_no_rollback().await?;
        self.check_pointer_complete(&remote)?;
        let mut report = PublishReport {
            serial: self.local.latest.serial,
            ..PublishReport::default()
        };
        let changed = self.changed_files(&remote, &mut report).await?;

        let phases = Phases::of(changed);
        for phase in [&phases.immutable, &phases.mutable, &phases.entry] {
            self.upload_all(phase).await?;
            report.count_uploads(phase);
        }
        self.flip(&phases.flip, &remote).await?;
        report.flipped = phases.flip.iter().any(|f| f.path == LATEST_NAME);
        report.count_uploads(&phases.flip);

        let have: BTreeSet<&str> = self.local.files.iter().map(|f| f.path.as_str()).collect();
        // What the replaced pointer named stays for this round whatever the
        // crawl state says: a client that read it just before the flip may
        // still be downloading it.
        let mut kept = self.local.kept.clone();
        kept.extend(published.iter().flat_map(local::named_by));
        let garbage = plan::garbage(&remote, &have, &kept);
        self.bucket.delete_all(&garbage).await.with_context(|| {
            format!(
                "serial {} is published and live, but removing old objects failed; the next publish removes them",
                report.serial
            )
        })?;
        report.deleted = garbage.len();
        Ok(report)
    }

    /// Refuses a site whose `latest.json` names a file that neither the
    /// site nor the bucket holds.
    fn check_pointer_complete(&self, remote: &BTreeMap<String, plan::RemoteObject>) -> Result<()> {
        for named in local::named_by(&self.local.latest) {
            let here = self.local.files.iter().any(|f| f.path == named);
            if !here && !remote.contains_key(&named) {
                bail!(
                    "{LATEST_NAME} names {named}, which neither the site at {} nor {} holds; nothing was uploaded. Build the site from the published one (--previous URL) or with --previous none",
                    self.site.display(),
                    self.target
                );
            }
        }
        Ok(())
    }

    /// The site files the bucket does not already hold with the same
    /// bytes; the others are counted as unchanged.
    async fn changed_files(
        &self,
        remote: &BTreeMap<String, plan::RemoteObject>,
        report: &mut PublishReport,
    ) -> Result<Vec<&LocalFile>> {
        let mut changed = Vec::new();
        let mut to_check = Vec::new();
        for file in &self.local.files {
            match plan::decide(file, remote.get(&file.path)) {
                Decision::Upload => changed.push(file),
                Decision::Unchanged => report.unchanged += 1,
                Decision::CheckSha256 => to_check.push(file),
            }
        }
        for (file, same) in self.stored_digests_match(to_check).await? {
            if same {
                report.unchanged += 1;
            } else {
                changed.push(file);
            }
        }
        Ok(changed)
    }

    /// Refuses to replace the bucket's `latest.json` with an older or equal
    /// serial (clients would refuse it as a rollback, or see two contents
    /// under one serial). Returns the bucket's current pointer.
    async fn check_no_rollback(&self) -> Result<Option<Latest>> {
        let Some(bytes) = self
            .bucket
            .read_small(LATEST_NAME, MAX_POINTER_BYTES)
            .await?
        else {
            return Ok(None);
        };
        let published: Latest = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} holds a {LATEST_NAME} that is not a valid pointer; is the prefix right?",
                self.target
            )
        })?;
        if bytes != self.local.latest_bytes && published.serial >= self.local.latest.serial {
            bail!(
                "{} is at serial {}, and the site at {} is serial {}: clients would refuse it as a rollback. Build from the published site (--previous URL) so the serial grows; nothing was uploaded",
                self.target,
                published.serial,
                self.site.display(),
                self.local.latest.serial
            );
        }
        Ok(Some(published))
    }

    /// For files whose ETag says nothing about their bytes: whether the
    /// stored `sha256` metadata matches.
    async fn stored_digests_match<'f>(
        &self,
        files: Vec<&'f LocalFile>,
    ) -> Result<Vec<(&'f LocalFile, bool)>> {
        futures::stream::iter(files)
            .map(|file| async move {
                let stored = self.bucket.stored_sha256(&file.path).await?;
                Ok((file, stored.as_deref() == Some(file.sha256.as_str())))
            })
            .buffer_unordered(self.concurrency)
            .collect::<Vec<Result<_>>>()
            .await
            .into_iter()
            .collect()
    }

    /// Uploads `files` concurrently. After the first failure no new upload
    /// starts; those in flight finish (or abort their parts) before the
    /// error is returned.
    async fn upload_all(&self, files: &[&LocalFile]) -> Result<()> {
        let failed = AtomicBool::new(false);
        let results: Vec<Result<()>> = futures::stream::iter(files)
            .map(|file| {
                let failed = &failed;
                async move {
                    if failed.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    let result = self.bucket.upload(self.site, file).await;
                    if result.is_err() {
                        failed.store(true, Ordering::SeqCst);
                    }
                    result
                }
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        match results.into_iter().find_map(Result::err) {
            Some(e) => Err(e.context(format!(
                "publishing to {} stopped before {LATEST_NAME} was replaced; the published site is unchanged and valid",
                self.target
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_bucket_and_prefix() {
        let t = ObjectTarget::parse("s3://site/registry/v1/")
            .unwrap()
            .unwrap();
        assert_eq!(
            (t.bucket.as_str(), t.prefix.as_str()),
            ("site", "registry/v1")
        );
        assert_eq!(t.url("latest.json"), "s3://site/registry/v1/latest.json");
        let root = ObjectTarget::parse("s3://site").unwrap().unwrap();
        assert_eq!(root.prefix, "");
        assert_eq!(root.to_string(), "s3://site");
        assert!(ObjectTarget::parse("target/site").is_none());
        assert!(ObjectTarget::parse("s3:///x").unwrap().is_err());
        assert!(ObjectTarget::parse("s3://b/a/../c").unwrap().is_err());
    }
}
