//! The published static site: layout, module pages, retention and clean-up.

use std::fs;

use mlld_e2e::{build_examples, build_time, examples, tree, verify_site};
use serde_json::Value;

#[test]
fn the_site_has_every_published_file() {
    let dir = tempfile::tempdir().unwrap();
    let site = build_examples(dir.path(), None, build_time());
    let files = tree(dir.path());
    for f in [
        "index.html",
        "data/site.js",
        "advisories.json",
        "mlld-registry.pub",
        "latest.json",
        "latest.json.minisig",
    ] {
        assert!(files.contains(&f.to_string()), "{f} missing");
    }
    for (name, _) in mlld_schemas::json_schemas() {
        assert!(
            files.contains(&format!("schemas/{name}")),
            "schema {name} missing"
        );
    }
    let entry = fs::read_to_string(dir.path().join("data/site.js")).unwrap();
    let json: Value = serde_json::from_str(
        entry
            .trim()
            .strip_prefix("mlldRegistry.site(")
            .unwrap()
            .strip_suffix(");")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["count"], 24);
    assert_eq!(json["serial"], site.report.serial);
    for shard in json["shards"].as_array().unwrap() {
        let path = dir.path().join(shard.as_str().unwrap());
        let body = fs::read(&path).unwrap();
        assert!(
            shard
                .as_str()
                .unwrap()
                .contains(&mlld_schemas::sha256_hex(&body)[..32]),
            "shards are content-addressed"
        );
    }
    let advisories: Value =
        serde_json::from_slice(&fs::read(dir.path().join("advisories.json")).unwrap()).unwrap();
    assert_eq!(advisories.as_array().unwrap().len(), 5);
}

#[test]
fn the_page_is_one_request_with_its_style_scripts_and_entry_point_inlined() {
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    let html = fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(
        !html.contains("<script src") && !html.contains("<link rel=\"stylesheet\""),
        "nothing to fetch before the page runs: {html}"
    );
    let entry = fs::read_to_string(dir.path().join("data/site.js")).unwrap();
    assert!(html.contains(entry.trim()), "the entry point is inlined");
    for (file, marker) in [
        ("page.js", "const mlldPage"),
        ("search.js", "const mlldSearch"),
        ("module.js", "const mlldModulePage"),
        ("app.js", "const mlldRegistry"),
    ] {
        assert!(html.contains(marker), "{file} is inlined");
        assert!(
            !dir.path().join(file).exists(),
            "{file} is not published apart"
        );
    }
    // In the order each needs the one before, the entry point last.
    let at = |s: &str| html.find(s).unwrap();
    assert!(at("const mlldPage") < at("const mlldSearch"));
    assert!(at("const mlldModulePage") < at("const mlldRegistry"));
    assert!(at("const mlldRegistry") < at("mlldRegistry.site({"));
}

#[test]
fn module_pages_show_what_info_shows() {
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    let page = script_json(&dir.path().join("modules/sarah-k/llm-cache.js"), "module");
    assert_eq!(
        page["dependencies"],
        serde_json::json!(["adamavenir/json-utils"])
    );
    // Its dependents are in their bucket's file (a handful of modules: one bucket).
    assert!(page.get("dependents").is_none(), "{page}");
    let bucket = script_json(&dir.path().join("data/dependents/0/0.js"), "dependents");
    assert_eq!(bucket[0], 0);
    assert_eq!(
        bucket[1]["sarah-k/llm-cache"],
        serde_json::json!(["sarah-k/eval-report"])
    );
    assert_eq!(page["advisories"][0]["id"], "2024-001");
    let recorded: Value = serde_json::from_slice(
        &fs::read(examples().join("gists/27eea315972f5c49098c7b5b05f531dc.json")).unwrap(),
    )
    .unwrap();
    // Nothing the page derives is stored (site/module.js `derive`): not the
    // import line, the gist's URL, the text's blob (nor the text), the
    // current revision's row.
    for derived in [
        "importLine",
        "sourceUrl",
        "contentBlob",
        "content",
        "revisions",
    ] {
        assert!(page.get(derived).is_none(), "{derived} is stored: {page}");
    }
    let exports = page["exports"].as_array().unwrap();
    assert!(!exports.is_empty());
    // What it derives them from: the revision, its commit time, the gist,
    // the integrity that names the loose blob with the module's text.
    assert_eq!(page["gist"], "27eea315972f5c49098c7b5b05f531dc");
    assert!(page["committedAt"].is_string(), "{page}");
    let integrity = page["integrity"].as_str().unwrap();
    let hex = integrity.strip_prefix("sha256:").unwrap();
    assert_eq!(
        fs::read_to_string(
            dir.path()
                .join(format!("blobs/sha256/{}/{}", &hex[..2], &hex[2..]))
        )
        .unwrap(),
        recorded["files"]["llm-cache.mld"]["content"]
            .as_str()
            .unwrap()
    );
    assert!(
        page.get("stale").is_none(),
        "a fresh module has no stale key"
    );
    // Markup in registry data stays data: JSON strings, rendered by the page as text.
    let html = fs::read_to_string(dir.path().join("modules/nora-ml/llm-summarize.js")).unwrap();
    assert!(
        html.contains("<script>alert(1)</script>"),
        "kept verbatim in data, escaped only by rendering"
    );
}

