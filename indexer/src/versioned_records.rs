//! Accepted versions grouped into the manifest's `versioned` modules:
//! versions highest first, dist-tags that name accepted versions only,
//! and each version's module dependencies.

use std::collections::{BTreeMap, BTreeSet};

use mlld_schemas::Diagnostic;
use mlld_schemas::import_ref::ModuleRef;
use mlld_schemas::snapshot_versioned::VersionedModule;
use mlld_schemas::version_spec::parse_version;
use mlld_schemas::versioned::check_tags;

use crate::module_names::ModuleNames;
use crate::versioned_assemble::IndexedVersion;
use crate::versioned_load::LoadedModule;

/// What grouping found besides the modules.
#[derive(Default)]
pub struct Grouped {
    /// Sorted by author, then name.
    pub modules: Vec<VersionedModule>,
    /// Problems in `tags.json` files (tags naming no accepted version).
    pub diagnostics: Vec<Diagnostic>,
    /// (`@author/name@version`, reference) of dependencies that name no module in the snapshot.
    pub unresolved: Vec<(String, String)>,
    /// Names registered in both layouts: `author/name`.
    pub overlaps: Vec<String>,
}

/// Groups `accepted` by module. `phase1` are the accepted gist modules, for
/// dependency links and the overlap warning.
pub fn group(
    loaded: &[LoadedModule],
    accepted: Vec<IndexedVersion>,
    phase1: &ModuleNames,
) -> Grouped {
    let mut out = Grouped::default();
    let mut by_module: BTreeMap<(String, String), Vec<IndexedVersion>> = BTreeMap::new();
    for v in accepted {
        by_module
            .entry((v.author.clone(), v.name.clone()))
            .or_default()
            .push(v);
    }
    let versioned: BTreeSet<(String, String)> = by_module
        .keys()
        .map(|(a, n)| (a.to_ascii_lowercase(), n.clone()))
        .collect();
    let known = |(user, name): &(String, String)| {
        versioned.contains(&(user.clone(), name.clone())) || phase1.find(user, name).is_some()
    };
    for module in loaded {
        let Some(mut versions) = by_module.remove(&(module.author.clone(), module.name.clone()))
        else {
            continue;
        };
        versions.sort_by(|a, b| {
            let (va, vb) = (
                parse_version(&a.record.version),
                parse_version(&b.record.version),
            );
            match (va, vb) {
                (Ok(va), Ok(vb)) => vb.cmp(&va),
                _ => b.record.version.cmp(&a.record.version),
            }
        });
        let own = (module.author.to_ascii_lowercase(), module.name.clone());
        if phase1.find(&own.0, &own.1).is_some() {
            out.overlaps
                .push(format!("{}/{}", module.author, module.name));
        }
        let names: Vec<String> = versions.iter().map(|v| v.record.version.clone()).collect();
        let tags = match &module.tags {
            Some((file, text)) => {
                let checked = check_tags(file, text, &names);
                out.diagnostics.extend(checked.diagnostics);
                checked.value.unwrap_or_default()
            }
            None => BTreeMap::new(),
        };
        let mut records = Vec::with_capacity(versions.len());
        for v in versions {
            let mut record = v.record;
            let mut deps = BTreeSet::new();
            let at = format!("{}@{}", module.full_name(), record.version);
            let mut note = |reference: String| out.unresolved.push((at.clone(), reference));
            let declared = v.version_dependencies;
            for (key, range) in declared {
                // Runtime keys (`node`, `python`) are not modules.
                let Some(reference) = key
                    .strip_prefix('@')
                    .and_then(|_| ModuleRef::parse(&key).ok())
                else {
                    continue;
                };
                let range = range
                    .as_str()
                    .map(str::trim)
                    .filter(|r| !r.is_empty() && *r != "*");
                let dep = match range {
                    Some(r) => format!("@{}/{}@{r}", reference.user, reference.module),
                    None => format!("@{}/{}", reference.user, reference.module),
                };
                link(&known, &own, &reference, dep, &mut deps, &mut note);
            }
            for reference in v.imports {
                let dep = reference.to_string();
                link(&known, &own, &reference, dep, &mut deps, &mut note);
            }
            record.dependencies = deps.into_iter().collect();
            records.push(record);
        }
        let meta = module.metadata.clone().unwrap_or_default();
        out.modules.push(VersionedModule {
            author: module.author.clone(),
            name: module.name.clone(),
            about: meta.about,
            owners: meta.owners,
            maintainers: meta.maintainers,
            created: meta.created,
            tags,
            versions: records,
        });
    }
    out.modules
        .sort_by(|a, b| (&a.author, &a.name).cmp(&(&b.author, &b.name)));
    out
}

