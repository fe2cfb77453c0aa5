//! Search and info end to end: examples → signed site with its index →
//! `mlld-registry search` / `info` through the real binary, offline.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use mlld_e2e::{
    Client, RawMember, Site, assert_fails, assert_ok, build_examples, build_time, craft_snapshot,
    demo_key, snapshot_members,
};
use serde_json::Value;

struct Setup {
    _dir: tempfile::TempDir,
    site: Site,
    client: Client,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let site = build_examples(&dir.path().join("site"), None, build_time());
    let client = Client::new(dir.path());
    Setup {
        _dir: dir,
        site,
        client,
    }
}

impl Setup {
    fn run_with(&self, snapshot: &Path, args: &[&str]) -> Output {
        let key = self.site.public_key();
        let common = [
            "--snapshot",
            snapshot.to_str().unwrap(),
            "--trusted-key",
            key.to_str().unwrap(),
        ];
        self.client.run(&[args, &common[..]].concat())
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(&self.site.snapshot(), args)
    }

    /// `search ARGS --json`: the envelope's list of hits.
    fn search(&self, args: &[&str]) -> Vec<Value> {
        let stdout = assert_ok(&self.run(&[&["search", "--json"][..], args].concat()));
        let data = mlld_e2e::project::envelope_data(stdout.as_bytes());
        data.as_array().unwrap().clone()
    }

    fn names(&self, args: &[&str]) -> Vec<String> {
        self.search(args)
            .iter()
            .map(|h| h["name"].as_str().unwrap().to_string())
            .collect()
    }

    fn info(&self, module: &str) -> Value {
        mlld_e2e::project::json(&self.run(&["info", module, "--json"]))
    }
}

#[test]
fn exact_names_rank_first_and_advisories_are_flagged_not_hidden() {
    let s = setup();
    for query in [
        "json-utils",
        "json utils",
        "jsonutils",
        "adamavenir/json-utils",
    ] {
        let names = s.names(&[query]);
        assert_eq!(names[0], "adamavenir/json-utils", "{query}: {names:?}");
    }
    // `llm` is in three names and nine tags: the names come first, then the tags.
    let names = s.names(&["llm"]);
    assert_eq!(names.len(), 9, "{names:?}");
    let (in_name, by_tag) = names.split_at(3);
    assert!(in_name.iter().all(|n| n.contains("/llm-")), "{names:?}");
    assert!(by_tag.iter().all(|n| !n.contains("/llm-")), "{names:?}");
    // llm-cache has a high advisory: listed, flagged.
    let hits = s.search(&["cache"]);
    assert_eq!(hits[0]["name"], "sarah-k/llm-cache");
    assert_eq!(hits[0]["advisory"]["highest"], "high");
    assert_eq!(hits[0]["advisory"]["count"], 1);
    // text-wrap is flagged through its gist id by another user's advisory.
    let hits = s.search(&["text-wrap"]);
    assert_eq!(hits[0]["name"], "textkit/text-wrap");
    assert_eq!(hits[0]["advisory"]["highest"], "low");
    // The table shows the flag too.
    let table = assert_ok(&s.run(&["search", "retry"]));
    let row = table
        .lines()
        .find(|l| l.starts_with("devops-dan/http-retry"))
        .unwrap();
    assert!(row.ends_with("MEDIUM (1)"), "{table}");
    assert!(table.starts_with("NAME "), "{table}");
}

#[test]
fn filters_prefixes_and_typos() {
    let s = setup();
    assert_eq!(
        s.names(&["retry", "--author", "devops-dan"]),
        ["devops-dan/http-retry"]
    );
    assert_eq!(s.names(&["tag:llm cache"]), ["sarah-k/llm-cache"]);
    assert_eq!(
        s.names(&["author:sarah-k", "--tag", "evals"]),
        ["sarah-k/eval-report", "sarah-k/llm-judge"]
    );
    // Prefixes of names, tags and description words.
    assert_eq!(s.names(&["slug"])[0], "textkit/slugify");
    assert_eq!(s.names(&["kube"]), ["devops-dan/k8s-status"]);
    // One typo in words of four letters or more.
    assert_eq!(s.names(&["slugfy"]), ["textkit/slugify"]);
    assert_eq!(s.names(&["jsno", "utils"])[0], "adamavenir/json-utils");
    assert_eq!(s.names(&["kuberentes"]), ["devops-dan/k8s-status"]);
    // The content's leading comment is searched: "Honors Retry-After" is only in http-retry's.
    assert_eq!(s.names(&["honors"]), ["devops-dan/http-retry"]);
}

