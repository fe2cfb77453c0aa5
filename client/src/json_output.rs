//! `--json`: every command prints exactly one envelope
//! (`mlld_schemas::output::Envelope`): `formatVersion`, the command, its
//! `data` and `errors`. A failed command prints the envelope with null
//! data and its error, so a script always reads one JSON document.

use std::sync::OnceLock;

use anyhow::Result;
use mlld_schemas::output::{Envelope, OUTPUT_FORMAT_VERSION, OutputError};
use serde::Serialize;

static COMMAND: OnceLock<String> = OnceLock::new();

/// Records the subcommand's name for the envelope; call once, first.
pub fn set_command(name: &str) {
    let _ = COMMAND.set(name.to_string());
}

fn command() -> String {
    COMMAND.get().cloned().unwrap_or_default()
}

/// Prints `data` in the envelope, on one line.
pub fn print<T: Serialize>(data: &T) -> Result<()> {
    let envelope = Envelope {
        format_version: OUTPUT_FORMAT_VERSION,
        command: command(),
        data: Some(data),
        errors: Vec::new(),
    };
    crate::outln!("{}", serde_json::to_string(&envelope)?);
    Ok(())
}

/// An error about a position in a file: shown as its message, and in the
/// JSON envelope with the position of its first diagnostic.
#[derive(Debug)]
pub struct Located {
    pub message: String,
    pub at: mlld_schemas::Diagnostic,
}

impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Located {}

/// Several problems at positions in the project's files, all found in one
/// run: shown as a summary and one line each, and in the JSON envelope as
/// one error object each.
#[derive(Debug)]
pub struct Problems {
    pub summary: String,
    pub items: Vec<Problem>,
}

/// One of [`Problems`]: `code` is `invalid-input` (the file itself) or
/// `unresolved` (a reference the snapshot cannot satisfy).
#[derive(Debug)]
pub struct Problem {
    pub code: &'static str,
    pub file: String,
    pub line: usize,
    pub column: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary)?;
        for p in &self.items {
            write!(f, "\n{}:{}", p.file, p.line)?;
            if let Some(c) = p.column {
                write!(f, ":{c}")?;
            }
            write!(f, ": {}", crate::commands::safe(&p.message))?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Prints the envelope of a failed command: no data, the error (one object
/// per problem when the command collected several).
pub fn print_error(error: &anyhow::Error) {
    if let Some(problems) = error.chain().find_map(|e| e.downcast_ref::<Problems>()) {
        let errors = problems
            .items
            .iter()
            .map(|p| OutputError {
                code: p.code.into(),
                message: p.message.clone(),
                file: Some(p.file.clone()),
                line: Some(p.line as u64),
                column: p.column.map(|c| c as u64),
            })
            .collect();
        print_envelope(errors);
        return;
    }
    let located = error
        .chain()
        .find_map(|e| e.downcast_ref::<Located>())
        .map(|l| &l.at);
    let position = |n: usize| located.filter(|_| n > 0).map(|_| n as u64);
    print_envelope(vec![OutputError {
        code: if located.is_some() {
            "invalid-input"
        } else {
            "error"
        }
        .into(),
        message: format!("{error:#}"),
        file: located.map(|d| d.file.clone()),
        line: located.and_then(|d| position(d.line)),
        column: located.and_then(|d| position(d.column)),
    }]);
}

fn print_envelope(errors: Vec<OutputError>) {
    let envelope: Envelope<()> = Envelope {
        format_version: OUTPUT_FORMAT_VERSION,
        command: command(),
        data: None,
        errors,
    };
    if let Ok(text) = serde_json::to_string(&envelope) {
        crate::outln!("{text}");
    }
}