#[test]
fn each_module_page_is_written_once_as_a_script() {
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    let pages: Vec<String> = tree(dir.path())
        .into_iter()
        .filter(|f| f.starts_with("modules/"))
        .collect();
    assert_eq!(pages.len(), 29, "{pages:?}");
    assert!(
        pages.iter().all(|p| p.ends_with(".js")),
        "no second (.json) copy: {pages:?}"
    );
}

#[test]
fn documentation_is_rendered_at_build_time() {
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    // A gist's README.md beside a plain module file.
    let kit = script_json(
        &dir.path().join("modules/mlld-lang/prompt-kit.js"),
        "module",
    );
    assert_eq!(kit["docFile"], "README.md");
    let doc = kit["doc"].as_str().unwrap();
    assert!(doc.contains("<h1>prompt-kit</h1>"), "{doc}");
    assert!(
        doc.contains(
            "<pre><code>/import { @render, @system, @fewShot } from @mlld-lang/prompt-kit"
        ),
        "{doc}"
    );
    assert!(kit.get("contentBlob").is_none(), "derived by the page");
    // A `.mld.md` module is its own documentation, its code shown as code.
    let toc = script_json(&dir.path().join("modules/textkit/md-toc.js"), "module");
    assert_eq!(toc["docFile"], "md-toc.mld.md");
    let doc = toc["doc"].as_str().unwrap();
    assert!(doc.contains("<h1>md-toc</h1>"), "{doc}");
    assert!(
        doc.contains("<pre><code>/import { @wrap } from @textkit/text-wrap"),
        "{doc}"
    );
    assert!(
        !doc.contains("author: textkit"),
        "front matter is not prose: {doc}"
    );
    assert_eq!(
        toc["exports"],
        serde_json::json!(["@headings", "@toc", "@wrappedToc"])
    );
    // A versioned module: its README, and an import pinned to the latest release.
    let lib = script_json(
        &dir.path().join("modules/@alice-dev/prompt-lib.js"),
        "module",
    );
    assert_eq!(lib["docFile"], "README.md");
    assert!(lib["doc"].as_str().unwrap().contains("<h1>prompt-lib"));
    for derived in ["importLine", "sourceUrl", "contentBlob"] {
        assert!(lib.get(derived).is_none(), "{derived} is stored");
    }
    assert_eq!(lib["latest"], "1.2.0");
    assert!(lib["source"]["commit"].is_string(), "{lib}");
}

#[test]
fn old_snapshots_pages_and_blobs_are_cleaned_up_after_the_flip() {
    let dir = tempfile::tempdir().unwrap();
    let mut snapshots = Vec::new();
    for _ in 0..5 {
        snapshots.push(
            build_examples(dir.path(), None, build_time())
                .latest()
                .snapshot,
        );
    }
    let kept: Vec<_> = tree(dir.path())
        .into_iter()
        .filter(|f| f.starts_with("snapshots/") && !f.ends_with(".index.tar.zst"))
        .collect();
    assert_eq!(kept.len(), 3, "{kept:?}");
    let kept_index = tree(dir.path())
        .into_iter()
        .filter(|f| f.ends_with(".index.tar.zst"))
        .count();
    assert_eq!(
        kept_index, 3,
        "index-only snapshots retire with the full ones"
    );
    for s in &snapshots[2..] {
        assert!(kept.contains(s), "{s} should be kept");
    }
    // Deltas (a chunk delta and a blob pack per build) retire likewise, and
    // every one the current latest.json names is there.
    let deltas: Vec<_> = tree(dir.path())
        .into_iter()
        .filter(|f| f.starts_with("deltas/"))
        .collect();
    let patches = deltas.iter().filter(|f| f.ends_with(".chunks.zst")).count();
    assert_eq!(patches, 3, "{deltas:?}");
    let latest: mlld_schemas::Latest =
        serde_json::from_slice(&fs::read(dir.path().join("latest.json")).unwrap()).unwrap();
    for d in &latest.chunk_deltas {
        assert!(deltas.contains(&d.patch.path), "{deltas:?}");
        assert!(deltas.contains(&d.blobs.path), "{deltas:?}");
    }

    // A module leaves the registry: its page and its blobs go after the flip.
    let registry = dir.path().join("registry");
    mlld_e2e::copy_dir(&examples().join("registry"), &registry);
    fs::remove_dir_all(registry.join("textkit")).unwrap();
    mlld_e2e::build_with(
        dir.path(),
        None,
        build_time(),
        mlld_e2e::demo_key(),
        &registry,
    );
    let files = tree(dir.path());
    assert!(
        !files.iter().any(|f| f.starts_with("modules/textkit/")),
        "pages of removed modules are gone"
    );
    let manifest = verify_site(dir.path());
    let loose: Vec<_> = files.iter().filter(|f| f.starts_with("blobs/")).collect();
    assert_eq!(
        loose.len(),
        manifest
            .members
            .keys()
            .filter(|p| p.starts_with("blobs/"))
            .count(),
        "only the manifest's blobs stay loose"
    );
    let listings = files
        .iter()
        .filter(|f| f.starts_with("data/listing-"))
        .count();
    assert_eq!(listings, 1, "old listing shards are gone");
    let parts = files
        .iter()
        .filter(|f| f.starts_with("data/search-"))
        .count();
    assert_eq!(parts, 1, "old search parts are gone");
}

