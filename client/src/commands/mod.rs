//! One file per subcommand. Each has its clap arguments and a `run` that
//! returns the exit code (0 success, 1 a finding, errors become 2 in `cli`).

pub mod audit;
pub mod config;
pub mod doctor;
pub mod install;
pub mod ls;
pub mod outdated;
pub mod remove;
pub mod resolve;
pub mod stats;
pub mod sync;
pub mod update;
pub mod update_versioned;
pub mod verify;

use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

/// Exit code 1: a finding (an advisory at or above the threshold, a cache mismatch).
pub const FINDING: u8 = 1;

/// Prints `value` as the `data` of the JSON envelope, on one line.
pub fn print_json(value: &impl Serialize) -> Result<()> {
    crate::json_output::print(value)
}

pub fn exit(code: u8) -> ExitCode {
    ExitCode::from(code)
}

/// The first 12 digits of a revision, for tables.
pub fn short(revision: &str) -> &str {
    short_to(revision, 12)
}

/// The first `n` characters of `text` (all of it when shorter), never
/// splitting a character: revisions come from files a user may have edited.
pub fn short_to(text: &str, n: usize) -> &str {
    match text.char_indices().nth(n) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// Untrusted text (from a registry file, gist, snapshot or lock) made safe
/// for one line of terminal output.
pub fn safe(text: &str) -> std::borrow::Cow<'_, str> {
    mlld_schemas::terminal::terminal_safe(text)
}
