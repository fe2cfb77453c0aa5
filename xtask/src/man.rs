//! `cargo xtask man`: man pages for `mlld-registry` and each of its
//! subcommands, generated from the CLI definition.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct ManArgs {
    /// Where to write the pages (default: target/man under the current directory).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub fn run(args: ManArgs) -> Result<ExitCode> {
    let out = match args.out {
        Some(dir) => dir,
        None => crate::current_dir()?.join("target/man"),
    };
    let cli = mlld_registry::cli::command();
    let written = write_pages(&cli, &out)?;
    println!("wrote {written} man pages to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes `cmd`'s page and its subcommands' (`mlld-registry-sync.1`, …);
/// returns how many.
fn write_pages(cmd: &clap::Command, out: &Path) -> Result<usize> {
    let cmd = cmd.clone();
    let name = cmd.get_display_name().unwrap_or(cmd.get_name()).to_string();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    mlld_fsutil::write_atomic(&out.join(format!("{name}.1")), &page)
        .with_context(|| format!("cannot write {}", out.display()))?;
    let mut written = 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let sub = sub
            .clone()
            .display_name(format!("{name}-{}", sub.get_name()));
        written += write_pages(&sub, out)?;
    }
    Ok(written)
}
