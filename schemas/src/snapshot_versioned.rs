//! The manifest's records of versioned modules (today's mlld registry):
//! `@author/name`, every accepted version with its content-addressed files.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::version_spec::{VersionSpec, parse_version};

/// One versioned module with every version the indexer accepted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionedModule {
    pub author: String,
    pub name: String,
    #[serde(default)]
    pub about: String,
    #[serde(default)]
    pub owners: Vec<String>,
    #[serde(default)]
    pub maintainers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Dist-tags (`latest`, `stable`, …) to versions, each among `versions`.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Accepted versions, highest first.
    pub versions: Vec<VersionRecord>,
}

/// One published version: where its bytes came from and what they are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionRecord {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_by: Option<u64>,
    #[serde(default)]
    pub needs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlld_version: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bugs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    pub source: SourceRecord,
    /// The registry's `contentHash` (hex), verified against the files.
    pub content_hash: String,
    /// The file an import loads (the only file of a single-file module).
    pub entry: String,
    /// `sha256:<hex>` of the entry file.
    pub integrity: String,
    /// Size of the entry file.
    pub size: u64,
    /// Every file of the version, by relative path, content-addressed.
    pub files: Vec<VersionFileRecord>,
    /// Registry modules this version needs: `@author/name` with an optional
    /// `@range`, from `dependencies` and the entry file's imports; sorted.
    pub dependencies: Vec<String>,
}

/// Where a version was fetched from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceRecord {
    /// `github`, `directory` or `gist`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The raw URL (`github`), base URL (`directory`) or gist id (`gist`).
    pub url: String,
    /// The git repository's URL, when the record names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The commit (git) or gist revision the bytes are pinned to.
    pub commit: String,
    /// The path under the commit.
    #[serde(default)]
    pub path: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VersionFileRecord {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

impl VersionedModule {
    /// `@author/name`.
    pub fn full_name(&self) -> String {
        format!("@{}/{}", self.author, self.name)
    }

    pub fn version(&self, version: &str) -> Option<&VersionRecord> {
        self.versions.iter().find(|v| v.version == version)
    }

    /// The versions as published, highest first.
    pub fn version_names(&self) -> Vec<String> {
        self.versions.iter().map(|v| v.version.clone()).collect()
    }

    /// The version `spec` selects (none: `latest`).
    pub fn select(&self, spec: Option<&VersionSpec>) -> Option<&VersionRecord> {
        let names = self.version_names();
        let chosen = VersionSpec::select(spec, &names, &self.tags)?;
        self.version(chosen)
    }

    /// The version `latest` selects.
    pub fn latest(&self) -> Option<&VersionRecord> {
        self.select(None)
    }
}

impl VersionRecord {
    pub fn parsed(&self) -> Option<crate::version_spec::Version> {
        parse_version(&self.version).ok()
    }

    /// The record of the entry file.
    pub fn entry_file(&self) -> Option<&VersionFileRecord> {
        self.files.iter().find(|f| f.path == self.entry)
    }
}
