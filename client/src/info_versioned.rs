//! `info @author/name` for a versioned module: every version with its
//! date, the dist-tags, and per version needs, mlldVersion, license, files
//! and dependencies; advisories; where the project stands with it.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use mlld_schemas::{ModuleRef, VersionRecord, VersionedModule};
use serde::Serialize;

use crate::commands::safe;
use crate::context::Context;
use crate::project::CacheState;
use crate::versioned::VersionedIndex;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionedInfo {
    /// `@author/name`.
    pub name: String,
    pub author: String,
    pub module: String,
    pub about: String,
    pub owners: Vec<String>,
    pub maintainers: Vec<String>,
    pub created: Option<String>,
    /// Dist-tags to versions.
    pub tags: std::collections::BTreeMap<String, String>,
    /// What `latest` selects.
    pub latest: Option<String>,
    /// Every version in the snapshot, highest first.
    pub versions: Vec<VersionInfo>,
    pub advisories: Vec<crate::info::AdvisoryInfo>,
    pub project: VersionedProjectState,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    pub version: String,
    pub published_at: Option<String>,
    pub needs: Vec<String>,
    pub mlld_version: Option<String>,
    pub license: Option<String>,
    pub keywords: Vec<String>,
    pub source: String,
    pub entry: String,
    pub files: Vec<String>,
    pub size: u64,
    pub content_hash: String,
    pub integrity: String,
    pub dependencies: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionedProjectState {
    pub locked: bool,
    pub locked_version: Option<String>,
    pub requested: Option<String>,
    /// True when every file of the locked version is in `.mlld/cache/registry/` intact.
    pub cached: bool,
}

/// The versioned module `reference` names, when the snapshot has one: an
/// `@author/name` reference, or a bare `author/name` that no gist module
/// of the snapshot answers (as the README's `info user/module` promises
/// the gist module); never the Phase-1 form (`mlld://`).
pub fn find<'m>(
    index: &VersionedIndex<'m>,
    reference: &str,
) -> Result<Option<&'m VersionedModule>> {
    if reference.starts_with("mlld://") {
        return Ok(None);
    }
    let r = ModuleRef::parse(reference)?;
    let Some(m) = index.get(&r.user, &r.module)? else {
        return Ok(None);
    };
    if !reference.starts_with('@') && index.registry().module(&r.user, &r.module)?.is_some() {
        return Ok(None);
    }
    if let Some(pin) = &r.pin {
        bail!(
            "info shows every version the snapshot holds; give the module without `@{}` ({})",
            safe(pin),
            m.full_name()
        );
    }
    Ok(Some(m))
}

pub fn info(ctx: &Context, module: &VersionedModule) -> Result<VersionedInfo> {
    let advisories = ctx.registry()?.versioned_advisories(module)?;
    let key = module.full_name();
    let lock = ctx.project.read_lock()?;
    let entry = lock
        .modules
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&key))
        .map(|(k, e)| (k.clone(), e.clone()));
    let project = VersionedProjectState {
        locked: entry.is_some(),
        locked_version: entry.as_ref().map(|(_, e)| e.version.clone()),
        requested: entry.as_ref().map(|(_, e)| e.requested.clone()),
        cached: entry.as_ref().is_some_and(|(k, e)| {
            crate::versioned_cache::state(&ctx.project, k, e) == CacheState::Valid
        }),
    };
    Ok(VersionedInfo {
        name: key,
        author: module.author.clone(),
        module: module.name.clone(),
        about: module.about.clone(),
        owners: module.owners.clone(),
        maintainers: module.maintainers.clone(),
        created: module.created.clone(),
        tags: module.tags.clone(),
        latest: module.latest().map(|v| v.version.clone()),
        versions: module.versions.iter().map(version).collect(),
        advisories: advisories
            .iter()
            .map(|a| {
                let latest = module.latest();
                let affects = latest.is_none_or(|v| a.advisory.affects_version(&v.version));
                crate::info::advisory(a, crate::info::Layout::Versioned, affects)
            })
            .collect(),
        project,
    })
}

fn version(v: &VersionRecord) -> VersionInfo {
    VersionInfo {
        version: v.version.clone(),
        published_at: v.published_at.clone(),
        needs: v.needs.clone(),
        mlld_version: v.mlld_version.clone(),
        license: v.license.clone(),
        keywords: v.keywords.clone(),
        source: format!("{} {} @ {}", v.source.kind, v.source.url, v.source.commit),
        entry: v.entry.clone(),
        files: v.files.iter().map(|f| f.path.clone()).collect(),
        size: v.files.iter().map(|f| f.size).sum(),
        content_hash: v.content_hash.clone(),
        integrity: v.integrity.clone(),
        dependencies: v.dependencies.clone(),
    }
}

