//! The client on versioned modules (today's registry layout), through the
//! real binary against the example site built from `examples/registry/modules`:
//! ranges, tags and pins resolved offline, directory modules installed whole,
//! mlld's own `mlld-lock.json` and content cache byte for byte, and the
//! scanner's hostile inputs.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use mlld_e2e::project::*;
use mlld_e2e::{Client, assert_fails, assert_ok, examples, sha256_hex, tree};
use serde_json::Value;

const PROMPT_LIB_120: &str =
    "alice-dev/mlld-modules/03f02b131fc1f1983919381320aae8f3b2558693/prompt-lib";
const PROMPT_LIB_FILES: [&str; 5] = [
    "README.md",
    "index.mld",
    "module.yml",
    "prompts/system.mld",
    "tests/prompt-lib.test.mld",
];

fn raw(path: &str) -> Vec<u8> {
    fs::read(examples().join("raw").join(path)).unwrap()
}

/// The recorded bytes a single-file version's source URL names.
fn raw_of_version(version_file: &str) -> Vec<u8> {
    let path = examples().join("registry/modules").join(version_file);
    let v: Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    let url = v["source"]["url"].as_str().unwrap();
    raw(url
        .strip_prefix("https://raw.githubusercontent.com/")
        .unwrap())
}

fn modules(client: &Client) -> Value {
    lock(client)["modules"].clone()
}

/// A fresh project directory under `dir`, as a `--project` argument.
fn project(dir: &Path, name: &str) -> (PathBuf, String) {
    let p = dir.join(name);
    fs::create_dir_all(&p).unwrap();
    let arg = p.to_str().unwrap().to_string();
    (p, arg)
}

fn resolve_in(client: &Client, project: &str, reference: &str) -> Value {
    json(&client.run(&[
        "resolve",
        reference,
        "--yes",
        "--json",
        "--offline",
        "--project",
        project,
    ]))
}

fn locked_module(project: &Path, key: &str) -> Value {
    let lock: Value =
        serde_json::from_slice(&fs::read(project.join(".mlld/mlld.lock.json")).unwrap()).unwrap();
    lock["modules"][key].clone()
}

