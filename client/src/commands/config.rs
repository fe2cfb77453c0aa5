//! `config`: where the client's files are, the effective settings and
//! where each comes from (flag, environment, config file, default). Works
//! with a broken config file: it says what is wrong instead of failing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use crate::commands::{print_json, safe};
use crate::config::{PROJECT_CONFIG, ProjectConfig, UserConfig, user_config_path};
use crate::context::Flags;
use crate::project::Project;
use crate::store::Store;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  mlld-registry config\n  mlld-registry config --json\n\nSources, strongest first: flag, environment, config file, default."
)]
pub struct Args {}

#[derive(Debug, Serialize)]
pub struct File {
    pub name: &'static str,
    pub path: Option<PathBuf>,
    pub exists: bool,
}

#[derive(Debug, Serialize)]
pub struct Setting {
    pub name: &'static str,
    pub value: serde_json::Value,
    /// `flag --…`, `environment VAR`, `config file PATH` or `default`.
    pub source: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub files: Vec<File>,
    pub settings: Vec<Setting>,
    /// Config files that could not be read, with the reason.
    pub errors: Vec<String>,
}

/// The mlld interpreter's home directory (`~/.mlld`).
pub fn mlld_home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".mlld"))
}

fn file(name: &'static str, path: Option<PathBuf>) -> File {
    let exists = path.as_deref().is_some_and(Path::exists);
    File { name, path, exists }
}

/// Everything `config` reports; `project` and `store` are `None` when they
/// could not be found.
pub fn report(project: Option<&Project>, store: Option<&Store>, flags: &Flags) -> Report {
    let mut errors = Vec::new();
    let user_path = user_config_path();
    let user = UserConfig::load().unwrap_or_else(|e| {
        errors.push(format!("{e:#}"));
        UserConfig::default()
    });
    let project_config = project.map(|p| {
        ProjectConfig::load(p.root()).unwrap_or_else(|e| {
            errors.push(format!("{e:#}"));
            ProjectConfig::default()
        })
    });
    let root = project.map(|p| p.root().to_path_buf());
    let files = vec![
        file("user config", user_path.clone()),
        file(
            "project config",
            root.as_ref().map(|r| r.join(PROJECT_CONFIG)),
        ),
        file("store", store.map(|s| s.root().to_path_buf())),
        file("lock file", project.map(Project::lock_path)),
        file(
            "mlld lock file",
            root.as_ref()
                .map(|r| r.join(mlld_schemas::mlld_files::MLLD_LOCK_NAME)),
        ),
        file(
            "mlld cache index",
            mlld_home().map(|h| h.join("cache/sha256/index.json")),
        ),
    ];
    let in_user = |set: bool| -> Option<String> {
        set.then(|| {
            format!(
                "config file {}",
                user_path.as_deref().unwrap_or(Path::new("?")).display()
            )
        })
    };
    let env = |var: &str| {
        std::env::var(var)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (v, format!("environment {var}")))
    };
    let pick = |name: &'static str,
                env_var: &str,
                config: Option<serde_json::Value>,
                default: serde_json::Value| {
        let (value, source) = match (env(env_var), config) {
            (Some((v, s)), _) => (serde_json::Value::String(v), s),
            (None, Some(v)) => (v, in_user(true).unwrap_or_default()),
            (None, None) => (default, "default".to_string()),
        };
        Setting {
            name,
            value,
            source,
        }
    };
    let mut settings = vec![pick(
        "registry",
        "MLLD_REGISTRY_URL",
        user.registry.clone().map(Into::into),
        serde_json::Value::Null,
    )];
    settings.push(match &flags.trusted_key {
        Some(path) => Setting {
            name: "trustedKeys",
            value: serde_json::json!([path]),
            source: "flag --trusted-key".into(),
        },
        None => pick(
            "trustedKeys",
            "MLLD_REGISTRY_KEY",
            (!user.trusted_keys.is_empty()).then(|| serde_json::json!(user.trusted_keys)),
            serde_json::json!([]),
        ),
    });
    settings.push(pick(
        "idleTimeout",
        "MLLD_REGISTRY_IDLE_TIMEOUT",
        user.idle_timeout.map(Into::into),
        20.into(),
    ));
    settings.push(pick(
        "minRate",
        "MLLD_REGISTRY_MIN_RATE",
        user.min_rate.map(Into::into),
        (16u64 << 10).into(),
    ));
    let project_stats = project_config.as_ref().and_then(|c| c.stats);
    settings.push(Setting {
        name: "stats",
        value: project_stats.unwrap_or(user.stats).into(),
        source: match (project_stats, &root) {
            (Some(_), Some(r)) => format!("config file {}", r.join(PROJECT_CONFIG).display()),
            _ => in_user(user.stats).unwrap_or_else(|| "default".into()),
        },
    });
    let mlld_lock = project_config.as_ref().and_then(|c| c.mlld_lock);
    settings.push(Setting {
        name: "mlldLock",
        value: mlld_lock.unwrap_or(true).into(),
        source: match (mlld_lock, &root) {
            (Some(_), Some(r)) => format!("config file {}", r.join(PROJECT_CONFIG).display()),
            _ => "default".into(),
        },
    });
    settings.push(Setting {
        name: "color",
        value: crate::color::choice_name().into(),
        source: crate::color::choice_source(),
    });
    Report {
        files,
        settings,
        errors,
    }
}

pub fn run(project: Option<&Project>, store: Option<&Store>, flags: &Flags) -> Result<ExitCode> {
    let report = report(project, store, flags);
    if flags.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    crate::outln!("files");
    for f in &report.files {
        let path = f.path.as_deref().map_or("(unknown)".into(), |p| {
            safe(&p.display().to_string()).into_owned()
        });
        let missing = if f.exists || f.path.is_none() {
            ""
        } else {
            "  (not there yet)"
        };
        crate::outln!("  {:<17} {path}{missing}", f.name);
    }
    crate::outln!("settings");
    for s in &report.settings {
        let value = match &s.value {
            serde_json::Value::String(v) => v.clone(),
            serde_json::Value::Null => "(none)".into(),
            v => v.to_string(),
        };
        crate::outln!("  {:<17} {}  ({})", s.name, safe(&value), safe(&s.source));
    }
    for e in &report.errors {
        crate::outln!("error: {}", mlld_schemas::terminal::terminal_safe_block(e));
    }
    Ok(ExitCode::SUCCESS)
}
