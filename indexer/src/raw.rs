//! Files of versioned modules, at commits pinned on a raw host
//! (`https://raw.githubusercontent.com`, or a mirror given by `--raw-base`),
//! or recorded on disk under `{owner}/{repo}/{commit}/{path}`.
//!
//! A raw host needs no token; the indexer sends none. Every file is capped
//! at [`MAX_FILE_BYTES`]; concurrency is bounded by the crawl's worker
//! pool, which calls these sources from its own threads.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mlld_schemas::versioned::RawLocation;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Serialize;

use crate::gist::MAX_FILE_BYTES;

/// Why a file could not be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RawError {
    #[error("{url} was not found (404): the file is not at that commit")]
    NotFound { url: String },
    #[error("{url} is over the {MAX_FILE_BYTES}-byte limit")]
    TooLarge { url: String },
    #[error("{url} could not be fetched: {why}")]
    Failed { url: String, why: String },
}

/// Requests made for raw files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RawStats {
    pub requests: u64,
    pub retries: u64,
    pub bytes_downloaded: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    bytes: AtomicU64,
}

impl Counters {
    fn stats(&self) -> RawStats {
        RawStats {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            bytes_downloaded: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// Where the files of versioned modules come from.
pub trait RawSource: Sync {
    /// The bytes of `relative` under `location` (empty: the location itself).
    fn fetch(&self, location: &RawLocation, relative: &str) -> Result<Vec<u8>, RawError>;

    fn stats(&self) -> RawStats;
}

/// Recorded raw files: `{dir}/{owner}/{repo}/{commit}/{path}`.
pub struct RecordedRaw {
    pub dir: PathBuf,
    counters: Counters,
}

impl RecordedRaw {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            counters: Counters::default(),
        }
    }
}

impl RawSource for RecordedRaw {
    fn fetch(&self, location: &RawLocation, relative: &str) -> Result<Vec<u8>, RawError> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        // Owner, repository, commit and paths were checked when the record was
        // read (no `..`, no absolute parts), so this stays under `dir`.
        let path = PathBuf::from(location.url(&self.dir.to_string_lossy(), relative));
        let url = format!(
            "{} (recorded under {})",
            location.url(mlld_schemas::versioned::RAW_HOST, relative),
            self.dir.display()
        );
        let meta = std::fs::symlink_metadata(&path);
        match meta {
            Ok(m) if m.is_file() && m.len() > MAX_FILE_BYTES => Err(RawError::TooLarge { url }),
            Ok(m) if m.is_file() => {
                let bytes = std::fs::read(&path).map_err(|e| RawError::Failed {
                    url: url.clone(),
                    why: e.to_string(),
                })?;
                self.counters
                    .bytes
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                Ok(bytes)
            }
            _ => Err(RawError::NotFound { url }),
        }
    }

    fn stats(&self) -> RawStats {
        self.counters.stats()
    }
}

/// Settings of the raw host.
#[derive(Clone, Debug)]
pub struct HttpRawConfig {
    /// Replaces `https://raw.githubusercontent.com` (tests and mirrors).
    pub base: String,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Longest silence while reading a file.
    pub idle_timeout: Duration,
    /// Tries per file for 5xx, 429 and network errors.
    pub max_attempts: u32,
    /// The first retry's backoff; each retry doubles it, with full jitter.
    pub retry_base: Duration,
}

impl Default for HttpRawConfig {
    fn default() -> Self {
        Self {
            base: mlld_schemas::versioned::RAW_HOST.to_string(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(15),
            max_attempts: 4,
            retry_base: Duration::from_millis(500),
        }
    }
}

/// A raw host over HTTP(S), with reqwest (rustls).
pub struct HttpRaw {
    config: HttpRawConfig,
    client: crate::http::Client,
    counters: Counters,
}

impl HttpRaw {
    pub fn new(config: HttpRawConfig) -> Self {
        let client = crate::http::Client::new(config.request_timeout, config.connect_timeout)
            .with_read_timeout(config.idle_timeout);
        Self {
            config,
            client,
            counters: Counters::default(),
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .config
            .retry_base
            .saturating_mul(1 << attempt.min(16))
            .min(Duration::from_secs(30));
        exp.mul_f64(fastrand::f64()).max(Duration::from_millis(1))
    }
}

impl RawSource for HttpRaw {
    fn fetch(&self, location: &RawLocation, relative: &str) -> Result<Vec<u8>, RawError> {
        let url = location.url(&self.config.base, relative);
        let failed = |why: String| RawError::Failed {
            url: url.clone(),
            why,
        };
        let mut last = String::new();
        for attempt in 0..self.config.max_attempts.max(1) {
            if attempt > 0 {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(self.backoff(attempt - 1));
            }
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let resp = match self.client.get(&url, HeaderMap::new(), MAX_FILE_BYTES) {
                Ok(resp) => resp,
                Err(e) => {
                    last = if e.is_timeout() {
                        "timed out".to_string()
                    } else {
                        format!("network error ({e})")
                    };
                    continue;
                }
            };
            match resp.status {
                StatusCode::OK => match resp.body {
                    Ok(bytes) => {
                        self.counters
                            .bytes
                            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                        return Ok(bytes);
                    }
                    Err(why) if why.starts_with("the response is over") => {
                        return Err(RawError::TooLarge { url: url.clone() });
                    }
                    Err(why) => last = why,
                },
                StatusCode::NOT_FOUND => return Err(RawError::NotFound { url: url.clone() }),
                s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                    last = format!("HTTP {}", s.as_u16());
                }
                s => return Err(failed(format!("HTTP {}", s.as_u16()))),
            }
        }
        Err(failed(format!(
            "{last} (after {} attempts)",
            self.config.max_attempts.max(1)
        )))
    }

    fn stats(&self) -> RawStats {
        self.counters.stats()
    }
}

/// Where the files of versioned modules (`modules/…`) come from.
#[derive(Clone, Debug)]
pub enum RawConfig {
    /// A raw host over HTTP(S): `https://raw.githubusercontent.com` or a mirror.
    Http(HttpRawConfig),
    /// Recorded files under `{dir}/{owner}/{repo}/{commit}/{path}`.
    Recorded(PathBuf),
}

impl RawConfig {
    pub fn source(&self) -> Box<dyn RawSource> {
        match self {
            RawConfig::Http(config) => Box::new(HttpRaw::new(config.clone())),
            RawConfig::Recorded(dir) => Box::new(RecordedRaw::new(dir.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_files_are_found_by_location_and_missing_ones_are_404s() {
        let dir = tempfile::tempdir().unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let file = dir.path().join(format!("ann/mods/{commit}/x/a.mld"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "hello").unwrap();
        let raw = RecordedRaw::new(dir.path().to_path_buf());
        let loc = RawLocation::parse(&format!(
            "https://raw.githubusercontent.com/ann/mods/{commit}/x"
        ))
        .unwrap();
        assert_eq!(raw.fetch(&loc, "a.mld").unwrap(), b"hello");
        assert!(matches!(
            raw.fetch(&loc, "b.mld"),
            Err(RawError::NotFound { .. })
        ));
        assert_eq!(raw.stats().requests, 2);
    }
}