#[test]
fn ranges_tags_and_pins_resolve_offline_to_the_right_versions() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    let cases = [
        // json-utils exists in both layouts: @-references name the versioned module.
        (
            "@adamavenir/json-utils",
            "@adamavenir/json-utils",
            "2.0.0",
            "latest",
        ),
        (
            "@adamavenir/json-utils@latest",
            "@adamavenir/json-utils",
            "2.0.0",
            "latest",
        ),
        (
            "@adamavenir/json-utils@stable",
            "@adamavenir/json-utils",
            "1.1.0",
            "stable",
        ),
        (
            "@adamavenir/json-utils@^1.0",
            "@adamavenir/json-utils",
            "1.1.0",
            "^1.0",
        ),
        (
            "@adamavenir/json-utils@~1.0.0",
            "@adamavenir/json-utils",
            "1.0.0",
            "~1.0.0",
        ),
        (
            "@ADAMAVENIR/json-utils@1.x",
            "@adamavenir/json-utils",
            "1.1.0",
            "1.x",
        ),
        (
            "@adamavenir/json-utils@1.0.0 || 2.0.0",
            "@adamavenir/json-utils",
            "2.0.0",
            "1.0.0 || 2.0.0",
        ),
        (
            "@adamavenir/json-utils@1.0 - 1.1",
            "@adamavenir/json-utils",
            "1.1.0",
            "1.0 - 1.1",
        ),
        (
            "@alice-dev/prompt-lib",
            "@alice-dev/prompt-lib",
            "1.2.0",
            "latest",
        ),
        (
            "@alice-dev/prompt-lib@beta",
            "@alice-dev/prompt-lib",
            "1.3.0-beta.1",
            "beta",
        ),
        // A range names a prerelease only when it names one itself.
        (
            "@alice-dev/prompt-lib@^1.0",
            "@alice-dev/prompt-lib",
            "1.2.0",
            "^1.0",
        ),
        (
            "@alice-dev/prompt-lib@>=1.3.0-beta.0",
            "@alice-dev/prompt-lib",
            "1.3.0-beta.1",
            ">=1.3.0-beta.0",
        ),
        // No tags.json: latest is the highest accepted version (0.3.0 was rejected).
        (
            "@alice-dev/table-fmt",
            "@alice-dev/table-fmt",
            "0.2.0",
            "latest",
        ),
        (
            "@alice-dev/table-fmt@0.1.0",
            "@alice-dev/table-fmt",
            "0.1.0",
            "0.1.0",
        ),
    ];
    for (i, (reference, key, version, requested)) in cases.iter().enumerate() {
        let (p, arg) = project(dir.path(), &format!("p{i}"));
        let out = resolve_in(&client, &arg, reference);
        assert_eq!(out[0]["import"], *key, "{reference}");
        assert_eq!(out[0]["version"], *version, "{reference}");
        let entry = locked_module(&p, key);
        assert_eq!(entry["version"], *version, "{reference}");
        assert_eq!(entry["requested"], *requested, "{reference}");
        assert_eq!(
            entry["resolved"],
            format!("registry://{key}@{version}"),
            "{reference}"
        );
    }

    // mlld:// and a revision pin name the Phase-1 gist module of the same name.
    for reference in [
        "mlld://adamavenir/json-utils",
        "@adamavenir/json-utils@b20e54d",
    ] {
        let (p, arg) = project(dir.path(), &format!("gist-{}", reference.len()));
        let out = resolve_in(&client, &arg, reference);
        assert_eq!(out[0]["import"], "mlld://adamavenir/json-utils");
        let lock: Value =
            serde_json::from_slice(&fs::read(p.join(".mlld/mlld.lock.json")).unwrap()).unwrap();
        assert!(lock.get("modules").is_none(), "{lock}");
        assert_eq!(
            lock["imports"]["mlld://adamavenir/json-utils"]["gistRevision"],
            mlld_e2e::JSON_UTILS_NEW
        );
    }

    // Dependencies are followed: http-kit 1.0.0 needs table-fmt ~0.2.0.
    let (p, arg) = project(dir.path(), "deps");
    resolve_in(&client, &arg, "@bobcodes/http-kit");
    assert_eq!(locked_module(&p, "@bobcodes/http-kit")["version"], "1.0.0");
    let dep = locked_module(&p, "@alice-dev/table-fmt");
    assert_eq!(
        (dep["version"].as_str(), dep["requested"].as_str()),
        (Some("0.2.0"), Some("~0.2.0"))
    );

    // A version or tag on a Phase-1-only module, and selections that match nothing.
    let (_, arg) = project(dir.path(), "errors");
    for (reference, wanted) in [
        (
            "@textkit/slugify@^1.0",
            "textkit/slugify is a Phase-1 gist module without versions",
        ),
        (
            "@adamavenir/json-utils@^3",
            "matches none of the versions in this snapshot (2.0.0, 1.1.0, 1.0.0",
        ),
        (
            "@adamavenir/json-utils@nightly",
            "tags: latest → 2.0.0, stable → 1.1.0",
        ),
        ("@bobcodes/http-kit@1.0.1", "matches none"),
    ] {
        let out = client.run(&[
            "resolve",
            reference,
            "--yes",
            "--offline",
            "--project",
            &arg,
        ]);
        let stderr = assert_fails(&out, 2);
        assert!(stderr.contains(wanted), "{reference}: {stderr}");
    }
    assert_eq!(client.guard.connections(), 0);
}

