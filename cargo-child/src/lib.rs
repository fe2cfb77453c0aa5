//! The `cargo` a workspace tool (xtask, the benchmarks, the end-to-end
//! tests) runs to build or run another of the workspace's binaries.
//!
//! Cargo sets variables for the process it runs (`CARGO_MANIFEST_DIR`,
//! `CARGO_PKG_*`, ...), and a child cargo inherits them. Build scripts watch
//! some of them (ring's prints `rerun-if-env-changed` for
//! `CARGO_MANIFEST_DIR` and `CARGO_PKG_*`), and cargo compares a watched
//! variable in its *own* environment with the last build's: so a child
//! cargo that inherited them rebuilt ring, rustls and the HTTP stack, and
//! the next plain `cargo build` rebuilt them back (half a minute each way).

use std::process::Command;

/// `cargo` (the one that built the caller: `CARGO` at its build, passed in
/// as `cargo`, e.g. `env!("CARGO")`) in an environment without what cargo
/// set for the calling process; a user's own configuration
/// (`CARGO_TARGET_DIR`, `CARGO_HOME`, `CARGO_PROFILE_*`, `RUSTFLAGS`, ...)
/// still reaches it.
pub fn command(cargo: &str) -> Command {
    let mut command = Command::new(cargo);
    for (name, _) in std::env::vars_os() {
        if set_for_the_run(&name.to_string_lossy()) {
            command.env_remove(name);
        }
    }
    command
}

/// Whether cargo sets `name` for a binary, test or benchmark it runs (its
/// package's metadata and paths), as opposed to configuration a user sets.
/// `CARGO` itself is kept: it names the same cargo. The library search
/// path cargo extends is kept too: no build script here watches it.
fn set_for_the_run(name: &str) -> bool {
    name == "CARGO_MANIFEST_DIR" || name == "CARGO_MANIFEST_PATH" || name.starts_with("CARGO_PKG_")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests run under cargo, which sets these as `cargo run` does: the
    /// command drops exactly them and passes the rest on.
    #[test]
    fn the_child_does_not_inherit_what_cargo_set_for_this_process() {
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
        let child = command(env!("CARGO"));
        let removed: Vec<_> = (child.get_envs())
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect();
        for name in ["CARGO_MANIFEST_DIR", "CARGO_PKG_NAME", "CARGO_PKG_VERSION"] {
            assert!(removed.iter().any(|r| r == name), "{name} in {removed:?}");
        }
        assert!(
            removed.iter().all(|name| set_for_the_run(name)),
            "{removed:?}"
        );
        for kept in [
            "CARGO",
            "CARGO_TARGET_DIR",
            "CARGO_HOME",
            "CARGO_PROFILE_RELEASE_DEBUG",
            "CARGO_BUILD_TARGET",
            "CARGO_TERM_COLOR",
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "LD_LIBRARY_PATH",
        ] {
            assert!(!set_for_the_run(kept), "{kept}");
        }
    }
}
