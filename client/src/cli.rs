//! The `mlld-registry` command line: global flags, subcommands (one file
//! each under `commands/`), exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::UserConfig;
use crate::context::{Context, Flags};
use crate::project::Project;
use crate::search_query::SearchQuery;
use crate::store::Store;
use crate::{commands, info, info_versioned, search};

const EXIT_CODES: &str = "Exit codes:\n  0  success\n  1  a finding: an advisory at or above the threshold (audit), a missing or damaged cache entry (verify), a failed check (doctor)\n  2  an error: bad input, a refused snapshot, a failed write\n\nEnvironment:\n  MLLD_REGISTRY_URL   the registry site for `sync`\n  MLLD_REGISTRY_KEY   a trusted key file, or the key itself\n  MLLD_REGISTRY_HOME  the store and config directory (default: XDG data and config dirs)\n  NO_COLOR            no colour (like --color never)\n  TERM=dumb           no colour";

#[derive(Parser)]
#[command(
    name = "mlld-registry",
    version,
    about = "Resolve, lock, install and audit mlld registry modules from signed snapshots, offline",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// The project directory (holds .mlld/). Default: the nearest directory
    /// from here upwards holding .mlld/, mlld-lock.json or mlld-config.json,
    /// else the current directory.
    #[arg(long, global = true, value_name = "DIR", overrides_with = "project")]
    pub project: Option<PathBuf>,
    /// Read this snapshot file (snapshots/<sha256>.tar.zst) instead of the synced one.
    #[arg(long, global = true, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,
    /// Trust this minisign public key (the site's mlld-registry.pub).
    #[arg(long, global = true, value_name = "FILE")]
    pub trusted_key: Option<PathBuf>,
    /// Approve first-time imports and changed content without asking.
    #[arg(long, global = true)]
    pub yes: bool,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Never touch the network (only `sync` from a URL, and commands reading
    /// a sparse store that lacks a record, would).
    #[arg(long, global = true)]
    pub offline: bool,
    /// Read a --snapshot FILE older than a snapshot this store already
    /// accepted (risk: revisions since replaced, advisories since published
    /// are missing).
    #[arg(long, global = true)]
    pub allow_older: bool,
    /// Resolve new imports, update and audit from an expired snapshot (risk:
    /// newer revisions and advisories published since are missing).
    #[arg(long, global = true)]
    pub allow_expired: bool,
    /// Colour: auto (on a terminal, unless NO_COLOR is set or TERM=dumb), always or never.
    #[arg(long, global = true, value_name = "WHEN")]
    pub color: Option<crate::color::ColorChoice>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Fetch and verify the registry's newest signed snapshot and make it current.
    Sync(commands::sync::Args),
    /// Resolve one import, lock it (with its dependencies) and cache it.
    Resolve(commands::resolve::Args),
    /// Lock the project's imports and install every lock entry into .mlld/cache.
    Install(commands::install::Args),
    /// Move locked modules to their newest revision (changed content needs approval).
    Update(commands::update::Args),
    /// Check locked modules against the snapshot's security advisories.
    Audit(commands::audit::Args),
    /// Re-hash every cached module against the lock file.
    Verify(commands::verify::Args),
    /// List the project's locked modules.
    Ls(commands::ls::Args),
    /// Show usage statistics (recorded only when enabled in a config file).
    Stats(commands::stats::Args),
    /// Search every user's modules offline, from the snapshot's index.
    ///
    /// Words match module names (in any spelling: json-utils, json utils,
    /// jsonutils), tags, authors, descriptions and the headings and leading
    /// comment of the module's content; every word must match somewhere.
    /// Words match as prefixes, and words of 4 or more letters with one typo.
    /// `author:USER` and `tag:TAG` in the query filter like the flags.
    #[command(
        after_help = "Examples:\n  mlld-registry search json utils\n  mlld-registry search 'tag:llm cache' --limit 5\n  mlld-registry search retry --author devops-dan --json\n\nOutput: a table (NAME, DESCRIPTION, TAGS, ADVISORY), or with --json the envelope whose data is a list of\n  {\"name\",\"author\",\"module\",\"description\",\"tags\",\"advisory\":null|{\"highest\",\"count\"}} (empty when nothing matched)\nModules with an open advisory are flagged, never hidden.\n\nExit codes:\n  0  at least one module matched\n  1  no module matched (near names are suggested)\n  2  an error: bad query, no snapshot, a refused snapshot"
    )]
    Search {
        /// Words and filters, e.g. `json utils` or `tag:llm cache author:sarah-k`.
        #[arg(required = true, num_args = 1..)]
        query: Vec<String>,
        /// Only modules by this user.
        #[arg(long, value_name = "USER")]
        author: Option<String>,
        /// Only modules with this tag (repeat for several; all must match).
        #[arg(long, value_name = "TAG")]
        tag: Vec<String>,
        /// At most this many results.
        #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
    },
    /// Show everything the snapshot knows about one module.
    ///
    /// For a versioned module (`@author/name`): every version with its date,
    /// the dist-tags, and per version needs, mlldVersion, license and files.
    ///
    /// Description, tags, author, gist, current revision and every revision
    /// the snapshot holds (with dates), created and updated times, size,
    /// integrity, dependencies and dependents, the advisories affecting it,
    /// and whether this project has it locked and cached.
    #[command(
        after_help = "Examples:\n  mlld-registry info adamavenir/json-utils\n  mlld-registry info @sarah-k/llm-cache --json\n\nExit codes:\n  0  the module was found\n  2  an error: no such module (near names are suggested), no snapshot, a refused snapshot"
    )]
    Info {
        /// @user/module (the versioned module), mlld://user/module (the Phase-1
        /// module) or user/module (the Phase-1 module when there is one).
        reference: String,
    },
    /// Show where the files are and the effective settings, with where each comes from.
    Config(commands::config::Args),
    /// Check keys, store, snapshot, project cache, config and mlld's files; exit 1 on an error.
    Doctor(commands::doctor::Args),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    #[command(
        after_help = "Examples:\n  mlld-registry completions bash > ~/.local/share/bash-completion/completions/mlld-registry\n  mlld-registry completions zsh > ~/.zfunc/_mlld-registry\n  mlld-registry completions fish > ~/.config/fish/completions/mlld-registry.fish"
    )]
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Remove a module from the lock, with the dependencies nothing else needs and their cache entries.
    Remove(commands::remove::Args),
    /// List locked modules with newer revisions or versions (current, wanted within the pins, latest); exit 1 when any.
    Outdated(commands::outdated::Args),
}

