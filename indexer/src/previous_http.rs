//! Reading the previous site over HTTP under an idle timeout and a deadline
//! scaled to the size, so a stalled site fails the build instead of holding
//! it for ever.

use std::path::Path;

use anyhow::{Context, Result, bail};
use reqwest::StatusCode;

use crate::http::DownloadError;

/// A previous snapshot larger than this is refused.
pub(crate) const MAX_PREVIOUS_BYTES: u64 = 8 << 30;

/// How long reading the previous site may take: no byte for `idle` ends it,
/// and so does taking longer than `idle` plus the size at `min_rate` bytes
/// a second. A stalled site fails the build (which publishes nothing).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub idle: std::time::Duration,
    pub min_rate: u64,
}

/// The previous site over HTTP, through the indexer's one HTTP client
/// configuration (`crate::http`).
pub(crate) struct Remote {
    client: crate::http::Client,
    timeouts: Timeouts,
}

impl Remote {
    pub(crate) fn new(timeouts: Timeouts) -> Result<Self> {
        // Waiting for the head, and each read of the body, is bounded by the
        // idle timeout; each request's deadline is set by its size.
        let client = crate::http::Client::new(timeouts.deadline(MAX_PREVIOUS_BYTES), timeouts.idle)
            .with_read_timeout(timeouts.idle);
        Ok(Self { client, timeouts })
    }

    /// Streams `url` into `sink` (at most `cap + 1` bytes); `false` when the
    /// site lacks it.
    fn fetch(&self, url: &str, cap: u64, sink: &mut dyn std::io::Write) -> Result<bool> {
        match self
            .client
            .download(url, self.timeouts.deadline(cap), cap, sink)
        {
            Ok(StatusCode::OK) => Ok(true),
            Ok(StatusCode::NOT_FOUND) => Ok(false),
            Ok(status) => bail!("fetching {url}: the previous site answered {status}"),
            Err(DownloadError::Send(e)) => Err(self.error(url, e)),
            Err(DownloadError::Body(e)) => Err(self.read_error(url, e)),
            Err(DownloadError::Write(e)) => Err(e).with_context(|| format!("saving {url}")),
        }
    }

    /// A file of at most `cap` bytes; `None` when the site lacks it.
    pub(crate) fn read(&self, url: &str, cap: u64) -> Result<Option<Vec<u8>>> {
        let mut bytes = Vec::new();
        if !self.fetch(url, cap, &mut bytes)? {
            return Ok(None);
        }
        if bytes.len() as u64 > cap {
            bail!("{url} is over {cap} bytes");
        }
        Ok(Some(bytes))
    }

    /// Downloads `url` (at most `size` bytes, and no more than the cap) to `dest`.
    pub(crate) fn download(&self, url: &str, dest: &Path, size: u64) -> Result<()> {
        let limit = size.min(MAX_PREVIOUS_BYTES);
        let mut file = std::fs::File::create(dest)?;
        if !self.fetch(url, limit, &mut file)? {
            bail!("fetching {url}: not found");
        }
        if file.metadata()?.len() > limit {
            bail!("the previous snapshot at {url} is over {limit} bytes");
        }
        Ok(())
    }

    fn error(&self, url: &str, e: reqwest::Error) -> anyhow::Error {
        if e.is_timeout() {
            anyhow::anyhow!(
                "fetching {url}: the previous site did not answer within {} s (--idle-timeout); it is stalled or unreachable. Nothing was published; try again, or pass --previous none for a full build",
                self.timeouts.idle.as_secs()
            )
        } else {
            anyhow::Error::new(e).context(format!("fetching {url}"))
        }
    }

    fn read_error(&self, url: &str, e: reqwest::Error) -> anyhow::Error {
        if e.is_timeout() {
            anyhow::anyhow!(
                "reading {url}: the previous site stalled (no byte for {} s, or slower than {} bytes/s on average; --idle-timeout, --min-rate). Nothing was published; try again, or pass --previous none for a full build",
                self.timeouts.idle.as_secs(),
                self.timeouts.min_rate
            )
        } else {
            anyhow::Error::new(e).context(format!("reading {url}"))
        }
    }
}

impl Timeouts {
    /// How long a download of `size` bytes may take: the idle timeout plus
    /// the size at the minimum rate.
    fn deadline(&self, size: u64) -> std::time::Duration {
        self.idle + std::time::Duration::from_secs(size / self.min_rate.max(1))
    }
}