/// Builds the site at `site` from `registry` and the examples' gists, on
/// the build it holds.
fn build_on(site: &std::path::Path, registry: &std::path::Path) {
    mlld_e2e::build_with(site, None, build_time(), mlld_e2e::demo_key(), registry);
}

/// A site's folder under `dir` and a copy of the examples' registry beside
/// it, for tests that edit the registry between builds.
fn site_and_registry(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (site, registry) = (dir.join("site"), dir.join("registry"));
    mlld_e2e::copy_dir(&examples().join("registry"), &registry);
    (site, registry)
}

/// The `mlldRegistry.…(…)` argument of a site script, as JSON.
fn script_json(path: &std::path::Path, call: &str) -> Value {
    let text = fs::read_to_string(path).unwrap();
    let inner = text
        .trim()
        .strip_prefix(&format!("mlldRegistry.{call}("))
        .and_then(|t| t.strip_suffix(");"))
        .unwrap_or_else(|| panic!("{} is not a {call} script", path.display()));
    // `shard(index, JSON.parse('rows'))` and `searchPart(index,
    // JSON.parse('fields'))`: both, as an array.
    let inner = match inner.split_once(',') {
        Some((index, rest)) if index.parse::<u32>().is_ok() => {
            let literal = rest
                .strip_prefix("JSON.parse('")
                .and_then(|r| r.strip_suffix("')"))
                .unwrap_or_else(|| panic!("{} holds its data as a string", path.display()));
            format!("[{index},{}]", unescape_js(literal))
        }
        _ => inner.to_string(),
    };
    serde_json::from_str(&inner).unwrap()
}

/// A single-quoted JavaScript string literal's text, for the escapes the
/// site's data files use (`\\`, `\'`, `\uXXXX`).
fn unescape_js(literal: &str) -> String {
    let mut out = String::new();
    let mut chars = literal.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next().unwrap() {
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
            }
            c => out.push(c),
        }
    }
    out
}