/// Which global flags each subcommand uses: its `--help` shows those and
/// hides the rest (they are still accepted, and ignored).
const FLAGS_USED: &[(&str, &[&str])] = &[
    (
        "sync",
        &["project", "trusted_key", "json", "offline", "color"],
    ),
    ("resolve", SNAPSHOT_WRITERS),
    ("install", SNAPSHOT_WRITERS),
    ("update", SNAPSHOT_WRITERS),
    (
        "audit",
        &[
            "project",
            "snapshot",
            "trusted_key",
            "json",
            "allow_older",
            "allow_expired",
            "offline",
            "color",
        ],
    ),
    ("verify", &["project", "json", "color"]),
    ("ls", SNAPSHOT_READERS),
    ("stats", &["project", "json", "color"]),
    ("remove", SNAPSHOT_READERS),
    ("outdated", SNAPSHOT_READERS),
    ("search", SNAPSHOT_READERS),
    ("info", SNAPSHOT_READERS),
    (
        "config",
        &["project", "snapshot", "trusted_key", "json", "color"],
    ),
    (
        "doctor",
        &["project", "snapshot", "trusted_key", "json", "color"],
    ),
    ("completions", &[]),
];

/// What `resolve`, `install` and `update` use: they lock and approve.
/// `offline`: a sparse store fetches what it lacks unless told not to.
const SNAPSHOT_WRITERS: &[&str] = &[
    "project",
    "snapshot",
    "trusted_key",
    "yes",
    "json",
    "allow_older",
    "allow_expired",
    "offline",
    "color",
];

/// What the commands that only read the registry use.
const SNAPSHOT_READERS: &[&str] = &[
    "project",
    "snapshot",
    "trusted_key",
    "json",
    "allow_older",
    "offline",
    "color",
];

/// The command line, with each subcommand's `--help` showing only the
/// global flags it uses. Completions and man pages come from here too.
///
/// A subcommand gets a hidden, local copy of each global flag it does not
/// use: clap then does not propagate the global one into it (so its help
/// leaves it out), and the flag is still accepted there, and ignored.
pub fn command() -> clap::Command {
    let cmd = Cli::command();
    let globals: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .cloned()
        .collect();
    cmd.mut_subcommands(|mut sub| {
        let used = FLAGS_USED
            .iter()
            .find(|(name, _)| *name == sub.get_name())
            .map_or(&[][..], |(_, used)| *used);
        for arg in globals
            .iter()
            .filter(|a| !used.contains(&a.get_id().as_str()))
        {
            sub = sub.arg(arg.clone().global(false).hide(true));
        }
        sub
    })
}