#[test]
fn directory_modules_install_whole_and_verify_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    write(
        &client.project,
        "main.mld",
        "/import { @fewShot } from @alice-dev/prompt-lib@1.2.0\n",
    );
    let report = json(&client.run(&["install", "--yes", "--json", "--offline"]));
    assert_eq!(
        report["locked"],
        serde_json::json!(["@alice-dev/prompt-lib", "@adamavenir/json-utils"])
    );
    // The dependency's range (^1.0.0 from dependencies, ^1.0 from the entry file's import).
    assert_eq!(
        modules(&client)["@adamavenir/json-utils"]["version"],
        "1.1.0"
    );
    let cache = client
        .project
        .join(".mlld/cache/registry/alice-dev/prompt-lib/1.2.0");
    assert_eq!(tree(&cache.join("files")), PROMPT_LIB_FILES);
    for f in PROMPT_LIB_FILES {
        assert_eq!(
            fs::read(cache.join("files").join(f)).unwrap(),
            raw(&format!("{PROMPT_LIB_120}/{f}")),
            "{f}"
        );
    }
    let meta: Value =
        serde_json::from_slice(&fs::read(cache.join("metadata.json")).unwrap()).unwrap();
    let entry = modules(&client)["@alice-dev/prompt-lib"].clone();
    assert_eq!(meta["importPath"], "@alice-dev/prompt-lib");
    assert_eq!(meta["entry"], "index.mld");
    assert_eq!(meta["contentHash"], entry["contentHash"]);
    assert_eq!(
        entry["contentHash"], "76da0fba9c113edf969609e2dcf3ea2420e8ccf034fd2549c293b5d6203d2ea1",
        "the registry's hash without its sha256: prefix"
    );
    assert_eq!(
        entry["integrity"],
        format!(
            "sha256:{}",
            sha256_hex(&raw(&format!("{PROMPT_LIB_120}/index.mld")))
        )
    );

    // verify re-hashes every file, not only the entry point.
    assert_ok(&client.run(&["verify"]));
    fs::write(cache.join("files/prompts/system.mld"), "tampered").unwrap();
    let out = client.run(&["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = mlld_e2e::project::envelope_data(&out.stdout);
    let bad: Vec<&Value> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["state"] != "ok")
        .collect();
    assert_eq!(bad.len(), 1, "{v}");
    assert_eq!(bad[0]["import"], "@alice-dev/prompt-lib");
    assert_eq!(bad[0]["version"], "1.2.0");
    let report = json(&client.run(&["install", "--json", "--offline", "--frozen"]));
    assert_eq!(
        report["repaired"],
        serde_json::json!(["@alice-dev/prompt-lib"])
    );
    assert_ok(&client.run(&["verify"]));

    // The lock, checked out elsewhere, installs the same files with --frozen --offline.
    let (fresh, arg) = project(dir.path(), "fresh");
    fs::create_dir_all(fresh.join(".mlld")).unwrap();
    fs::copy(
        client.project.join(".mlld/mlld.lock.json"),
        fresh.join(".mlld/mlld.lock.json"),
    )
    .unwrap();
    assert_ok(&client.run(&["install", "--frozen", "--offline", "--project", &arg]));
    assert_eq!(
        tree(&fresh.join(".mlld/cache/registry/alice-dev/prompt-lib/1.2.0/files")),
        PROMPT_LIB_FILES
    );

    // ls and info show versions.
    let rows = json(&client.run(&["ls", "--json"]));
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["import"] == "@alice-dev/prompt-lib")
        .unwrap()
        .clone();
    assert_eq!(
        (
            row["version"].as_str(),
            row["requested"].as_str(),
            row["state"].as_str()
        ),
        (Some("1.2.0"), Some("1.2.0"), Some("ok"))
    );
    let info = json(&client.run(&["info", "@alice-dev/prompt-lib", "--json"]));
    assert_eq!(
        info["tags"],
        serde_json::json!({"beta": "1.3.0-beta.1", "latest": "1.2.0", "stable": "1.0.0"})
    );
    let versions: Vec<&str> = info["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.3.0-beta.1", "1.2.0", "1.0.0"]);
    let v120 = &info["versions"][1];
    assert_eq!(v120["needs"], serde_json::json!(["js"]));
    assert_eq!(v120["license"], "CC0");
    assert_eq!(v120["mlldVersion"], ">=2.0.0");
    assert_eq!(v120["publishedAt"], "2025-07-15T12:00:00Z");
    assert_eq!(info["project"]["lockedVersion"], "1.2.0");
    assert_eq!(info["project"]["cached"], true);
    let text = assert_ok(&client.run(&["info", "@alice-dev/prompt-lib"]));
    assert!(
        text.contains("beta → 1.3.0-beta.1") && text.contains("license CC0"),
        "{text}"
    );
    // mlld:// still names the Phase-1 module, and so does a bare name
    // that names one; a bare name only the versioned layout has is that.
    for reference in ["mlld://adamavenir/json-utils", "adamavenir/json-utils"] {
        let info = json(&client.run(&["info", reference, "--json"]));
        assert_eq!(info["gist"], mlld_e2e::JSON_UTILS_GIST, "{reference}");
    }
    let info = json(&client.run(&["info", "adamavenir/json-utils", "--json"]));
    assert!(info.get("versions").is_none(), "{info}");
    let info = json(&client.run(&["info", "alice-dev/prompt-lib", "--json"]));
    assert!(
        info["versions"].as_array().is_some_and(|v| !v.is_empty()),
        "{info}"
    );

    // --frozen: a new dependency in mlld-config.json, or a pin the lock does not answer, fails.
    let before = fs::read(client.project.join(".mlld/mlld.lock.json")).unwrap();
    write(
        &client.project,
        "mlld-config.json",
        "{\"dependencies\": {\"@alice-dev/table-fmt\": \"0.1.0\"}}",
    );
    let stderr = assert_fails(&client.run(&["install", "--frozen", "--offline"]), 2);
    assert!(
        stderr.contains("mlld-config.json:1:")
            && stderr.contains("@alice-dev/table-fmt is imported but not in the lock file"),
        "{stderr}"
    );
    fs::remove_file(client.project.join("mlld-config.json")).unwrap();
    write(
        &client.project,
        "main.mld",
        "/import { @f } from @alice-dev/prompt-lib@beta\n",
    );
    let stderr = assert_fails(&client.run(&["install", "--frozen", "--offline"]), 2);
    assert!(
        stderr.contains(
            "@alice-dev/prompt-lib is locked at 1.2.0 (1.2.0), but the project asks for beta"
        ),
        "{stderr}"
    );
    assert_eq!(
        fs::read(client.project.join(".mlld/mlld.lock.json")).unwrap(),
        before
    );
}

