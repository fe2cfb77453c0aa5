//! `mlld-registry info user/module`: everything the snapshot knows about one
//! module, and where the current project stands with it.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use mlld_schemas::import_ref::ModuleRef;
use mlld_schemas::{AdvisoryRecord, ModuleRecord, RevisionRecord};
use serde::Serialize;

use crate::commands::safe;
use crate::context::Context;
use crate::project::CacheState;
use crate::registry::Registry;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleInfo {
    /// `user/module`.
    pub name: String,
    pub author: String,
    pub module: String,
    pub description: String,
    pub tags: Vec<String>,
    pub gist: String,
    pub created: Option<String>,
    pub updated: Option<String>,
    pub current: Revision,
    /// Every revision the snapshot holds, current first.
    pub revisions: Vec<Revision>,
    pub dependencies: Vec<String>,
    /// Modules whose current revision imports this one.
    pub dependents: Vec<String>,
    pub advisories: Vec<AdvisoryInfo>,
    pub project: ProjectState,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    pub revision: String,
    pub committed_at: Option<String>,
    pub file: String,
    pub integrity: String,
    pub size: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdvisoryInfo {
    /// The user whose advisories.json filed it.
    pub filed_by: String,
    pub id: String,
    pub severity: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created: String,
    pub description: String,
    pub recommendation: String,
    /// What the advisory names: "revisions 996153b", "versions <1.1.0", …;
    /// `None` when it names no range (every revision or version).
    pub scope: Option<String>,
    /// Whether it affects the module's current revision (a gist module) or
    /// the version `latest` selects (a versioned one).
    pub affects_current: bool,
}

/// The project's lock entry and cache for the module.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectState {
    pub locked: bool,
    pub locked_revision: Option<String>,
    /// True when the locked revision's content and metadata are in `.mlld/cache/` intact.
    pub cached: bool,
}

/// Looks `reference` up in the snapshot `ctx` reads.
pub fn info(ctx: &Context, reference: &str) -> Result<ModuleInfo> {
    let reference = ModuleRef::parse(reference)?;
    if let Some(pin) = &reference.pin {
        bail!(
            "info shows every revision the snapshot holds; give the module without `@{pin}` ({})",
            reference.full_name()
        );
    }
    let registry = ctx.registry()?;
    let module = registry.find(&reference)?;
    let import = ModuleRef {
        user: module.user.clone(),
        module: module.name.clone(),
        pin: None,
    }
    .import_path();
    let lock = ctx.project.read_lock()?;
    let project = match lock.imports.get(&import) {
        Some(entry) => ProjectState {
            locked: true,
            locked_revision: Some(entry.gist_revision.clone()),
            cached: ctx.project.cache_state(
                &module.user,
                &module.gist,
                &entry.gist_revision,
                &entry.integrity,
            ) == CacheState::Valid,
        },
        None => ProjectState {
            locked: false,
            locked_revision: None,
            cached: false,
        },
    };
    describe(registry, module, project)
}

fn describe(
    registry: &Registry,
    module: &ModuleRecord,
    project: ProjectState,
) -> Result<ModuleInfo> {
    let full_name = module.full_name();
    let dependents = registry.dependents(&module.user, &module.name)?.to_vec();
    let advisories = registry.advisories_for(module)?;
    Ok(ModuleInfo {
        author: module.user.clone(),
        module: module.name.clone(),
        description: module.description.clone(),
        tags: module.tags.clone(),
        gist: module.gist.clone(),
        created: module.created.clone(),
        updated: module.updated.clone(),
        current: revision(&module.current),
        revisions: module.revisions().map(revision).collect(),
        dependencies: module.current.dependencies.clone(),
        dependents,
        advisories: advisories
            .iter()
            .map(|a| {
                let current = &module.current;
                let affects = (a.advisory)
                    .affects_revision(&current.revision, current.committed_at.as_deref());
                advisory(a, Layout::Gist, affects)
            })
            .collect(),
        project,
        name: full_name,
    })
}

/// `user/module` names compare with the user case-insensitively.
fn revision(r: &RevisionRecord) -> Revision {
    Revision {
        revision: r.revision.clone(),
        committed_at: r.committed_at.clone(),
        file: r.file.clone(),
        integrity: r.integrity.clone(),
        size: r.size,
    }
}

pub(crate) fn advisory(a: &AdvisoryRecord, layout: Layout, affects_current: bool) -> AdvisoryInfo {
    AdvisoryInfo {
        scope: scope(&a.advisory, layout),
        affects_current,
        filed_by: a.user.clone(),
        id: a.advisory.id.clone(),
        severity: a.advisory.severity.as_str().to_string(),
        kind: a.advisory.kind.clone(),
        created: a.advisory.created.clone(),
        description: a.advisory.description.clone(),
        recommendation: a.advisory.recommendation.clone(),
    }
}

