//! The client's `--json` output: every command prints one envelope,
//! `{"formatVersion": 1, "command", "data", "errors"}`. `data` is the
//! command's result (null when it failed); `errors` lists why it failed,
//! each with a code, a message and, when the error is about a file, the
//! file, line and column. The audit report is typed here too, so its
//! schema is published beside the others.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::advisory::Severity;

/// The envelope's `formatVersion`: raised only for incompatible changes.
pub const OUTPUT_FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T> {
    pub format_version: u32,
    /// The subcommand: `audit`, `install`, `search`, …
    pub command: String,
    /// The result; null when the command failed (exit 2).
    pub data: Option<T>,
    /// Why the command failed; empty on success and on a finding (exit 1).
    pub errors: Vec<OutputError>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OutputError {
    /// A stable identifier of the kind of error (`error` for a failed command).
    pub code: String,
    /// What went wrong and what to do next.
    pub message: String,
    /// The file the error is about, when there is one.
    pub file: Option<String>,
    /// 1-based line in `file`.
    pub line: Option<u64>,
    /// 1-based column in `line`.
    pub column: Option<u64>,
}

/// `audit`'s `data`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    pub threshold: Severity,
    pub snapshot_serial: u64,
    pub modules: usize,
    pub findings: Vec<Finding>,
    /// Findings at or above the threshold that are not ignored.
    pub failing: usize,
    /// When the snapshot had expired (`--allow-expired`): its advisories may be stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired: Option<String>,
}

/// One advisory affecting one locked module.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The lock key: `mlld://user/module` or `@author/name`.
    pub import: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gist_revision: Option<String>,
    /// The locked version of a versioned module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `user/id`.
    pub advisory: String,
    pub severity: Severity,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub recommendation: String,
    /// The reason from the project config when the advisory is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    /// Lock keys from a module the project imports to this one.
    pub path: Vec<String>,
    /// The versions that fix it, as the advisory states them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patched_versions: Option<String>,
    /// What fixes it, when the snapshot holds a version or revision it does not affect.
    pub fix: Option<Fix>,
}

/// A version or revision the advisory does not affect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Fix {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// True when `mlld-registry update` moves the module there (it is
    /// within what the project asked for); false when the pin or range must
    /// change first.
    pub by_update: bool,
}