/// `JSON.stringify(value, null, 2)` of mlld's cache metadata, written out by hand.
fn expected_cache_metadata(content: &[u8], source: &str, import: &str, cached_at: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(content);
    format!(
        "{{\n  \"hash\": \"{}\",\n  \"integrity\": \"sha256-{}\",\n  \"source\": \"{source}\",\n  \"cachedAt\": \"{cached_at}\",\n  \"size\": {},\n  \"importPath\": \"{import}\"\n}}",
        hex::encode(digest),
        base64::engine::general_purpose::STANDARD.encode(digest),
        content.len()
    )
}

#[test]
fn mlld_lock_and_cache_match_mlld_formats_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    write(
        &client.project,
        "mlld-config.json",
        "{\n  \"name\": \"demo\",\n  \"dependencies\": {\n    \"@alice-dev/table-fmt\": \"~0.1.0\"\n  }\n}\n",
    );
    write(
        &client.project,
        "main.mld",
        "/import { @x } from @adamavenir/json-utils@stable\n/import { @s } from @textkit/slugify\n",
    );
    assert_ok(&client.run(&["install", "--yes", "--offline"]));

    let text = fs::read_to_string(client.project.join("mlld-lock.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let at = v["metadata"]["createdAt"].as_str().unwrap().to_string();
    assert!(mlld_schemas::names::parse_timestamp(&at).is_ok(), "{at}");
    let json_utils = raw_of_version("adamavenir/json-utils/1.1.0.json");
    let table_fmt = raw_of_version("alice-dev/table-fmt/0.1.0.json");
    let slugify_lock = &lock(&client)["imports"]["mlld://textkit/slugify"];
    let slugify = fs::read(
        client
            .project
            .join(".mlld/cache/gist/textkit/1b551eda3ee302fb64770624f6a6303e")
            .join(slugify_lock["gistRevision"].as_str().unwrap())
            .join("content.mld"),
    )
    .unwrap();
    let string_case_lock = &lock(&client)["imports"]["mlld://textkit/string-case"];
    let string_case = fs::read(
        client
            .project
            .join(".mlld/cache/gist/textkit/809bcd21e6febf89415ca7f8fa1cc3f9")
            .join(string_case_lock["gistRevision"].as_str().unwrap())
            .join("content.mld"),
    )
    .unwrap();
    let entry = |requested: &str, version: &str, content: &[u8], source: &str| {
        let h = sha256_hex(content);
        format!(
            "{{\n      \"version\": \"{requested}\",\n      \"registryVersion\": \"{version}\",\n      \"resolved\": \"{h}\",\n      \"source\": \"{source}\",\n      \"integrity\": \"sha256:{h}\",\n      \"fetchedAt\": \"{at}\"\n    }}"
        )
    };
    let slugify_rev = slugify_lock["gistRevision"].as_str().unwrap();
    let string_case_rev = string_case_lock["gistRevision"].as_str().unwrap();
    let expected = format!(
        "{{\n  \"lockfileVersion\": 1,\n  \"modules\": {{\n    \"@adamavenir/json-utils\": {},\n    \"@alice-dev/table-fmt\": {},\n    \"@textkit/slugify\": {},\n    \"@textkit/string-case\": {}\n  }},\n  \"metadata\": {{\n    \"createdAt\": \"{at}\",\n    \"updatedAt\": \"{at}\"\n  }}\n}}",
        entry(
            "stable",
            "1.1.0",
            &json_utils,
            "registry://@adamavenir/json-utils@1.1.0"
        ),
        entry(
            "~0.1.0",
            "0.1.0",
            &table_fmt,
            "registry://@alice-dev/table-fmt@0.1.0"
        ),
        entry(
            "latest",
            slugify_rev,
            &slugify,
            "mlld://gist/textkit/1b551eda3ee302fb64770624f6a6303e"
        ),
        entry(
            "latest",
            string_case_rev,
            &string_case,
            "mlld://gist/textkit/809bcd21e6febf89415ca7f8fa1cc3f9"
        ),
    );
    assert_eq!(text, expected);

    // mlld's content cache in $HOME: content.mld, metadata.json, index.json.
    let root = client.home.join("user-home/.mlld/cache/sha256");
    let mut index = Vec::new();
    for (import, content, source) in [
        (
            "@adamavenir/json-utils",
            &json_utils,
            "registry://@adamavenir/json-utils@1.1.0",
        ),
        (
            "@alice-dev/table-fmt",
            &table_fmt,
            "registry://@alice-dev/table-fmt@0.1.0",
        ),
        (
            "@textkit/slugify",
            &slugify,
            "mlld://gist/textkit/1b551eda3ee302fb64770624f6a6303e",
        ),
        (
            "@textkit/string-case",
            &string_case,
            "mlld://gist/textkit/809bcd21e6febf89415ca7f8fa1cc3f9",
        ),
    ] {
        let hash = sha256_hex(content);
        let entry_dir = root.join(&hash[..2]).join(&hash[2..]);
        assert_eq!(
            &fs::read(entry_dir.join("content.mld")).unwrap(),
            content,
            "{import}"
        );
        let meta = fs::read_to_string(entry_dir.join("metadata.json")).unwrap();
        let cached_at: Value = serde_json::from_str(&meta).unwrap();
        assert_eq!(
            meta,
            expected_cache_metadata(
                content,
                source,
                import,
                cached_at["cachedAt"].as_str().unwrap()
            )
        );
        index.push(format!("  \"{import}\": \"{hash}\""));
    }
    assert_eq!(
        fs::read_to_string(root.join("index.json")).unwrap(),
        format!("{{\n{}\n}}", index.join(",\n"))
    );

    // A second install changes neither file; entries and fields mlld owns survive.
    let mut owned: Value = serde_json::from_str(&text).unwrap();
    owned["modules"]["@local/dev"] = serde_json::json!({"version": "1.0.0", "resolved": "x"});
    owned["modules"]["@textkit/slugify"]["mlldOnly"] = true.into();
    owned["metadata"]["mlldVersion"] = "2.0.0".into();
    let owned_text = serde_json::to_string_pretty(&owned).unwrap();
    fs::write(client.project.join("mlld-lock.json"), &owned_text).unwrap();
    assert_ok(&client.run(&["install", "--offline", "--frozen"]));
    assert_eq!(
        fs::read_to_string(client.project.join("mlld-lock.json")).unwrap(),
        owned_text
    );

    // A cache entry holding other bytes is left alone, with a warning.
    let hash = sha256_hex(&json_utils);
    let content = root.join(&hash[..2]).join(&hash[2..]).join("content.mld");
    fs::write(&content, "other bytes").unwrap();
    let out = client.run(&["install", "--offline"]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("left alone"));
    assert_eq!(fs::read(&content).unwrap(), b"other bytes");
}

#[test]
fn mlld_lock_false_writes_neither_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    write(
        &client.project,
        ".mlld/config.json",
        "{\"mlldLock\": false}",
    );
    write(
        &client.project,
        "main.mld",
        "/import { @x } from @adamavenir/json-utils\n/import { @s } from @textkit/slugify\n",
    );
    assert_ok(&client.run(&["install", "--yes", "--offline"]));
    assert_eq!(
        modules(&client)["@adamavenir/json-utils"]["version"],
        "2.0.0"
    );
    assert!(!client.project.join("mlld-lock.json").exists());
    assert!(!client.home.join("user-home/.mlld").exists());
    // Without the key both are written.
    fs::remove_file(client.project.join(".mlld/config.json")).unwrap();
    assert_ok(&client.run(&["install", "--offline"]));
    assert!(client.project.join("mlld-lock.json").is_file());
    assert!(
        client
            .home
            .join("user-home/.mlld/cache/sha256/index.json")
            .is_file()
    );
}

