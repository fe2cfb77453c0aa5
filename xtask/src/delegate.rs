//! `cargo xtask bench` and `cargo xtask serve` run in the `xtask-bench`
//! binary. Both use the test-support crate (`mlld-e2e`: loopback servers,
//! a fake GitHub), which the production path (`cargo xtask index`) must not
//! link; so this binary only rebuilds and runs that one.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};

/// The commands `xtask-bench` runs.
#[derive(Clone, Copy, Debug)]
pub enum Tool {
    /// Benchmarks, which measure optimised code: always a release build.
    Bench,
    /// The site preview server.
    Serve,
}

impl Tool {
    fn command(self) -> &'static str {
        match self {
            Tool::Bench => "bench",
            Tool::Serve => "serve",
        }
    }
}

/// Runs `xtask-bench TOOL ARGS…` through cargo (which builds it first) in
/// the workspace at `root`, and exits as it does.
pub fn run(root: &Path, tool: Tool, args: Vec<OsString>) -> Result<ExitCode> {
    // From the caller's directory (with the workspace's manifest), so that
    // relative paths and output defaults follow the current directory.
    // Not `--quiet`: the first use compiles `xtask-bench` (a minute or
    // more on a fresh checkout), and a silent wait reads as a hang.
    let status = cargo_run(root, tool, args)
        .status()
        .context("running `cargo run --package xtask-bench`")?;
    Ok(ExitCode::from(
        status.code().unwrap_or(2).clamp(0, 255) as u8
    ))
}

/// The inner `cargo run`, in an environment without what the outer one set
/// for xtask alone (see `cargo_child`).
fn cargo_run(root: &Path, tool: Tool, args: Vec<OsString>) -> Command {
    let mut cargo = cargo_child::command(env!("CARGO"));
    cargo
        .args(["run", "--manifest-path"])
        .arg(root.join("Cargo.toml"));
    if matches!(tool, Tool::Bench) {
        cargo.arg("--release");
    }
    cargo
        .args(["--package", "xtask-bench", "--"])
        .arg(tool.command())
        .args(args);
    cargo
}

#[cfg(test)]
mod tests {
    /// The packages a build of `package` links (normal and build
    /// dependencies on this host, not dev-dependencies), one name a line.
    fn linked_packages(package: &str) -> Vec<String> {
        let root = crate::workspace_root();
        let out = cargo_child::command(env!("CARGO"))
            .current_dir(&root)
            .args(["tree", "--offline", "--locked", "--package", package])
            .args(["--edges", "normal,build", "--prefix", "none"])
            .args(["--format", "{p}"])
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect()
    }

    /// The inner cargo does not inherit the variables `cargo run` set for
    /// xtask (build scripts that watch them would rerun on every switch).
    #[test]
    fn the_inner_cargo_does_not_inherit_what_cargo_run_set_for_xtask() {
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let cargo = super::cargo_run(&crate::workspace_root(), super::Tool::Serve, Vec::new());
        let removed = |name: &str| (cargo.get_envs()).any(|(n, v)| n == name && v.is_none());
        assert!(removed("CARGO_MANIFEST_DIR"));
    }

    /// Everything after `bench` or `serve`, flags and `--help` included,
    /// reaches `xtask-bench` untouched.
    #[test]
    fn bench_and_serve_pass_their_arguments_through() {
        use clap::Parser;
        let parse = |args: &[&str]| crate::Cli::try_parse_from(args).expect("parses").command;
        match parse(&["xtask", "bench", "crawl", "--users", "10", "--help"]) {
            crate::Command::Bench { args } => {
                assert_eq!(args, ["crawl", "--users", "10", "--help"]);
            }
            _ => panic!("not bench"),
        }
        match parse(&["xtask", "serve", "--port", "0", "site"]) {
            crate::Command::Serve { args } => assert_eq!(args, ["--port", "0", "site"]),
            _ => panic!("not serve"),
        }
    }

    #[test]
    fn the_production_binary_does_not_link_the_test_support_crate() {
        let xtask = linked_packages("xtask");
        assert!(
            xtask.iter().any(|p| p == "mlld-indexer"),
            "the tree lists xtask's dependencies: {xtask:?}"
        );
        for test_only in ["mlld-e2e", "xtask-bench"] {
            assert!(
                !xtask.iter().any(|p| p == test_only),
                "`cargo xtask` links {test_only}; benchmarks and preview serving belong in xtask-bench"
            );
        }
        // The check can see the crate where it is linked.
        assert!(
            linked_packages("xtask-bench")
                .iter()
                .any(|p| p == "mlld-e2e")
        );
    }
}
