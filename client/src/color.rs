//! The one place that decides whether output is coloured: `--color
//! auto|always|never`, then `NO_COLOR` (https://no-color.org), then
//! `TERM=dumb`, then whether stdout is a terminal.

use std::io::IsTerminal;
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal, unless NO_COLOR is set or TERM=dumb.
    #[default]
    Auto,
    Always,
    Never,
}

static FLAG: OnceLock<Option<ColorChoice>> = OnceLock::new();

/// Records the `--color` flag; call once, before any output.
pub fn set_flag(choice: Option<ColorChoice>) {
    let _ = FLAG.set(choice);
}

fn flag() -> Option<ColorChoice> {
    FLAG.get().copied().flatten()
}

fn no_color_env() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

fn dumb_terminal() -> bool {
    std::env::var_os("TERM").is_some_and(|t| t == "dumb")
}

/// Whether stdout gets colour.
pub fn enabled() -> bool {
    decide(std::io::stdout().is_terminal())
}

/// Whether stderr (the progress bar) gets colour.
pub fn stderr_enabled() -> bool {
    decide(std::io::stderr().is_terminal())
}

fn decide(terminal: bool) -> bool {
    match flag() {
        Some(ColorChoice::Always) => true,
        Some(ColorChoice::Never) => false,
        _ => !no_color_env() && !dumb_terminal() && terminal,
    }
}

/// The setting's name, for `config`.
pub fn choice_name() -> &'static str {
    match flag() {
        Some(ColorChoice::Always) => "always",
        Some(ColorChoice::Never) => "never",
        _ if no_color_env() => "never",
        _ if dumb_terminal() => "never",
        _ => "auto",
    }
}

/// Where the setting comes from, for `config`.
pub fn choice_source() -> String {
    match flag() {
        Some(_) => "flag --color".into(),
        None if no_color_env() => "environment NO_COLOR".into(),
        None if dumb_terminal() => "environment TERM=dumb".into(),
        None => "default".into(),
    }
}

/// `text` in the ANSI colour `code` (e.g. `"1;31"`) when colour is on.
pub fn paint(text: &str, code: &str) -> String {
    if enabled() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The ANSI colour of an advisory severity (used by `audit` and the approval screen).
pub fn severity_code(severity: mlld_schemas::Severity) -> &'static str {
    use mlld_schemas::Severity;
    match severity {
        Severity::Critical => "1;35",
        Severity::High => "1;31",
        Severity::Medium => "33",
        Severity::Low => "36",
    }
}