#[test]
fn install_reports_every_problem_in_one_run_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    write(
        &client.project,
        "a.mld",
        "/import { @a } from @sarah-k/../x\n/import { @b } from \"mlld://../../x\"\n",
    );
    write(
        &client.project,
        "docs/b.mld.md",
        "# B\n/import { @c } from @\u{0455}arah-k/llm-cache\n/import { @d } from @sarah\u{2010}k/llm-cache\n",
    );
    write(
        &client.project,
        "c.mld",
        "/import { @e } from @textkit/slugify@^1.0\n",
    );
    write(
        &client.project,
        "mlld-config.json",
        "{\n  \"dependencies\": {\n    \"@alice-dev/table-fmt\": 2\n  }\n}\n",
    );
    let stderr = assert_fails(&client.run(&["install", "--yes", "--offline"]), 2);
    for wanted in [
        "a.mld:1: `@sarah-k/../x`",
        "a.mld:2: `mlld://../../x`",
        "docs/b.mld.md:2: `@\u{0455}arah-k/llm-cache`",
        "docs/b.mld.md:3: `@sarah\u{2010}k/llm-cache`",
        "c.mld:1: @textkit/slugify@^1.0",
        "is a Phase-1 gist module without versions",
        "mlld-config.json:3:29: $.dependencies[\"@alice-dev/table-fmt\"]",
        "6 problem(s)",
    ] {
        assert!(stderr.contains(wanted), "missing {wanted:?} in:\n{stderr}");
    }
    assert!(!client.project.join(".mlld/mlld.lock.json").exists());
    assert!(!client.project.join("mlld-lock.json").exists());
}