/// Which layout a module is in: an advisory's revision ranges apply to gist
/// modules, its version ranges to versioned ones.
#[derive(Clone, Copy)]
pub(crate) enum Layout {
    Gist,
    Versioned,
}

/// The ranges of an advisory that apply to a module of `layout`, in words;
/// `None` when it names none (then every revision or version).
fn scope(a: &mlld_schemas::Advisory, layout: Layout) -> Option<String> {
    let mut parts = Vec::new();
    match layout {
        Layout::Gist => {
            if !a.affected_revisions.is_empty() {
                parts.push(format!("revisions {}", a.affected_revisions.join(", ")));
            }
            if let Some(before) = &a.before {
                parts.push(format!("revisions committed before {before}"));
            }
        }
        Layout::Versioned => {
            if let Some(v) = &a.affected_versions {
                parts.push(format!("versions {v}"));
            }
            if let Some(v) = &a.patched_versions {
                parts.push(format!("not versions {v} (patched)"));
            }
        }
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Where an advisory applies, for the readable output.
pub(crate) fn scope_line(a: &AdvisoryInfo, layout: Layout) -> String {
    let (every, current) = match layout {
        Layout::Gist => ("every revision", "current revision"),
        Layout::Versioned => ("every version", "latest version"),
    };
    let scope = a.scope.as_deref().unwrap_or(every);
    let current = if a.affects_current {
        format!("including the {current}")
    } else {
        format!("not the {current}")
    };
    format!("affects {}: {current}", safe(scope))
}

/// The readable form of [`ModuleInfo`]. Registry text is cleaned of control characters.
pub fn render(info: &ModuleInfo) -> String {
    let mut out = String::new();
    let none = || "-".to_string();
    let list = |items: &[String]| {
        if items.is_empty() {
            none()
        } else {
            safe(&items.join(", ")).into_owned()
        }
    };
    let _ = writeln!(out, "{}", safe(&info.name));
    let _ = writeln!(out, "  {}", safe(&info.description));
    let _ = writeln!(out);
    for (label, value) in [
        ("author", safe(&info.author).into_owned()),
        ("tags", list(&info.tags)),
        ("gist", info.gist.clone()),
        ("created", info.created.clone().unwrap_or_else(none)),
        ("updated", info.updated.clone().unwrap_or_else(none)),
        ("file", safe(&info.current.file).into_owned()),
        (
            "size",
            crate::output::count(info.current.size, "byte", "bytes"),
        ),
        ("integrity", info.current.integrity.clone()),
        ("dependencies", list(&info.dependencies)),
        ("dependents", list(&info.dependents)),
    ] {
        // Every value is registry text (dates and digests too, until checked).
        let _ = writeln!(out, "{label:<13}{}", safe(&value));
    }
    let _ = writeln!(out, "revisions    (current first)");
    for r in &info.revisions {
        let when = r.committed_at.as_deref().unwrap_or("date unknown");
        let current = if r.revision == info.current.revision {
            "  current"
        } else {
            ""
        };
        let (revision, when) = (safe(&r.revision), safe(when));
        let _ = writeln!(out, "  {revision}  {when}{current}");
    }
    if info.advisories.is_empty() {
        let _ = writeln!(out, "advisories   none");
    }
    for a in &info.advisories {
        let _ = writeln!(
            out,
            "ADVISORY     {} {} {} (filed by {} on {})\n  {}\n  recommendation: {}\n  {}",
            safe(&a.id),
            a.severity.to_uppercase(),
            safe(&a.kind),
            safe(&a.filed_by),
            safe(&a.created),
            safe(&a.description),
            safe(&a.recommendation),
            scope_line(a, Layout::Gist)
        );
    }
    let project = match (&info.project.locked_revision, info.project.cached) {
        (Some(rev), true) => format!("locked at {rev}, cached"),
        (Some(rev), false) => {
            format!("locked at {rev}, NOT cached (run `mlld-registry install`)")
        }
        (None, _) => "not locked in this project".to_string(),
    };
    let _ = writeln!(out, "project      {}", safe(&project));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlld_schemas::Manifest;

    fn rev(id: char, date: &str) -> RevisionRecord {
        RevisionRecord {
            revision: id.to_string().repeat(40),
            committed_at: Some(date.into()),
            file: "m.mld".into(),
            integrity: format!("sha256:{}", "e".repeat(64)),
            size: 10,
            files: Vec::new(),
            dependencies: Vec::new(),
        }
    }

    #[test]
    fn history_dependents_and_advisories_are_shown() {
        let mut module: ModuleRecord = serde_json::from_value(serde_json::json!({
            "user": "Ann", "name": "m", "gist": "a1f3e09a42db6c680b454f6f93efa9d8",
            "description": "desc\u{1b}[2J", "tags": ["t"],
            "revision": "a".repeat(40), "file": "m.mld",
            "integrity": format!("sha256:{}", "e".repeat(64)), "size": 10,
            "files": [], "dependencies": []
        }))
        .unwrap();
        module.current = rev('c', "2024-03-01T00:00:00Z");
        module.history = vec![
            rev('b', "2024-02-01T00:00:00Z"),
            rev('a', "2024-01-01T00:00:00Z"),
        ];
        let mut user = module.clone();
        user.user = "zed".into();
        user.name = "uses-m".into();
        user.current.dependencies = vec!["ann/m".into()];
        let manifest: Manifest = serde_json::from_value(serde_json::json!({
            "formatVersion": 1, "serial": 1, "created": "2024-01-01T00:00:00Z",
            "expires": "2099-01-01T00:00:00Z", "modules": [], "advisories": [
                { "user": "ann", "id": "1", "created": "2024-01-01T00:00:00Z", "severity": "medium",
                  "affects": ["m"], "gists": [], "type": "bug", "description": "d", "recommendation": "r" }
            ], "members": {}
        }))
        .unwrap();
        let manifest = Manifest {
            modules: vec![module.clone(), user],
            ..manifest
        };
        let project = ProjectState {
            locked: true,
            locked_revision: Some("b".repeat(40)),
            cached: false,
        };
        let registry = Registry::from_manifest(manifest);
        let info = describe(&registry, &module, project).unwrap();
        assert_eq!(info.dependents, ["zed/uses-m"]);
        assert_eq!(info.revisions.len(), 3);
        assert_eq!(info.advisories[0].severity, "medium");
        let text = render(&info);
        assert!(
            text.contains(&format!(
                "  {}  2024-03-01T00:00:00Z  current\n",
                "c".repeat(40)
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("  {}  2024-01-01T00:00:00Z\n", "a".repeat(40))),
            "{text}"
        );
        assert!(
            text.contains("ADVISORY     1 MEDIUM bug (filed by ann"),
            "{text}"
        );
        assert!(text.contains("NOT cached"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(
            text.contains("affects every revision: including the current revision"),
            "{text}"
        );
    }

    #[test]
    fn an_advisory_says_which_revisions_it_names_and_whether_the_current_is_one() {
        let mut module: ModuleRecord = serde_json::from_value(serde_json::json!({
            "user": "ann", "name": "m", "gist": "a1f3e09a42db6c680b454f6f93efa9d8",
            "description": "d", "tags": [], "revision": "a".repeat(40), "file": "m.mld",
            "integrity": format!("sha256:{}", "e".repeat(64)), "size": 10,
            "files": [], "dependencies": []
        }))
        .unwrap();
        module.current = rev('c', "2024-03-01T00:00:00Z");
        module.history = vec![rev('b', "2024-02-01T00:00:00Z")];
        let advisory = |revision: &str| {
            serde_json::json!({ "user": "ann", "id": revision, "created": "2024-01-01T00:00:00Z",
              "severity": "low", "affects": ["m"], "gists": [], "type": "bug",
              "description": "d", "recommendation": "r", "affectedRevisions": [revision] })
        };
        let manifest: Manifest = serde_json::from_value(serde_json::json!({
            "formatVersion": 1, "serial": 1, "created": "2024-01-01T00:00:00Z",
            "expires": "2099-01-01T00:00:00Z", "modules": [],
            "advisories": [advisory("bbbbbbb"), advisory("ccccccc")], "members": {}
        }))
        .unwrap();
        let manifest = Manifest {
            modules: vec![module.clone()],
            ..manifest
        };
        let project = ProjectState {
            locked: false,
            locked_revision: None,
            cached: false,
        };
        let info = describe(&Registry::from_manifest(manifest), &module, project).unwrap();
        let by_id = |id: &str| info.advisories.iter().find(|a| a.id == id).unwrap();
        assert!(!by_id("bbbbbbb").affects_current);
        assert!(by_id("ccccccc").affects_current);
        assert_eq!(by_id("bbbbbbb").scope.as_deref(), Some("revisions bbbbbbb"));
        let text = render(&info);
        assert!(
            text.contains("affects revisions bbbbbbb: not the current revision"),
            "{text}"
        );
        assert!(
            text.contains("affects revisions ccccccc: including the current revision"),
            "{text}"
        );
    }
}
