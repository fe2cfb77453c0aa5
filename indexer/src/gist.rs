//! Gists as GitHub's REST API returns them, and where the indexer gets them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// GitHub serves file content up to 1 MB inline; files over 10 MB cannot be
/// had through the API at all, and no mlld module is that large. The cap
/// holds for every file the indexer fetches: gist files and raw files alike.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// `GET /gists/{id}`, the fields the indexer uses.
#[derive(Clone, Debug, Deserialize)]
pub struct Gist {
    pub id: String,
    #[serde(default)]
    pub owner: Option<Owner>,
    #[serde(default)]
    pub files: BTreeMap<String, GistFileData>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    #[serde(default)]
    pub updated_at: Option<String>,
    /// True when the gist has more files than the API lists.
    #[serde(default)]
    pub truncated: bool,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Owner {
    pub login: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct GistFileData {
    pub filename: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub raw_url: Option<String>,
    #[serde(default)]
    pub truncated: bool,
    #[serde(default)]
    pub content: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct HistoryEntry {
    pub version: String,
    #[serde(default)]
    pub committed_at: Option<String>,
}

/// What a fetch yielded.
#[derive(Debug)]
pub enum Fetched {
    /// The gist, with the validator to send next time.
    Fresh {
        gist: Box<Gist>,
        etag: Option<String>,
    },
    /// The gist is unchanged since the `etag` we sent.
    NotModified,
}

/// Why a gist could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("gist not found (deleted, or made private)")]
    NotFound,
    /// The rate limit or the time budget ran out before this gist's turn.
    #[error("{0}")]
    Deferred(String),
    #[error("{0}")]
    Failed(String),
}

/// Request counts for the build report.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestStats {
    pub requests: u64,
    /// Requests that count against the primary rate limit (API answers other than 304).
    pub primary: u64,
    pub not_modified: u64,
    pub retries: u64,
    pub raw_requests: u64,
    pub bytes_downloaded: u64,
    /// Seconds spent waiting for rate limits.
    pub rate_limit_wait_secs: u64,
}

/// The file content a fetch holds in memory.
pub fn content_bytes(fetched: &Result<Fetched, FetchError>) -> u64 {
    match fetched {
        Ok(Fetched::Fresh { gist, .. }) => (gist.files.values())
            .map(|f| f.content.as_ref().map_or(0, |c| c.len() as u64))
            .sum(),
        _ => 0,
    }
}

/// Whether [`GistSource::fetch_many`] may start another request, with
/// `held` bytes of content received and `started` requests begun: the
/// budget stops new requests, never the first.
pub fn may_start(held: u64, max_bytes: u64, started: usize) -> bool {
    held < max_bytes || started == 0
}

/// Where gists come from: recorded responses, or the GitHub API.
pub trait GistSource: Sync {
    /// `GET /gists/{id}`, conditional on `etag` when one is given.
    fn fetch(&self, gist_id: &str, etag: Option<&str>) -> Result<Fetched, FetchError>;

    /// [`fetch`](Self::fetch) for the first requests of `requests` (gist
    /// id, ETag), up to `in_flight` at a time: the results of the first
    /// `n >= 1` of them, in order. No request starts once the gists
    /// received hold `max_bytes` of content, so that a batch of large gists
    /// is handed on before the next is fetched; the caller asks again for
    /// the rest. Sources that make no requests fetch one after another.
    fn fetch_many(
        &self,
        requests: &[(&str, Option<&str>)],
        in_flight: usize,
        max_bytes: u64,
    ) -> Vec<Result<Fetched, FetchError>> {
        let _ = in_flight;
        let mut held = 0;
        let mut out = Vec::new();
        for &(gist, etag) in requests {
            if !may_start(held, max_bytes, out.len()) {
                break;
            }
            let fetched = self.fetch(gist, etag);
            held += content_bytes(&fetched);
            out.push(fetched);
        }
        out
    }

    /// The full content of a file whose `content` the API cut short.
    fn fetch_raw(&self, file: &GistFileData) -> Result<Vec<u8>, FetchError> {
        Err(FetchError::Failed(format!(
            "`{}` is truncated and this gist source cannot fetch raw_url",
            file.filename
        )))
    }

    /// HTTP request counts, for sources that make requests.
    fn request_stats(&self) -> Option<RequestStats> {
        None
    }
}

/// A directory of recorded `GET /gists/{id}` responses named `{id}.json`.
/// Its ETag is the SHA-256 of the recorded bytes, so unchanged recordings
/// revalidate like GitHub's conditional requests.
pub struct RecordedGists {
    pub dir: PathBuf,
}

impl GistSource for RecordedGists {
    fn fetch(&self, gist_id: &str, etag: Option<&str>) -> Result<Fetched, FetchError> {
        // Gist ids were validated (hex or digits), so this join cannot escape `dir`.
        let path = self.dir.join(format!("{gist_id}.json"));
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(FetchError::NotFound),
            Err(e) => return Err(FetchError::Failed(format!("{}: {e}", path.display()))),
        };
        let current = format!("\"{}\"", mlld_schemas::sha256_hex(&bytes));
        if etag == Some(current.as_str()) {
            return Ok(Fetched::NotModified);
        }
        let gist = serde_json::from_slice(&bytes).map_err(|e| {
            FetchError::Failed(format!("{}: not a gist response: {e}", path.display()))
        })?;
        Ok(Fetched::Fresh {
            gist: Box::new(gist),
            etag: Some(current),
        })
    }
}