#[test]
fn user_names_compare_case_insensitively_and_big_files_are_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    write(
        &client.project,
        "a.mld",
        "/import { @a } from @SARAH-K/llm-cache\n/import { @t } from @Alice-Dev/table-fmt\n",
    );
    write(
        &client.project,
        "b.mld",
        "/import { @a } from @sarah-k/llm-cache\n/import { @t } from @alice-dev/table-fmt@0.2.0\n",
    );
    // Over 4 MiB, with an unclosed brace list and millions of newlines first.
    let mut big = String::from("/import {\n");
    big.push_str(&"\n".repeat(5 << 20));
    big.push_str("/import { @j } from @jdoe/date-fmt\n");
    write(&client.project, "big.mld", &big);
    assert_ok(&client.run(&["install", "--yes", "--offline"]));
    let keys = locked_keys(&client);
    assert_eq!(
        keys.iter()
            .filter(|k| k.to_lowercase().contains("llm-cache"))
            .collect::<Vec<_>>(),
        ["mlld://sarah-k/llm-cache"]
    );
    assert!(
        keys.contains(&"mlld://jdoe/date-fmt".to_string()),
        "{keys:?}"
    );
    let m = modules(&client);
    assert_eq!(
        m.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["@alice-dev/table-fmt"]
    );
    assert_eq!(m["@alice-dev/table-fmt"]["version"], "0.2.0");
}

