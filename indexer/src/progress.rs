//! Progress on stderr: a bar on a terminal, plain stage lines otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    tty: bool,
}

impl Progress {
    pub fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// Announces a stage: a plain line off a terminal (logs read well in CI).
    pub fn stage(&self, name: &str) {
        if !self.tty {
            eprintln!("[index] {name}");
        }
    }

    /// A bar of `len` steps; hidden off a terminal.
    pub fn bar(&self, len: u64) -> ProgressBar {
        if !self.tty {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        let style = ProgressStyle::with_template(
            "{spinner} {msg} [{bar:40}] {pos}/{len} gists ({per_sec}, eta {eta})",
        )
        .expect("the template is valid")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message("crawling");
        bar
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}