#[test]
fn versioned_modules_are_listed_and_have_pages() {
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    let entry = script_json(&dir.path().join("data/site.js"), "site");
    assert_eq!(entry["count"], 24, "Phase-1 modules, as before");
    assert_eq!(entry["versioned"], 5);
    let rows: Vec<Value> = entry["shards"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            let rows = script_json(&dir.path().join(s.as_str().unwrap()), "shard");
            assert_eq!(rows[0], i, "a shard says where it lies");
            rows[1].as_array().unwrap().clone()
        })
        .collect();
    assert_eq!(rows.len(), 29);
    let row = rows
        .iter()
        .find(|r| r[0] == "@alice-dev" && r[1] == "prompt-lib")
        .expect("the listing has @alice-dev/prompt-lib");
    assert_eq!(
        row[2],
        "Prompt templates for agents: few-shot blocks and system prompts"
    );
    assert_eq!(row[6], "1.2.0", "the latest tag's version");
    assert!(
        rows.iter()
            .any(|r| r[0] == "@alice-dev" && r[1] == "table-fmt" && r[6] == "0.2.0"),
        "without tags, latest is the highest accepted version"
    );

    let page = script_json(
        &dir.path().join("modules/@alice-dev/prompt-lib.js"),
        "module",
    );
    assert_eq!(page["versioned"], true);
    assert_eq!(
        page["distTags"],
        serde_json::json!({"latest": "1.2.0", "stable": "1.0.0", "beta": "1.3.0-beta.1"})
    );
    let versions: Vec<&str> = page["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.3.0-beta.1", "1.2.0", "1.0.0"]);
    for v in page["versions"].as_array().unwrap() {
        assert_eq!(v["needs"], serde_json::json!(["js"]));
        assert_eq!(v["license"], "CC0");
    }
    assert_eq!(page["versions"][0]["mlldVersion"], "*");
    assert_eq!(page["versions"][1]["mlldVersion"], ">=2.0.0");
    assert_eq!(page["owners"], serde_json::json!(["alice-dev", "bobcodes"]));
    assert_eq!(page["entry"], "index.mld");
    assert_eq!(page["files"].as_array().unwrap().len(), 5);
    assert_eq!(page["source"]["type"], "directory");
    assert_eq!(page["source"]["commit"].as_str().unwrap().len(), 40);
    assert!(
        page["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().starts_with("@adamavenir/json-utils")),
        "{}",
        page["dependencies"]
    );
    assert_eq!(page["advisories"], serde_json::json!([]));
    let js = fs::read_to_string(dir.path().join("modules/@alice-dev/prompt-lib.js")).unwrap();
    // A rebuild with nothing new keeps the page (not regenerated, not cleaned up).
    build_examples(dir.path(), None, build_time());
    assert_eq!(
        fs::read_to_string(dir.path().join("modules/@alice-dev/prompt-lib.js")).unwrap(),
        js
    );
    // The Phase-1 namesake keeps its own page.
    assert!(dir.path().join("modules/adamavenir/json-utils.js").exists());
    assert!(
        dir.path()
            .join("modules/@adamavenir/json-utils.js")
            .exists()
    );
}

#[test]
fn pages_rewritten_drop_the_json_copy_older_sites_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (site, registry) = site_and_registry(dir.path());
    let build = || build_on(&site, &registry);
    build();
    // As a site built before pages were written once left it.
    let legacy = site.join("modules/sarah-k/llm-cache.json");
    let kept = site.join("modules/textkit/slugify.json");
    fs::write(&legacy, "{}").unwrap();
    fs::write(&kept, "{}").unwrap();
    let path = registry.join("sarah-k/registry.json");
    let text = fs::read_to_string(&path).unwrap();
    let changed = text.replacen(
        "Disk cache for LLM responses",
        "A disk cache for LLM responses",
        1,
    );
    assert_ne!(text, changed);
    fs::write(&path, changed).unwrap();
    build();
    assert!(!legacy.exists(), "a rewritten page leaves no .json copy");
    assert!(site.join("modules/sarah-k/llm-cache.js").exists());
    // Pages not rewritten are not touched (a new page format rewrites them all).
    assert!(kept.exists());
}

/// The web page's search parts depend on the listed names, descriptions
/// and tags alone: a build that changes none of them names the parts
/// already in the site; one that does writes them anew.
#[test]
fn search_parts_are_kept_until_a_name_description_or_tag_changes() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().unwrap();
    let (site, registry) = site_and_registry(dir.path());
    let build = || build_on(&site, &registry);
    let parts = || -> Vec<(String, u64)> {
        let entry = script_json(&site.join("data/site.js"), "site");
        (entry["search"].as_array().unwrap().iter())
            .map(|f| f.as_str().unwrap().to_string())
            .map(|f| (f.clone(), fs::metadata(site.join(&f)).unwrap().ino()))
            .collect()
    };
    build();
    let first = parts();
    assert!(!first.is_empty());

    // Rebuilt with nothing renamed or described anew: the page names the
    // same part files, which were not written again.
    build();
    assert_eq!(parts(), first);

    // A description edited: the parts are written again and find its words.
    let path = registry.join("sarah-k/registry.json");
    let mut registered: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    registered["modules"]["llm-cache"]["description"] = "Zanzibar caching for prompts".into();
    fs::write(&path, serde_json::to_vec_pretty(&registered).unwrap()).unwrap();
    build();
    let edited = parts();
    assert_ne!(
        edited.iter().map(|p| &p.0).collect::<Vec<_>>(),
        first.iter().map(|p| &p.0).collect::<Vec<_>>()
    );
    let found = |word: &str| {
        (edited.iter()).any(|(f, _)| fs::read_to_string(site.join(f)).unwrap().contains(word))
    };
    assert!(found("zanzibar"));
}