#[test]
fn update_moves_within_the_requested_range() {
    let dir = tempfile::tempdir().unwrap();
    // Serial 1 does not have json-utils 1.1.0 yet.
    let registry = dir.path().join("registry");
    mlld_e2e::copy_dir(&examples().join("registry"), &registry);
    let folder = registry.join("modules/adamavenir/json-utils");
    fs::remove_file(folder.join("1.1.0.json")).unwrap();
    fs::write(folder.join("tags.json"), "{\"latest\": \"2.0.0\"}\n").unwrap();
    mlld_e2e::build_with(
        &dir.path().join("site"),
        Some(1),
        mlld_e2e::build_time(),
        mlld_e2e::demo_key(),
        &registry,
    );
    let (_, client) = synced(dir.path());
    write(
        &client.project,
        "main.mld",
        "/import { @x } from @adamavenir/json-utils@^1.0\n",
    );
    assert_ok(&client.run(&["install", "--yes", "--offline"]));
    assert_eq!(
        modules(&client)["@adamavenir/json-utils"]["version"],
        "1.0.0"
    );
    assert!(assert_ok(&client.run(&["update", "--offline"])).contains("newest revision"));

    mlld_e2e::build_examples(&dir.path().join("site"), Some(2), mlld_e2e::build_time());
    assert_ok(&client.run(&["sync", "--offline"]));
    let rows = json(&client.run(&["ls", "--json"]));
    assert_eq!(rows[0]["newer"], "1.1.0");
    let stderr = assert_fails(
        &client.run(&["update", "@adamavenir/json-utils", "--offline"]),
        2,
    );
    assert!(stderr.contains("--yes"), "{stderr}");
    let out = assert_ok(&client.run(&["update", "--yes", "--offline"]));
    assert!(
        out.contains("version   1.0.0 (")
            && out.contains("→ 1.1.0 (")
            && out.contains("within ^1.0"),
        "{out}"
    );
    let entry = modules(&client)["@adamavenir/json-utils"].clone();
    assert_eq!(
        (entry["version"].as_str(), entry["requested"].as_str()),
        (Some("1.1.0"), Some("^1.0"))
    );
    let mlld: Value =
        serde_json::from_slice(&fs::read(client.project.join("mlld-lock.json")).unwrap()).unwrap();
    assert_eq!(
        mlld["modules"]["@adamavenir/json-utils"]["registryVersion"],
        "1.1.0"
    );
    assert_eq!(mlld["modules"]["@adamavenir/json-utils"]["version"], "^1.0");
    assert!(
        client
            .project
            .join(".mlld/cache/registry/adamavenir/json-utils/1.1.0/files")
            .is_dir()
    );
    assert_ok(&client.run(&["verify"]));
    assert_eq!(client.guard.connections(), 0);
}