pub fn main() -> ExitCode {
    let matches = command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    crate::json_output::set_command(matches.subcommand_name().unwrap_or_default());
    crate::color::set_flag(cli.color);
    let json = cli.json;
    let result = run(cli).and_then(|code| match crate::output::stdout_error() {
        Some(e) => Err(anyhow::anyhow!("writing the output failed: {e}")),
        None => Ok(code),
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            if json {
                crate::json_output::print_error(&e);
            }
            // Errors quote input (names, paths, values from files): the
            // message is made terminal-safe once, here.
            let message = format!("{e:#}");
            eprintln!(
                "error: {}",
                mlld_schemas::terminal::terminal_safe_block(&message)
            );
            ExitCode::from(2)
        }
    }
}

/// The project the command works on; says on stderr when it was found
/// above the current directory (stdout stays clean for `--json`).
fn find_project(explicit: Option<&std::path::Path>) -> anyhow::Result<Project> {
    let cwd = std::env::current_dir().map_err(|e| {
        anyhow::anyhow!("cannot read the current directory ({e}); pass --project DIR")
    })?;
    let found = Project::discover(explicit, &cwd)?;
    if let Some(marker) = found.marker
        && found.project.root() != cwd
    {
        eprintln!(
            "using the project at {} (it holds {marker})",
            found.project.root().display()
        );
    }
    Ok(found.project)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Needs no project, store or config: works before any exists.
    let flags = Flags {
        trusted_key: cli.trusted_key,
        snapshot: cli.snapshot,
        yes: cli.yes,
        json: cli.json,
        offline: cli.offline,
        allow_older: cli.allow_older,
        allow_expired: cli.allow_expired,
    };
    // These work without a readable config (they report on it) or store.
    match cli.command {
        Command::Completions { shell } => return Ok(print_completions(shell)),
        Command::Config(_) => {
            let project = find_project(cli.project.as_deref()).ok();
            let store = Store::open_default().ok();
            return commands::config::run(project.as_ref(), store.as_ref(), &flags);
        }
        Command::Doctor(_) => {
            let project = find_project(cli.project.as_deref())?;
            return commands::doctor::run(&project, &Store::open_default()?, &flags);
        }
        _ => {}
    }
    let ctx = Context::new(
        find_project(cli.project.as_deref())?,
        Store::open_default()?,
        UserConfig::load()?,
        flags,
    );
    match &cli.command {
        Command::Sync(a) => commands::sync::run(&ctx, a),
        Command::Resolve(a) => commands::resolve::run(&ctx, a),
        Command::Install(a) => commands::install::run(&ctx, a),
        Command::Update(a) => commands::update::run(&ctx, a),
        Command::Audit(a) => commands::audit::run(&ctx, a),
        Command::Verify(a) => commands::verify::run(&ctx, a),
        Command::Ls(a) => commands::ls::run(&ctx, a),
        Command::Stats(a) => commands::stats::run(&ctx, a),
        Command::Remove(a) => commands::remove::run(&ctx, a),
        Command::Outdated(a) => commands::outdated::run(&ctx, a),
        Command::Search {
            query,
            author,
            tag,
            limit,
        } => {
            let text = query.join(" ");
            let parsed = SearchQuery::parse(&text, author.as_deref(), tag)?;
            let outcome = search::search(&ctx, &parsed, *limit as usize)?;
            // A miss names the filters too: `--tag nosuch` may be why.
            let mut asked = text.clone();
            if let Some(a) = author {
                asked.push_str(&format!(" --author {a}"));
            }
            for t in tag {
                asked.push_str(&format!(" --tag {t}"));
            }
            Ok(if search::print(&outcome, asked.trim(), cli.json)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Completions { .. } | Command::Config(_) | Command::Doctor(_) => {
            bail!("handled before the context is built")
        }
        Command::Info { reference } => {
            let index = crate::versioned::VersionedIndex::new(ctx.registry()?);
            if let Some(module) = info_versioned::find(&index, reference)? {
                let found = info_versioned::info(&ctx, module)?;
                if cli.json {
                    commands::print_json(&found)?;
                } else {
                    crate::out!("{}", info_versioned::render(&found));
                }
                return Ok(ExitCode::SUCCESS);
            }
            let found = info::info(&ctx, reference)?;
            if cli.json {
                commands::print_json(&found)?;
            } else {
                crate::out!("{}", info::render(&found));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_completions(shell: clap_complete::Shell) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command(), "mlld-registry", &mut script);
    crate::out!("{}", String::from_utf8_lossy(&script));
    ExitCode::SUCCESS
}