#[test]
fn json_results_have_a_stable_shape_and_order() {
    let s = setup();
    let first = assert_ok(&s.run(&["search", "text", "--json"]));
    assert_eq!(
        first,
        assert_ok(&s.run(&["search", "text", "--json"])),
        "the same query twice"
    );
    // A second build of the same registry answers byte for byte the same.
    let again = build_examples(
        &s.client.project.parent().unwrap().join("site-again"),
        None,
        build_time(),
    );
    let other = Client::new(&s.client.project.parent().unwrap().join("other"));
    let out = other.run(&[
        "search",
        "text",
        "--json",
        "--snapshot",
        again.snapshot().to_str().unwrap(),
        "--trusted-key",
        again.public_key().to_str().unwrap(),
    ]);
    assert_eq!(assert_ok(&out), first);
    let lines: Vec<Value> = mlld_e2e::project::envelope_data(first.as_bytes())
        .as_array()
        .unwrap()
        .clone();
    assert!(lines.len() >= 5, "{first}");
    for hit in &lines {
        let keys: Vec<&str> = hit
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "name",
                "author",
                "module",
                "description",
                "tags",
                "advisory"
            ]
        );
        let name = hit["name"].as_str().unwrap();
        assert_eq!(
            name,
            format!(
                "{}/{}",
                hit["author"].as_str().unwrap(),
                hit["module"].as_str().unwrap()
            )
        );
    }
    // Markup in a description is data, shown as written.
    let hits = s.search(&["summarize"]);
    assert!(
        hits[0]["description"]
            .as_str()
            .unwrap()
            .contains("<script>alert(1)</script>")
    );
    assert_eq!(s.client.guard.connections(), 0);
}

