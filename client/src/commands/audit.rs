//! `audit [--severity LEVEL]`: match every lock entry against the snapshot's
//! advisories. Exit 1 when one at or above the threshold applies and is not
//! ignored in the project config, 0 when clean.

use std::process::ExitCode;

use anyhow::Result;
use mlld_schemas::lock::parse_resolved;
use mlld_schemas::{AdvisoryRecord, ModuleRef, Severity, names};

use crate::advisory_fix;
use crate::commands::{FINDING, exit, print_json, safe, short};
use crate::context::Context;
use crate::lock_graph::{LockGraph, display_name, render_path};
use crate::output::count;
use crate::pins::{self, SourcePins};
use crate::resolve::Lookup;
use crate::versioned::VersionedIndex;
use crate::workflow::is_registry_import;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  mlld-registry audit\n  mlld-registry audit --severity high --json\n\nExit codes: 0 clean, 1 an advisory at or above the threshold applies, 2 error.\nIgnore an advisory in .mlld/config.json:\n  {\"audit\": {\"ignore\": [{\"advisory\": \"sarah-k/2024-001\", \"reason\": \"why it does not apply\"}]}}"
)]
pub struct Args {
    /// The lowest severity that fails the audit: low, medium, high or critical.
    #[arg(long, value_name = "LEVEL", default_value = "low", ignore_case = true, value_parser = severity_parser())]
    pub severity: Severity,
}

/// The levels as clap's possible values, so that completions offer them.
fn severity_parser() -> impl clap::builder::TypedValueParser<Value = Severity> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(["low", "medium", "high", "critical"])
        .try_map(|s| s.parse::<Severity>())
}

pub use mlld_schemas::output::{AuditReport, Finding};

/// Whether `a` affects the module `user/name` registered with `gist`.
pub fn affects(a: &AdvisoryRecord, user: &str, name: &str, gist: &str) -> bool {
    (names::same_user(&a.user, user) && a.advisory.affects.iter().any(|m| m == name))
        || a.advisory.gists.iter().any(|g| g == gist)
}

pub fn run(ctx: &Context, args: &Args) -> Result<ExitCode> {
    let report = audit(ctx, args.severity)?;
    if ctx.json {
        print_json(&report)?;
    } else {
        for f in &report.findings {
            let tag = match &f.ignored {
                Some(reason) => format!(" (ignored: {})", safe(reason)),
                None => String::new(),
            };
            crate::outln!(
                "{} {:<24} {} @ {}  {}{tag}\n          {}\n          fix: {}\n          path: {}\n          {}",
                severity_label(f.severity),
                safe(&f.advisory),
                safe(&f.import),
                safe(
                    f.version
                        .as_deref()
                        .or(f.gist_revision.as_deref().map(short))
                        .unwrap_or("")
                ),
                safe(&f.kind),
                safe(&f.description),
                safe(&f.recommendation),
                safe(&render_path(&f.path)),
                fix_line(f)
            );
        }
        crate::outln!(
            "{} checked against snapshot serial {}: {} at or above {} {}{}",
            count(report.modules, "locked module", "locked modules"),
            report.snapshot_serial,
            count(report.failing, "advisory", "advisories"),
            report.threshold.as_str(),
            if report.failing == 1 {
                "applies"
            } else {
                "apply"
            },
            match report.findings.len() - report.failing {
                0 => String::new(),
                n => format!(" ({n} ignored)"),
            }
        );
        if let Some(expires) = &report.expired {
            crate::outln!(
                "the snapshot expired at {}: its advisories may be stale (advisories published since are missing); run `mlld-registry sync`",
                safe(expires)
            );
        }
    }
    Ok(if report.failing > 0 {
        exit(FINDING)
    } else {
        ExitCode::SUCCESS
    })
}

/// Whether and how the finding can be fixed, for the table.
fn fix_line(f: &Finding) -> String {
    let name = display_name(&f.import);
    let patched = f
        .patched_versions
        .as_deref()
        .map(|p| format!(" (patched: {})", safe(p)))
        .unwrap_or_default();
    let Some(fix) = &f.fix else {
        let what = if f.version.is_some() {
            "version"
        } else {
            "revision"
        };
        return format!("no fixed {what} in this snapshot yet{patched}");
    };
    let to = match (&fix.version, &fix.revision) {
        (Some(v), _) => safe(v).into_owned(),
        (None, Some(r)) => short(r).to_string(),
        (None, None) => String::new(),
    };
    if fix.by_update {
        format!(
            "fixed in {to}{patched}: run `mlld-registry update {}`",
            safe(name)
        )
    } else {
        format!(
            "fixed in {to}{patched}, outside what the project asks for: change the pin, then run `mlld-registry update {}`",
            safe(name)
        )
    }
}