#[test]
fn advisories_naming_a_versioned_module_affect_its_versions() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry");
    mlld_e2e::copy_dir(&examples().join("registry"), &registry);
    write(
        &registry,
        "alice-dev/advisories.json",
        r#"{"version": "1.0.0", "author": "alice-dev", "advisories": [{"id": "2025-001", "created": "2025-08-01T00:00:00Z", "severity": "high", "affects": ["prompt-lib"], "gists": [], "type": "prompt-injection", "description": "fewShot passes examples unescaped.", "recommendation": "Upgrade when 1.3.0 is stable."}]}"#,
    );
    mlld_e2e::build_with(
        &dir.path().join("site"),
        Some(1),
        mlld_e2e::build_time(),
        mlld_e2e::demo_key(),
        &registry,
    );
    let (_, client) = synced(dir.path());
    write(
        &client.project,
        "main.mld",
        "/import { @a } from @alice-dev/prompt-lib@stable\n/import { @t } from @alice-dev/table-fmt\n",
    );
    assert_ok(&client.run(&["install", "--yes", "--offline"]));
    let out = client.run(&["audit", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = mlld_e2e::project::envelope_data(&out.stdout);
    assert_eq!(report["modules"], 3, "{report}");
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!(findings[0]["import"], "@alice-dev/prompt-lib");
    assert_eq!(findings[0]["version"], "1.0.0");
    assert_eq!(findings[0]["advisory"], "alice-dev/2025-001");
    let text = String::from_utf8(client.run(&["audit"]).stdout).unwrap();
    assert!(text.contains("@alice-dev/prompt-lib @ 1.0.0"), "{text}");
    let info = json(&client.run(&["info", "@alice-dev/prompt-lib", "--json"]));
    assert_eq!(info["advisories"][0]["id"], "2025-001");
}

#[test]
fn a_dependency_range_the_locked_version_misses_is_kept_and_warned_of() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    let (path, p) = project(dir.path(), "kept");
    resolve_in(&client, &p, "@adamavenir/json-utils@2.0.0");
    let prompt_lib_in = |project: &str| {
        client.run(&[
            "resolve",
            "@alice-dev/prompt-lib@^1.0",
            "--yes",
            "--offline",
            "--project",
            project,
        ])
    };
    // prompt-lib 1.x asks for json-utils ^1.0; the project locked 2.0.0.
    let out = prompt_lib_in(&p);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    let warning = "warning: @alice-dev/prompt-lib asks for @adamavenir/json-utils@^1.0, which the locked 2.0.0 does not satisfy";
    assert_eq!(
        err.matches(warning).count(),
        1,
        "once, naming who asks: {err}"
    );
    assert!(
        err.contains("mlld-registry resolve '@adamavenir/json-utils@^1.0'"),
        "{err}"
    );
    assert_eq!(
        locked_module(&path, "@adamavenir/json-utils")["version"],
        "2.0.0"
    );
    // A dependency whose range the locked version meets says nothing.
    let (_, met) = project(dir.path(), "met");
    resolve_in(&client, &met, "@adamavenir/json-utils@1.1.0");
    let out = prompt_lib_in(&met);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
}

#[test]
fn ls_aligns_versions_and_revisions_in_one_column() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    let (_, p) = project(dir.path(), "both");
    resolve_in(&client, &p, "@adamavenir/json-utils");
    resolve_in(&client, &p, "mlld://jdoe/date-fmt");
    let out = client.run(&["ls", "--offline", "--project", &p]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    // The cache state starts at the same column on every row.
    let state_at: Vec<usize> = lines.iter().map(|l| l.find("  ok ").unwrap()).collect();
    assert!(lines.iter().any(|l| l.contains("2.0.0 (latest)")), "{text}");
    assert_eq!(state_at[0], state_at[1], "{text}");
}

/// prompt-lib 1.2.0 needs json-utils twice over: its version file asks
/// `^1.0.0` and its entry file imports `@adamavenir/json-utils@^1.0`. Both
/// ranges are checked, but it is one lock entry: reported once ("locked",
/// not then "already locked" as well), in text and in JSON.
#[test]
fn a_dependency_named_by_two_spellings_of_a_range_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    let (_, text_project) = project(dir.path(), "text");
    let args = [
        "resolve",
        "@alice-dev/prompt-lib@^1.2",
        "--yes",
        "--offline",
    ];
    let out = assert_ok(&client.run(&[&args[..], &["--project", &text_project]].concat()));
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("json-utils")).collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].starts_with("locked @adamavenir/json-utils at 1.1.0"),
        "{out}"
    );

    let (_, json_project) = project(dir.path(), "json");
    let data = resolve_in(&client, &json_project, "@alice-dev/prompt-lib@^1.2");
    let keys: Vec<&str> = (data.as_array().unwrap().iter())
        .map(|l| l["import"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["@alice-dev/prompt-lib", "@adamavenir/json-utils"],
        "{data}"
    );
}
