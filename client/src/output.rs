//! Every byte the client writes to stdout goes through [`write_stdout`]
//! (the `out!`/`outln!` macros; clippy forbids `print!`/`println!` in this
//! crate). A reader that closes the pipe early (`audit | head -1`) stops
//! the writing, not the command: the rest of the output is dropped and the
//! command still exits with its own code. Rust's `println!` would panic
//! (exit 101) instead.

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The reader went away: nothing more is written.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// The first write error other than a closed pipe (a full disk behind `>`).
static FAILED: Mutex<Option<String>> = Mutex::new(None);

/// Writes `args` to stdout; see the module docs for what happens on errors.
pub fn write_stdout(args: fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != io::ErrorKind::BrokenPipe {
            let mut failed = FAILED.lock().unwrap_or_else(|p| p.into_inner());
            failed.get_or_insert_with(|| e.to_string());
        }
    }
}

/// The error that stopped stdout, unless the reader merely closed it:
/// a command whose output was lost must not report success.
pub fn stdout_error() -> Option<String> {
    FAILED.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// `print!` through [`write_stdout`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write_stdout(format_args!($($arg)*)) };
}

/// `println!` through [`write_stdout`].
#[macro_export]
macro_rules! outln {
    () => { $crate::output::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `n` and the noun in the right number: "1 advisory", "2 advisories".
/// Every count in human output goes through here.
pub fn count<N: PartialEq + fmt::Display + From<u8>>(n: N, one: &str, many: &str) -> String {
    let noun = if n == N::from(1) { one } else { many };
    format!("{n} {noun}")
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_say_one_and_many() {
        assert_eq!(count(0, "advisory", "advisories"), "0 advisories");
        assert_eq!(count(1, "advisory", "advisories"), "1 advisory");
        assert_eq!(count(2, "module", "modules"), "2 modules");
    }
}