/// The severity, padded for the table, in its colour when colour is on.
fn severity_label(severity: Severity) -> String {
    let code = crate::color::severity_code(severity);
    crate::color::paint(&format!("{:<9}", severity.as_str()), code)
}

pub fn audit(ctx: &Context, threshold: Severity) -> Result<AuditReport> {
    let ignores = ctx.project_config()?.audit.ignore.clone();
    let lock = ctx.project.read_lock()?;
    let registry = ctx.registry()?;
    let expired = ctx.require_fresh("audit")?;
    let lookup = Lookup::new(registry);
    let index = VersionedIndex::new(registry);
    let graph = LockGraph::new(&lock, &lookup, &index);
    // A fix "by update" is where `update` would move the module: within
    // the pins in the sources. Sources that cannot be read count as no pins;
    // pins that contradict each other (which `update` refuses) leave no fix
    // by update, only one outside them. Either way the audit still reports.
    let pins = SourcePins::scan(ctx, &lock, &lookup, &index).unwrap_or_default();
    let mut findings = Vec::new();
    let mut modules = 0;
    for (import, entry) in lock.imports.iter().filter(|(k, _)| is_registry_import(k)) {
        modules += 1;
        let r = ModuleRef::parse(import)?;
        let gist = parse_resolved(&entry.resolved).map_or("", |(_, g)| g);
        let module = lookup.get(&r.user, &r.module)?;
        for a in registry.advisories_near(&r.user, &r.module)? {
            if a.advisory.severity < threshold
                || !affects(a, &r.user, &r.module, gist)
                || !advisory_fix::revision_affected(&a.advisory, module, &entry.gist_revision)
            {
                continue;
            }
            let mut f = finding(a, import, &ignores, graph.path_to(import));
            f.gist_revision = Some(entry.gist_revision.clone());
            // Version ranges say nothing about gist revisions.
            f.patched_versions = None;
            f.fix = module.and_then(|m| {
                let wanted = pins::wanted_revision(m, pins.of(import)).ok();
                advisory_fix::for_revision(&a.advisory, m, wanted, &entry.gist_revision)
            });
            findings.push(f);
        }
    }
    // Advisories in `{author}/advisories.json` naming a versioned module
    // affect the versions their ranges name (every version without one).
    for (key, entry) in &lock.modules {
        modules += 1;
        let r = ModuleRef::parse(key)?;
        let module = index.get(&r.user, &r.module)?;
        for a in registry.advisories_near(&r.user, &r.module)? {
            if a.advisory.severity < threshold
                || !affects(a, &r.user, &r.module, "")
                || !a.advisory.affects_version(&entry.version)
            {
                continue;
            }
            let mut f = finding(a, key, &ignores, graph.path_to(key));
            f.version = Some(entry.version.clone());
            f.fix = module.and_then(|m| {
                let wanted = pins::wanted_version(m, &entry.requested, pins.of(key)).ok();
                advisory_fix::for_version(&a.advisory, m, &entry.version, wanted.map(|w| w.0))
            });
            findings.push(f);
        }
    }
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.import.cmp(&b.import))
    });
    let failing = findings.iter().filter(|f| f.ignored.is_none()).count();
    Ok(AuditReport {
        threshold,
        snapshot_serial: registry.serial(),
        modules,
        findings,
        failing,
        expired: expired.map(|e| e.expires),
    })
}

fn finding(
    a: &AdvisoryRecord,
    import: &str,
    ignores: &[crate::config::IgnoredAdvisory],
    path: Vec<String>,
) -> Finding {
    let id = format!("{}/{}", a.user, a.advisory.id);
    Finding {
        import: import.to_string(),
        gist_revision: None,
        version: None,
        path,
        patched_versions: a.advisory.patched_versions.clone(),
        fix: None,
        ignored: ignores
            .iter()
            .find(|i| i.advisory.eq_ignore_ascii_case(&id))
            .map(|i| i.reason.clone()),
        advisory: id,
        severity: a.advisory.severity,
        kind: a.advisory.kind.clone(),
        description: a.advisory.description.clone(),
        recommendation: a.advisory.recommendation.clone(),
    }
}
