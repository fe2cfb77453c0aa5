//! `cargo xtask check`: validate a registry pull request.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use mlld_indexer::{GistSource, GithubConfig, GithubGists};

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The registry checkout to check.
    #[arg(long)]
    registry: PathBuf,
    /// Also check that every gist exists and belongs to its registering user,
    /// through this GitHub API (token from GITHUB_TOKEN).
    #[arg(long, value_name = "URL")]
    github_api: Option<String>,
    /// Prefix for file paths in annotations (the registry's path in the repository).
    #[arg(long, default_value = "")]
    path_prefix: String,
}

pub fn run(args: CheckArgs) -> Result<ExitCode> {
    let source = match &args.github_api {
        Some(api) => Some(GithubGists::new(GithubConfig {
            api: api.clone(),
            token: std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty()),
            request_timeout: Duration::from_secs(30),
            deadline: Instant::now() + Duration::from_secs(600),
            max_attempts: 4,
            retry_base: Duration::from_millis(500),
        })?),
        None => None,
    };
    let diagnostics = mlld_indexer::check::check(
        &args.registry,
        source.as_ref().map(|s| s as &dyn GistSource),
    )?;
    let layouts = mlld_indexer::versioned_load::detect(&args.registry)?;
    eprintln!("layout: {}", layouts.describe());
    let annotate = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
    for d in &diagnostics {
        if annotate {
            println!(
                "{}",
                mlld_indexer::check::github_annotation(d, &args.path_prefix)
            );
        } else {
            println!("{d}");
        }
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    eprintln!(
        "{errors} errors, {warnings} warnings in {}",
        args.registry.display()
    );
    Ok(if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
