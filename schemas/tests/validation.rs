//! Tolerant readers, strict validators: every rule, with file, path and line:column.

use mlld_schemas::{Level, Severity, check_advisories, check_registry};

const REGISTRY: &str = r#"{
  "version": "1.0.0",
  "updated": "2024-05-28T00:00:00Z",
  "author": "AdamAvenir",
  "servers": { "x": {} },
  "modules": {
    "json-utils": {
      "gist": "a1f3e09a42db6c680b454f6f93efa9d8",
      "description": "JSON formatting utilities",
      "tags": ["json"],
      "created": "2024-05-28T00:00:00Z",
      "icon": "📦"
    }
  }
}"#;

fn errors(src: &str) -> Vec<String> {
    check_registry("adamavenir/registry.json", "adamavenir", src)
        .diagnostics
        .iter()
        .filter(|d| d.level == Level::Error)
        .map(ToString::to_string)
        .collect()
}

#[test]
fn unknown_fields_are_kept_with_a_warning() {
    let checked = check_registry("adamavenir/registry.json", "adamavenir", REGISTRY);
    let registry = checked.value.expect("usable");
    assert!(registry.extra.contains_key("servers"));
    assert!(registry.modules["json-utils"].extra.contains_key("icon"));
    let warnings: Vec<_> = checked
        .diagnostics
        .iter()
        .map(|d| (d.level, d.path.to_string(), d.line))
        .collect();
    assert_eq!(
        warnings,
        [
            (Level::Warning, "$.servers".into(), 5),
            (Level::Warning, r#"$.modules["json-utils"].icon"#.into(), 12)
        ]
    );
}

#[test]
fn author_must_match_the_folder() {
    let checked = check_registry("jdoe/registry.json", "jdoe", REGISTRY);
    assert!(checked.value.is_none());
    let e = checked.errors().next().unwrap().to_string();
    assert!(e.starts_with("jdoe/registry.json:4:13: error: author `AdamAvenir` does not match the folder name `jdoe`"), "{e}");
    assert!(e.contains("help: set \"author\" to \"jdoe\""), "{e}");
}

#[test]
fn a_bad_module_is_dropped_and_the_rest_kept() {
    let src = REGISTRY.replace(
        "  \"modules\": {\n",
        "  \"modules\": {\n    \"Bad Name\": { \"gist\": \"a1f3e09a42db6c680b454f6f93efa9d8\" },\n    \"bad-gist\": { \"gist\": \"../../etc\" },\n    \"bad-time\": { \"gist\": \"1234567\", \"created\": \"yesterday\" },\n    \"bad-tags\": { \"gist\": \"1234567\", \"tags\": \"json\" },\n",
    );
    let checked = check_registry("adamavenir/registry.json", "adamavenir", &src);
    let registry = checked.value.expect("the file stays usable");
    assert_eq!(registry.modules.keys().collect::<Vec<_>>(), ["json-utils"]);
    let errs = errors(&src);
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(
        errs[0]
            .contains(r#":7:5: error: module name `Bad Name` must start with a lowercase letter"#),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].contains(r#":8:27: error: `../../etc` is not a gist id"#),
        "{}",
        errs[1]
    );
    assert!(
        errs[2].contains(r#":9:49: error: `yesterday` is not an RFC 3339 timestamp"#),
        "{}",
        errs[2]
    );
    assert!(
        errs[3].contains(r#"$.modules["bad-tags"].tags"#) && errs[3].contains("invalid type"),
        "{}",
        errs[3]
    );
}

/// A module named twice, and a key repeated through an escape (`"gist"`
/// and `"\u0067ist"` are one key once decoded: serde_json alone would keep
/// the second gist id without a word): refused, and where.
#[test]
fn repeated_keys_are_errors() {
    let cases = [
        (
            (
                "  \"modules\": {\n",
                "  \"modules\": {\n    \"json-utils\": { \"gist\": \"1234567\" },\n",
            ),
            ":8:5: error: this key appears more than once",
        ),
        (
            (
                "\"gist\": \"a1f3e09a42db6c680b454f6f93efa9d8\",",
                "\"gist\": \"a1f3e09a42db6c680b454f6f93efa9d8\", \"\\u0067ist\": \"1234567\",",
            ),
            "error: this key appears more than once",
        ),
    ];
    for ((from, to), expected) in cases {
        let src = REGISTRY.replace(from, to);
        assert_ne!(src, REGISTRY);
        let errs = errors(&src);
        assert!(errs.iter().any(|e| e.contains(expected)), "{errs:#?}");
        let checked = check_registry("a/registry.json", "adamavenir", &src);
        assert!(checked.value.is_none());
    }
}

#[test]
fn user_names_follow_github_rules() {
    let src = REGISTRY.replace("\"AdamAvenir\"", "\"adam--avenir\"");
    let errs = check_registry("adam--avenir/registry.json", "adam--avenir", &src);
    assert!(errs.value.is_none());
    assert!(errs.errors().next().unwrap().message.contains("hyphen"));
}

const ADVISORIES: &str = r#"{
  "version": "1.0.0",
  "author": "sarah-k",
  "advisories": [
    { "id": "2024-001", "created": "2024-05-28T00:00:00Z", "severity": "critical", "affects": ["llm-cache"], "gists": [],
      "type": "cache-poisoning", "description": "d", "recommendation": "r" },
    { "id": "2024-002", "created": "2024-05-28T00:00:00Z", "severity": "severe", "affects": ["x"], "gists": [],
      "type": "t", "description": "d", "recommendation": "r" },
    { "id": "2024-003", "created": "2024-05-28T00:00:00Z", "severity": "low", "affects": [], "gists": [],
      "type": "t", "description": "d", "recommendation": "r" },
    { "id": "2024-001", "created": "2024-05-28T00:00:00Z", "severity": "low", "affects": ["y"], "gists": ["xyz"],
      "type": "t", "description": "d", "recommendation": "r" }
  ]
}"#;

#[test]
fn advisories_are_validated_one_by_one() {
    let checked = check_advisories("sarah-k/advisories.json", "sarah-k", ADVISORIES);
    let file = checked.value.as_ref().expect("usable");
    assert_eq!(file.advisories.len(), 1);
    assert_eq!(file.advisories[0].severity, Severity::Critical);
    let errs: Vec<String> = checked.errors().map(ToString::to_string).collect();
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(
        errs[0].contains(":7:72:") && errs[0].contains("unknown variant `severe`"),
        "{}",
        errs[0]
    );
    assert!(errs[1].contains("affects nothing"), "{}", errs[1]);
    assert!(errs[2].contains("`xyz` is not a gist id"), "{}", errs[2]);
    assert!(errs[3].contains("used twice"), "{}", errs[3]);
    assert!(
        Severity::Critical > Severity::High
            && Severity::High > Severity::Medium
            && Severity::Medium > Severity::Low
    );
}

#[test]
fn the_examples_validate_as_documented() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/registry");
    let mut errors = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let user = dir.file_name().unwrap().to_str().unwrap().to_string();
        // .github (the example workflows), _index/, modules/ (today's layout)
        // and root files (README.md, modules.json, allowlist.json) are not users.
        if !dir.is_dir() || user.starts_with('.') || user.starts_with('_') || user == "modules" {
            continue;
        }
        let src = std::fs::read_to_string(dir.join("registry.json")).unwrap();
        errors.extend(
            check_registry(&format!("{user}/registry.json"), &user, &src)
                .errors()
                .map(|d| (d.file.clone(), d.line, d.column)),
        );
        let src = std::fs::read_to_string(dir.join("advisories.json")).unwrap();
        errors.extend(
            check_advisories(&format!("{user}/advisories.json"), &user, &src)
                .errors()
                .map(|d| (d.file.clone(), d.line, d.column)),
        );
    }
    assert_eq!(
        errors,
        [("broken-example/registry.json".to_string(), 9, 33)]
    );
}
