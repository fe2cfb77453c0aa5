//! Reading the previous site over HTTP under an idle timeout and a deadline
//! scaled to the size, so a stalled site fails the build instead of holding
//! it for ever.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};

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

/// The previous site over HTTP.
pub(crate) struct Remote {
    client: reqwest::blocking::Client,
    timeouts: Timeouts,
}

impl Remote {
    pub(crate) fn new(timeouts: Timeouts) -> Result<Self> {
        crate::http::install_crypto_provider();
        // The blocking client's timeout bounds the wait for the head and for
        // each read of the body: the idle timeout.
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(timeouts.idle)
            .timeout(timeouts.idle)
            .build()
            .context("setting up the HTTP client")?;
        Ok(Self { client, timeouts })
    }

    fn get(&self, url: &str) -> Result<Option<reqwest::blocking::Response>> {
        let resp = self
            .client
            .get(url)
            .send()
            .map_err(|e| self.error(url, e))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(
            resp.error_for_status()
                .with_context(|| format!("fetching {url}"))?,
        ))
    }

    /// A file of at most `cap` bytes; `None` when the site lacks it.
    pub(crate) fn read(&self, url: &str, cap: u64) -> Result<Option<Vec<u8>>> {
        let Some(resp) = self.get(url)? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        self.timed(resp, url, cap)
            .take(cap)
            .read_to_end(&mut bytes)
            .map_err(|e| self.read_error(url, e))?;
        Ok(Some(bytes))
    }

    /// Downloads `url` (at most `size` bytes, and no more than the cap) to `dest`.
    pub(crate) fn download(&self, url: &str, dest: &Path, size: u64) -> Result<()> {
        let resp = self
            .get(url)?
            .with_context(|| format!("fetching {url}: not found"))?;
        let mut file = std::fs::File::create(dest)?;
        let limit = size.min(MAX_PREVIOUS_BYTES);
        let copied = std::io::copy(&mut self.timed(resp, url, limit).take(limit + 1), &mut file)
            .map_err(|e| self.read_error(url, e))?;
        if copied > limit {
            bail!("the previous snapshot at {url} is over {limit} bytes");
        }
        Ok(())
    }

    fn timed<R: Read>(&self, inner: R, url: &str, size: u64) -> Deadline<R> {
        Deadline {
            inner,
            what: url.to_string(),
            until: std::time::Instant::now()
                + self.timeouts.idle
                + std::time::Duration::from_secs(size / self.timeouts.min_rate.max(1)),
        }
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

    fn read_error(&self, url: &str, e: std::io::Error) -> anyhow::Error {
        let timed_out = e.kind() == std::io::ErrorKind::TimedOut
            || e.get_ref()
                .and_then(|i| i.downcast_ref::<reqwest::Error>())
                .is_some_and(reqwest::Error::is_timeout);
        if timed_out {
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

/// A reader that fails once its deadline has passed.
struct Deadline<R> {
    inner: R,
    what: String,
    until: std::time::Instant,
}

impl<R: Read> Read for Deadline<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if std::time::Instant::now() > self.until {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{} passed its deadline", self.what),
            ));
        }
        self.inner.read(buf)
    }
}
