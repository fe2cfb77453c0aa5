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
//!   "stats": false,
//!   "idleTimeout": 20,
//!   "minRate": 16384
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

use anyhow::Result;
use mlld_schemas::JsonPath;
use mlld_schemas::locate::SpanTree;
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
    /// `sync`: seconds without a byte before a download is abandoned.
    #[serde(default)]
    pub idle_timeout: Option<u64>,
    /// `sync`: the slowest average speed (bytes a second) a download may
    /// have; with the size, it sets the download's deadline.
    #[serde(default)]
    pub min_rate: Option<u64>,
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
    /// (Defaulted only so that a missing one is reported with its position.)
    #[serde(default)]
    pub advisory: String,
    /// Why it does not apply; required.
    #[serde(default)]
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
        let Some(text) = crate::input::read_text(&path)? else {
            return Ok(Self::default());
        };
        let config: Self = parse_json(&path, &text)?;
        for (n, i) in config.audit.ignore.iter().enumerate() {
            let field = if !i.advisory.contains('/') {
                "advisory"
            } else if i.reason.trim().is_empty() {
                "reason"
            } else {
                continue;
            };
            let entry = JsonPath::root().key("audit").key("ignore").index(n);
            let at = SpanTree::parse(&text);
            // The field itself when present, else the entry that lacks it.
            let (line, column) = at
                .as_ref()
                .and_then(|t| t.position(&entry.key(field)).or_else(|| t.position(&entry)))
                .unwrap_or((0, 0));
            let message = format!(
                "{}:{line}:{column}: {entry}.{field}: each audit.ignore entry needs \"advisory\": \"user/id\" and a non-empty \"reason\" saying why the advisory does not apply{}",
                path.display(),
                if field == "reason" {
                    format!(" (entry `{}` has none)", i.advisory)
                } else {
                    String::new()
                }
            );
            return Err(located(
                path.as_path(),
                entry.key(field),
                (line, column),
                message,
            ));
        }
        Ok(config)
    }
}

/// Reads a JSON config; `None` when the file does not exist.
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let Some(text) = crate::input::read_text(path)? else {
        return Ok(None);
    };
    parse_json(path, &text).map(Some)
}

/// Parses a JSON config; an error names its line and column.
fn parse_json<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(e) => {
            // serde_json ends its message with the position, given here first.
            let what = e.to_string();
            let what = what
                .rsplit_once(" at line ")
                .map_or(what.as_str(), |(m, _)| m);
            let message = format!(
                "{}:{}:{}: {what}; fix the file (the format is in the README's \"Configuration\" section)",
                path.display(),
                e.line(),
                e.column()
            );
            Err(located(
                path,
                JsonPath::root(),
                (e.line(), e.column()),
                message,
            ))
        }
    }
}

/// An error about a position in a config file: `--json` reports it as
/// `invalid-input` with the file, line and column.
fn located(
    path: &Path,
    json_path: JsonPath,
    (line, column): (usize, usize),
    message: String,
) -> anyhow::Error {
    crate::json_output::Located {
        message: message.clone(),
        at: mlld_schemas::Diagnostic {
            level: mlld_schemas::diag::Level::Error,
            file: path.display().to_string(),
            path: json_path,
            line,
            column,
            message,
            help: None,
        },
    }
    .into()
}