#[test]
fn no_match_says_so_and_suggests_near_names() {
    let s = setup();
    let out = s.run(&["search", "slugifier"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("no module matches `slugifier`; did you mean textkit/slugify"),
        "{stdout}"
    );
    // A miss names the filters given, which may be why nothing matched.
    let out = s.run(&["search", "slug", "--tag", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("no module matches `slug --tag nosuch`"),
        "{stdout}"
    );
    // With --json, stdout holds the envelope with an empty result and the notice goes to stderr.
    let out = s.run(&["search", "slugifier", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let data = mlld_e2e::project::envelope_data(&out.stdout);
    assert_eq!(data, serde_json::json!([]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean textkit/slugify"));
    // A query with nothing to search for is an error.
    let stderr = assert_fails(&s.run(&["search", "tag:"]), 2);
    assert!(stderr.contains("tag:TAG"), "{stderr}");
}

#[test]
fn info_shows_revisions_dependencies_dependents_advisories_and_project_state() {
    let s = setup();
    let info = s.info("sarah-k/llm-cache");
    assert_eq!(
        info["description"],
        "Disk cache for LLM responses keyed by prompt hash"
    );
    assert_eq!(info["tags"], serde_json::json!(["llm", "cache", "json"]));
    assert_eq!(info["gist"], "27eea315972f5c49098c7b5b05f531dc");
    assert_eq!(info["created"], "2024-07-02T00:00:00Z");
    assert_eq!(
        info["dependencies"],
        serde_json::json!(["adamavenir/json-utils"])
    );
    assert_eq!(
        info["dependents"],
        serde_json::json!(["sarah-k/eval-report"])
    );
    assert_eq!(info["advisories"][0]["id"], "2024-001");
    assert_eq!(info["advisories"][0]["severity"], "high");
    assert_eq!(info["current"]["size"], 886);
    assert_eq!(info["project"]["locked"], false);
    assert_eq!(info["project"]["cached"], false);

    // Every revision the snapshot holds, with its date, current first.
    let info = s.info("@devops-dan/http-retry");
    let manifest: Value =
        serde_json::from_slice(&snapshot_members(&s.site.snapshot())[0].1).unwrap();
    let record = manifest["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "http-retry")
        .unwrap();
    let held: Vec<&Value> = std::iter::once(&record["revision"])
        .chain(
            record["history"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| &h["revision"]),
        )
        .collect();
    let shown: Vec<&Value> = info["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["revision"])
        .collect();
    assert_eq!(shown, held, "{info}");
    assert_eq!(
        info["revisions"][0]["revision"],
        info["current"]["revision"]
    );
    assert_eq!(info["revisions"][0]["committedAt"], "2024-10-30T21:58:04Z");
    assert_eq!(
        info["dependents"],
        serde_json::json!([
            "devops-dan/k8s-status",
            "mlld-lang/github-pr",
            "sarah-k/llm-judge"
        ])
    );
    let json_utils = s.info("mlld://adamavenir/json-utils");
    assert_eq!(json_utils["dependents"].as_array().unwrap().len(), 5);

    // Locked and cached after resolve; locked but not cached once the cache is gone.
    assert_ok(&s.run(&["resolve", "@sarah-k/llm-cache", "--yes"]));
    let info = s.info("sarah-k/llm-cache");
    assert_eq!(info["project"]["locked"], true);
    assert_eq!(
        info["project"]["lockedRevision"],
        info["current"]["revision"]
    );
    assert_eq!(info["project"]["cached"], true);
    fs::remove_dir_all(s.client.project.join(".mlld/cache")).unwrap();
    let info = s.info("sarah-k/llm-cache");
    assert_eq!(
        (
            info["project"]["locked"].clone(),
            info["project"]["cached"].clone()
        ),
        (true.into(), false.into())
    );
    let text = assert_ok(&s.run(&["info", "sarah-k/llm-cache"]));
    assert!(
        text.contains("ADVISORY     2024-001 HIGH cache-poisoning"),
        "{text}"
    );
    assert!(text.contains("NOT cached"), "{text}");
}

#[test]
fn info_on_a_missing_module_names_near_ones() {
    let s = setup();
    let stderr = assert_fails(&s.run(&["info", "textkit/slugfy"]), 2);
    assert!(
        stderr.contains("module textkit/slugfy is not in the registry snapshot"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean textkit/slugify"), "{stderr}");
    let stderr = assert_fails(&s.run(&["info", "textkit/slugify@3b052c8"]), 2);
    assert!(stderr.contains("without `@3b052c8`"), "{stderr}");
    let out = s.run(&["info", "textkit/slugfy", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let envelope: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(envelope["data"], Value::Null);
    assert_eq!(envelope["command"], "info");
    let error = &envelope["errors"][0];
    assert_eq!(error["code"], "error");
    assert!(error["message"].as_str().unwrap().contains("slugify"));
    assert!(error.as_object().unwrap().contains_key("line"));
}

#[test]
fn the_index_is_stored_with_its_snapshot_and_a_changed_file_is_verified_again() {
    let s = setup();
    let copy: PathBuf = s.client.project.parent().unwrap().join("snapshot.tar.zst");
    fs::copy(s.site.snapshot(), &copy).unwrap();
    // Let the copy become older than the file system's timestamp granularity, so it is remembered.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_ok(&s.run_with(&copy, &["search", "json"]));
    let sha = s.site.latest().sha256;
    let index = s.client.home.join(format!("snapshots/{sha}/index"));
    assert!(index.join("meta.json").is_file());
    assert!(
        fs::read_dir(s.client.home.join("snapshot-files"))
            .unwrap()
            .count()
            == 1
    );
    assert_ok(&s.run_with(&copy, &["search", "json"]));

    // Same size, one byte changed: refused, not answered from the store.
    let mut bytes = fs::read(&copy).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    fs::write(&copy, &bytes).unwrap();
    assert_fails(&s.run_with(&copy, &["search", "json"]), 2);
}

#[test]
fn index_members_outside_index_files_are_refused() {
    let s = setup();
    let members = snapshot_members(&s.site.snapshot());
    let mut manifest: Value = serde_json::from_slice(&members[0].1).unwrap();
    let meta = manifest["members"]["index/meta.json"].clone();
    assert!(meta.is_object(), "the snapshot lists its index");
    manifest["members"]["index/sub/meta.json"] = meta;
    let mut bytes = serde_json::to_vec(&manifest).unwrap();
    bytes.push(b'\n');
    let signature = demo_key().sign(&bytes, "crafted");
    let raw = [
        RawMember {
            name: "manifest.json",
            bytes: &bytes,
            kind: tar::EntryType::Regular,
        },
        RawMember {
            name: "manifest.json.minisig",
            bytes: signature.as_bytes(),
            kind: tar::EntryType::Regular,
        },
    ];
    let crafted = s.client.project.parent().unwrap().join("crafted.tar.zst");
    craft_snapshot(&crafted, &raw);
    let stderr = assert_fails(&s.run_with(&crafted, &["search", "json"]), 2);
    assert!(
        stderr.contains("`index/sub/meta.json` is neither a blob path"),
        "{stderr}"
    );
    assert!(!s.client.home.join("snapshots").exists());
}
