//! Gists as GitHub's REST API returns them, and where the indexer gets them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

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

/// Why a gist could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("gist not found (deleted, or made private)")]
    NotFound,
    #[error("{0}")]
    Failed(String),
}

/// Where gists come from: recorded responses here, the GitHub API in the crawl.
pub trait GistSource: Sync {
    fn fetch(&self, gist_id: &str) -> Result<Gist, FetchError>;

    /// The full content of a file whose `content` the API cut short.
    fn fetch_raw(&self, file: &GistFileData) -> Result<Vec<u8>, FetchError> {
        Err(FetchError::Failed(format!(
            "`{}` is truncated and this gist source cannot fetch raw_url",
            file.filename
        )))
    }
}

/// A directory of recorded `GET /gists/{id}` responses named `{id}.json`.
pub struct RecordedGists {
    pub dir: PathBuf,
}

impl GistSource for RecordedGists {
    fn fetch(&self, gist_id: &str) -> Result<Gist, FetchError> {
        // Gist ids were validated (hex or digits), so this join cannot escape `dir`.
        let path = self.dir.join(format!("{gist_id}.json"));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(FetchError::NotFound),
            Err(e) => return Err(FetchError::Failed(format!("{}: {e}", path.display()))),
        };
        serde_json::from_str(&text).map_err(|e| {
            FetchError::Failed(format!("{}: not a gist response: {e}", path.display()))
        })
    }
}