/// The readable form; registry text is cleaned of control characters.
pub fn render(info: &VersionedInfo) -> String {
    let mut out = String::new();
    let dash = |s: &Option<String>| s.as_deref().map_or("-".into(), |t| safe(t).into_owned());
    let list = |items: &[String]| {
        if items.is_empty() {
            "-".to_string()
        } else {
            safe(&items.join(", ")).into_owned()
        }
    };
    let _ = writeln!(out, "{}", safe(&info.name));
    let _ = writeln!(out, "  {}\n", safe(&info.about));
    let tags: Vec<String> = info
        .tags
        .iter()
        .map(|(t, v)| format!("{t} → {v}"))
        .collect();
    for (label, value) in [
        ("author", safe(&info.author).into_owned()),
        ("owners", list(&info.owners)),
        ("created", dash(&info.created)),
        ("latest", dash(&info.latest)),
        ("dist-tags", list(&tags)),
    ] {
        let _ = writeln!(out, "{label:<13}{value}");
    }
    let _ = writeln!(out, "versions     (highest first)");
    for v in &info.versions {
        let _ = writeln!(
            out,
            "  {:<14} {}  needs {}  mlld {}  license {}  {} file(s), {} bytes",
            safe(&v.version),
            dash(&v.published_at),
            list(&v.needs),
            dash(&v.mlld_version),
            dash(&v.license),
            v.files.len(),
            v.size
        );
        if !v.dependencies.is_empty() {
            let merged = one_entry_a_module(&v.dependencies);
            let _ = writeln!(out, "  {:<14} dependencies {}", "", list(&merged));
        }
    }
    if info.advisories.is_empty() {
        let _ = writeln!(out, "advisories   none");
    }
    for a in &info.advisories {
        let _ = writeln!(
            out,
            "ADVISORY     {}/{} [{}] {}: {}\n  {}",
            safe(&a.filed_by),
            safe(&a.id),
            a.severity,
            safe(&a.kind),
            safe(&a.description),
            crate::info::scope_line(a, crate::info::Layout::Versioned)
        );
    }
    let p = &info.project;
    let _ = match (&p.locked_version, &p.requested) {
        (Some(v), Some(r)) => writeln!(
            out,
            "project      locked at {v} (asked: {}), {}",
            safe(r),
            if p.cached {
                "cached"
            } else {
                "not cached: run `mlld-registry install`"
            }
        ),
        _ => writeln!(out, "project      not locked"),
    };
    out
}

/// A version's dependencies, one entry a module where that reads true:
/// the range its version file declares and the one its entry file
/// imports with (`^2.0` and `^2.0.0`) both hold, which npm's range syntax
/// spells with a space (`@bob/y@^2.0 ^2.0.0`). Ranges joined by `||`,
/// tags and anything else that is no plain range stay entries of their
/// own; a module named without a range adds none.
fn one_entry_a_module(dependencies: &[String]) -> Vec<String> {
    let mut modules: Vec<(&str, Vec<&str>)> = Vec::new();
    for dependency in dependencies {
        // `@author/name@range`, split as `ModuleRef::parse` does.
        let (module, range) = match dependency.get(1..).and_then(|rest| rest.find('@')) {
            Some(at) => (&dependency[..at + 1], Some(&dependency[at + 2..])),
            None => (dependency.as_str(), None),
        };
        let position = match modules.iter().position(|(m, _)| *m == module) {
            Some(p) => p,
            None => {
                modules.push((module, Vec::new()));
                modules.len() - 1
            }
        };
        let ranges = &mut modules[position].1;
        if let Some(range) = range.filter(|r| !ranges.contains(r)) {
            ranges.push(range);
        }
    }
    let plain = |r: &&str| !r.contains("||") && mlld_schemas::version_spec::parse_range(r).is_ok();
    let mut out = Vec::new();
    for (module, ranges) in modules {
        match ranges.as_slice() {
            [] => out.push(module.to_string()),
            many if many.iter().all(plain) => out.push(format!("{module}@{}", many.join(" "))),
            many => out.extend(many.iter().map(|r| format!("{module}@{r}"))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::one_entry_a_module;

    #[test]
    fn a_module_named_twice_is_listed_once_with_every_range() {
        // (the dependencies as recorded, as `info` lists them)
        let cases: [(&[&str], &[&str]); 5] = [
            (
                &["@bob/y@^2.0", "@bob/y@^2.0.0", "@ann/x", "@bob/y@^2.0"],
                &["@bob/y@^2.0 ^2.0.0", "@ann/x"],
            ),
            (&["@cy/z@>=1.2.0 <2.0.0"], &["@cy/z@>=1.2.0 <2.0.0"]),
            // An alternative or a tag is no plain range to join.
            (
                &["@dee/w@^1 || ^2", "@dee/w@^2.1"],
                &["@dee/w@^1 || ^2", "@dee/w@^2.1"],
            ),
            (
                &["@eve/v@latest", "@eve/v@^1.0.0"],
                &["@eve/v@latest", "@eve/v@^1.0.0"],
            ),
            (&["@", "@é@^1"], &["@", "@é@^1"]),
        ];
        for (recorded, listed) in cases {
            let recorded: Vec<String> = recorded.iter().map(|d| d.to_string()).collect();
            assert_eq!(one_entry_a_module(&recorded), listed, "{recorded:?}");
        }
    }
}