/// A module's page changes with its own module only: a module that stops
/// depending on it (here by leaving the registry) rewrites the bucket of
/// its dependents, not its page.
#[test]
fn a_dependent_leaving_rewrites_the_bucket_not_the_page() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().unwrap();
    let (site, registry) = site_and_registry(dir.path());
    let build = || build_on(&site, &registry);
    build();
    let page = site.join("modules/sarah-k/llm-cache.js");
    let bucket = site.join("data/dependents/0/0.js");
    let before = (fs::metadata(&page).unwrap().ino(), fs::read(&page).unwrap());
    assert_eq!(
        script_json(&bucket, "dependents")[1]["sarah-k/llm-cache"],
        serde_json::json!(["sarah-k/eval-report"])
    );
    let path = registry.join("sarah-k/registry.json");
    let mut registered: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let modules = registered["modules"].as_object_mut().unwrap();
    assert!(modules.remove("eval-report").is_some());
    fs::write(&path, serde_json::to_vec_pretty(&registered).unwrap()).unwrap();
    build();
    let after = (fs::metadata(&page).unwrap().ino(), fs::read(&page).unwrap());
    assert_eq!(before, after, "the page was not written again");
    assert!(!site.join("modules/sarah-k/eval-report.js").exists());
    assert_eq!(
        script_json(&bucket, "dependents")[1].get("sarah-k/llm-cache"),
        None
    );
}

#[test]
fn loose_blobs_missing_or_linked_are_restored_by_the_next_build() {
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    let blobs: Vec<String> = tree(dir.path())
        .into_iter()
        .filter(|f| f.starts_with("blobs/sha256/"))
        .collect();
    assert!(blobs.len() > 20, "{blobs:?}");
    let (gone, linked) = (&blobs[3], &blobs[blobs.len() - 2]);
    let kept = (
        fs::read(dir.path().join(gone)).unwrap(),
        fs::read(dir.path().join(linked)).unwrap(),
    );
    fs::remove_file(dir.path().join(gone)).unwrap();
    // A link to a file of the same size elsewhere is not a blob of the
    // site, and is replaced without that file being written.
    let outside = tempfile::tempdir().unwrap();
    let elsewhere = vec![b'x'; kept.1.len()];
    fs::write(outside.path().join("other"), &elsewhere).unwrap();
    fs::remove_file(dir.path().join(linked)).unwrap();
    std::os::unix::fs::symlink(outside.path().join("other"), dir.path().join(linked)).unwrap();

    build_examples(dir.path(), None, build_time());
    for (path, bytes) in [(gone, &kept.0), (linked, &kept.1)] {
        let meta = fs::symlink_metadata(dir.path().join(path)).unwrap();
        assert!(meta.is_file(), "{path} is a regular file again");
        assert_eq!(&fs::read(dir.path().join(path)).unwrap(), bytes, "{path}");
    }
    assert_eq!(fs::read(outside.path().join("other")).unwrap(), elsewhere);
    verify_site(dir.path());
}

#[cfg(unix)]
#[test]
fn snapshots_and_deltas_never_go_through_a_linked_folder() {
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    // Each folder replaced by a link to a copy of it outside the site.
    let outside = tempfile::tempdir().unwrap();
    for folder in ["snapshots", "deltas"] {
        let (inside, copy) = (dir.path().join(folder), outside.path().join(folder));
        if inside.is_dir() {
            mlld_e2e::copy_dir(&inside, &copy);
            fs::remove_dir_all(&inside).unwrap();
        } else {
            fs::create_dir(&copy).unwrap();
        }
        std::os::unix::fs::symlink(&copy, &inside).unwrap();
    }
    let before = tree(outside.path());
    build_examples(dir.path(), None, build_time());
    assert_eq!(
        tree(outside.path()),
        before,
        "nothing was written through the links"
    );
    for folder in ["snapshots", "deltas"] {
        let meta = fs::symlink_metadata(dir.path().join(folder)).unwrap();
        assert!(meta.is_dir(), "{folder} is the site's own folder again");
    }
    verify_site(dir.path());
}

#[cfg(unix)]
#[test]
fn published_blobs_are_readable_by_all() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    build_examples(dir.path(), None, build_time());
    // Healed ones too: one removed is copied back from the snapshot.
    let blobs = || -> Vec<String> {
        tree(dir.path())
            .into_iter()
            .filter(|f| f.starts_with("blobs/sha256/"))
            .collect()
    };
    fs::remove_file(dir.path().join(&blobs()[0])).unwrap();
    build_examples(dir.path(), None, build_time());
    for blob in blobs() {
        let mode = fs::metadata(dir.path().join(&blob))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o644,
            0o644,
            "{blob} is {mode:o}: a web server could not read it"
        );
    }
}
