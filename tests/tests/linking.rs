//! Imports become dependencies when they name an accepted module, and are
//! reported as unresolved otherwise: the crawl links each record as it
//! comes against every registered name, and links again only when a
//! record names a module that was then rejected.

use std::path::Path;

use mlld_e2e::{build_from, build_time, copy_dir, demo_key, examples};

/// The examples' recorded gists, with `json-utils` (which imports
/// `@textkit/string-case`) also importing each of `more`.
fn gists_importing(dir: &Path, more: &[&str]) -> std::path::PathBuf {
    let gists = dir.join("gists");
    copy_dir(&examples().join("gists"), &gists);
    let path = gists.join("a1f3e09a42db6c680b454f6f93efa9d8.json");
    let mut gist: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let file = &mut gist["files"]["json-utils.mld"];
    let mut content = file["content"].as_str().unwrap().to_string();
    for (i, module) in more.iter().enumerate() {
        content.push_str(&format!("\n/import {{ @extra{i} }} from @{module}\n"));
    }
    file["size"] = content.len().into();
    file["content"] = content.into();
    std::fs::write(&path, serde_json::to_vec(&gist).unwrap()).unwrap();
    gists
}

/// `json-utils`'s dependencies and the unresolved imports, after a build
/// with `more` imported too.
fn linked(more: &[&str]) -> (Vec<String>, Vec<(String, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let gists = gists_importing(dir.path(), more);
    let registry = examples().join("registry");
    let out = dir.path().join("site");
    let site = build_from(&out, None, build_time(), demo_key(), &registry, &gists);
    let rejected: Vec<&str> = (site.report.modules_rejected.iter())
        .map(|r| r.module.as_str())
        .collect();
    assert!(rejected.contains(&"jdoe/quick-helpers"), "{rejected:?}");
    let manifest = mlld_e2e::verify_site(&out);
    let json_utils = manifest.find("adamavenir", "json-utils").unwrap();
    (
        json_utils.current.dependencies.clone(),
        site.report.unresolved_imports.clone(),
    )
}

/// The references `json-utils` makes that name no accepted module.
fn unresolved_of_json_utils(unresolved: &[(String, String)]) -> Vec<&str> {
    (unresolved.iter())
        .filter(|(module, _)| module == "adamavenir/json-utils")
        .map(|(_, reference)| reference.as_str())
        .collect()
}

#[test]
fn an_import_of_an_unregistered_module_is_unresolved() {
    let (deps, unresolved) = linked(&["nobody/missing", "adamavenir/yaml-front"]);
    assert_eq!(deps, ["adamavenir/yaml-front", "textkit/string-case"]);
    let of_json_utils = unresolved_of_json_utils(&unresolved);
    assert_eq!(of_json_utils.len(), 1, "{unresolved:?}");
    assert!(
        of_json_utils[0].contains("nobody/missing"),
        "{unresolved:?}"
    );
}

#[test]
fn an_import_of_a_rejected_module_is_no_dependency_and_is_unresolved() {
    let (deps, unresolved) = linked(&["jdoe/quick-helpers", "nobody/missing"]);
    assert_eq!(deps, ["textkit/string-case"]);
    let of_json_utils = unresolved_of_json_utils(&unresolved);
    assert_eq!(of_json_utils.len(), 2, "{unresolved:?}");
    assert!(
        of_json_utils
            .iter()
            .any(|r| r.contains("jdoe/quick-helpers"))
    );
    assert!(of_json_utils.iter().any(|r| r.contains("nobody/missing")));

    // The user's case aside (GitHub logins compare so), it is the same module.
    let (deps, unresolved) = linked(&["JDOE/quick-helpers"]);
    assert_eq!(deps, ["textkit/string-case"]);
    assert!(
        (unresolved.iter())
            .any(|(m, r)| m == "adamavenir/json-utils" && r.contains("JDOE/quick-helpers")),
        "{unresolved:?}"
    );
}