fn link(
    known: &impl Fn(&(String, String)) -> bool,
    own: &(String, String),
    reference: &ModuleRef,
    dep: String,
    deps: &mut BTreeSet<String>,
    note: &mut impl FnMut(String),
) {
    let key = (
        reference.user.to_ascii_lowercase(),
        reference.module.clone(),
    );
    if key == *own {
        return;
    }
    if known(&key) {
        deps.insert(dep);
    } else {
        note(dep);
    }
}

#[cfg(test)]
mod tests {
    use mlld_schemas::snapshot_versioned::{SourceRecord, VersionRecord};

    use super::*;
    use crate::versioned_load::LoadedModule;

    fn version(version: &str, deps: serde_json::Value, imports: &[&str]) -> IndexedVersion {
        IndexedVersion {
            author: "ann".into(),
            name: "x".into(),
            record: VersionRecord {
                version: version.into(),
                published_at: None,
                published_by: None,
                needs: Vec::new(),
                license: None,
                mlld_version: None,
                kind: None,
                keywords: Vec::new(),
                repo: None,
                bugs: None,
                homepage: None,
                source: SourceRecord {
                    kind: "github".into(),
                    url: String::new(),
                    repository: None,
                    commit: String::new(),
                    path: String::new(),
                },
                content_hash: String::new(),
                entry: "x.mld".into(),
                integrity: String::new(),
                size: 0,
                files: Vec::new(),
                dependencies: Vec::new(),
            },
            imports: imports
                .iter()
                .map(|i| ModuleRef::parse(i).unwrap())
                .collect(),
            version_dependencies: serde_json::from_value(deps).unwrap(),
            reused: false,
        }
    }

    #[test]
    fn versions_sort_highest_first_tags_name_accepted_versions_and_runtimes_are_not_modules() {
        let loaded = [
            LoadedModule {
                author: "ann".into(),
                name: "x".into(),
                metadata: None,
                tags: Some((
                    "modules/ann/x/tags.json".into(),
                    r#"{"latest":"1.10.0","beta":"2.0.0-rc.1","gone":"0.9.0"}"#.into(),
                )),
                versions: Vec::new(),
            },
            LoadedModule {
                author: "bob".into(),
                name: "y".into(),
                metadata: None,
                tags: None,
                versions: Vec::new(),
            },
        ];
        let mut y = version("1.0.0", serde_json::json!({}), &[]);
        y.author = "bob".into();
        y.name = "y".into();
        let accepted = vec![
            version("1.9.0", serde_json::json!({}), &[]),
            version(
                "1.10.0",
                serde_json::json!({"@bob/y": "^1.0.0", "node": {}, "@nobody/z": "*"}),
                &["@bob/y@^1", "@ann/x", "@gist-user/mod"],
            ),
            version("2.0.0-rc.1", serde_json::json!({}), &[]),
            y,
        ];
        let grouped = group(&loaded, accepted, &ModuleNames::default());
        let x = &grouped.modules[0];
        assert_eq!(x.version_names(), ["2.0.0-rc.1", "1.10.0", "1.9.0"]);
        assert_eq!(x.tags.keys().collect::<Vec<_>>(), ["beta", "latest"]);
        assert_eq!(
            grouped.diagnostics.len(),
            1,
            "`gone` names no accepted version"
        );
        assert_eq!(x.versions[1].dependencies, ["@bob/y@^1", "@bob/y@^1.0.0"]);
        assert_eq!(
            grouped.unresolved,
            [
                ("@ann/x@1.10.0".to_string(), "@nobody/z".to_string()),
                ("@ann/x@1.10.0".to_string(), "@gist-user/mod".to_string()),
            ]
        );
        assert!(grouped.overlaps.is_empty());
    }
}
