//! The user's config file and a project's config file.
//!
//! User config: `$MLLD_REGISTRY_HOME/config.json` when that variable is set,
//! else `$XDG_CONFIG_HOME/mlld-registry/config.json`, else
//! `~/.config/mlld-registry/config.json`:
//!
//! ```json
//! {
//!   "registry": "https://registry.example.org/",
//!   "trustedKeys": ["~/.config/mlld-registry/mlld-registry.pub"],
//!   "stats": false
//! }
//! ```
//!
//! Project config: `.mlld/config.json` in the project:
//!
//! ```json
//! {
//!   "stats": true,
//!   "prefixes": ["lib"],
//!   "mlldLock": true,
//!   "audit": { "ignore": [{ "advisory": "sarah-k/2024-001", "reason": "we never cache LLM output" }] }
//! }
//! ```
//!
//! Unknown keys are errors (a typo must not silently disable a setting);
//! every error names the file, line and column.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::Deserialize;
use serde::de::DeserializeOwned;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserConfig {
    /// The registry site: an `https://` URL or a directory.
    #[serde(default)]
    pub registry: Option<String>,
    /// Key files or base64 minisign public keys.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
    /// Record usage events in each project's `.mlld/stats/usage.jsonl`.
    #[serde(default)]
    pub stats: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectConfig {
    /// Overrides the user config's `stats` for this project.
    #[serde(default)]
    pub stats: Option<bool>,
    /// Project resolver prefixes (`@lib/...`) that are not registry users.
    #[serde(default)]
    pub prefixes: Vec<String>,
    #[serde(default)]
    pub audit: AuditConfig,
    /// Keep mlld's own `mlld-lock.json` and `~/.mlld/cache/sha256/` current
    /// (default true); `false` turns both off.
    #[serde(default)]
    pub mlld_lock: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditConfig {
    #[serde(default)]
    pub ignore: Vec<IgnoredAdvisory>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IgnoredAdvisory {
    /// `user/id`: advisory ids are unique only within one user's file.
    pub advisory: String,
    /// Why it does not apply; required.
    pub reason: String,
}

pub const PROJECT_CONFIG: &str = ".mlld/config.json";

/// Where the user config lives.
pub fn user_config_path() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("MLLD_REGISTRY_HOME") {
        return Some(PathBuf::from(home).join("config.json"));
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir).join("mlld-registry/config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/mlld-registry/config.json"))
}

impl UserConfig {
    pub fn load() -> Result<Self> {
        match user_config_path() {
            Some(path) => Ok(read_json(&path)?.unwrap_or_default()),
            None => Ok(Self::default()),
        }
    }
}

impl ProjectConfig {
    pub fn load(project_root: &Path) -> Result<Self> {
        let path = project_root.join(PROJECT_CONFIG);
        let config: Self = read_json(&path)?.unwrap_or_default();
        for i in &config.audit.ignore {
            if i.reason.trim().is_empty() || !i.advisory.contains('/') {
                bail!(
                    "{}: audit.ignore entry `{}` needs \"advisory\": \"user/id\" and a non-empty \"reason\"",
                    path.display(),
                    i.advisory
                );
            }
        }
        Ok(config)
    }
}

/// Reads a JSON config; `None` when the file does not exist.
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("reading {}: {e}", path.display()),
    };
    match serde_json::from_str(&text) {
        Ok(v) => Ok(Some(v)),
        Err(e) => bail!(
            "{}:{}:{}: {e}; fix the file (the format is in the README's \"Configuration\" section)",
            path.display(),
            e.line(),
            e.column()
        ),
    }
}
