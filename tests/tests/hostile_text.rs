//! Hostile text from a registry must never drive the terminal: an advisory
//! whose description clears the screen, moves the cursor, prints a green
//! "safe" line and conceals what follows is shown escaped by `audit`, by the
//! approval prompt (on a real pseudo-terminal) and by the indexer's check,
//! which also warns about it; JSON output keeps the exact text.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use mlld_e2e::project::*;
use mlld_e2e::{assert_fails, build_time, build_with, copy_dir, demo_key, examples};

const HOSTILE: &str = "\x1b[2J\x1b[H\x1b[32mNo advisories. Safe to approve.\x1b[8m\u{202e}";
const SHOWN: &str = "\\x1b[2J\\x1b[H\\x1b[32mNo advisories. Safe to approve.\\x1b[8m\\u{202e}";

/// The example registry with sarah-k's high advisory on llm-cache made hostile.
fn hostile_registry(dir: &Path) -> std::path::PathBuf {
    let registry = dir.join("registry");
    copy_dir(&examples().join("registry"), &registry);
    let path = registry.join("sarah-k/advisories.json");
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    file["advisories"][0]["description"] = HOSTILE.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
    registry
}

fn assert_escaped(output: &str) {
    assert!(
        !output.contains('\x1b'),
        "raw ESC reached the terminal: {output:?}"
    );
    assert!(!output.contains('\u{202e}'), "raw override: {output:?}");
    assert!(
        output.contains(SHOWN),
        "the hostile text is not shown: {output}"
    );
}

#[test]
fn audit_and_json_show_hostile_advisory_text_escaped_or_exact() {
    let dir = tempfile::tempdir().unwrap();
    let registry = hostile_registry(dir.path());
    build_with(
        &dir.path().join("site"),
        Some(1),
        build_time(),
        demo_key(),
        &registry,
    );
    let (_, client) = synced(dir.path());
    let out = client.run(&["resolve", "@sarah-k/llm-cache", "--yes"]);
    mlld_e2e::assert_ok(&out);

    let out = client.run(&["audit"]);
    assert_fails(&out, 1);
    assert_escaped(&String::from_utf8(out.stdout).unwrap());

    let out = client.run(&["audit", "--json"]);
    let report: serde_json::Value = mlld_e2e::project::envelope_data(&out.stdout);
    assert_eq!(
        report["findings"][0]["description"], HOSTILE,
        "JSON keeps the exact text"
    );

    let out = client.run(&["info", "sarah-k/llm-cache"]);
    assert_escaped(&mlld_e2e::assert_ok(&out));
}

#[test]
fn the_approval_prompt_shows_hostile_advisory_text_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let registry = hostile_registry(dir.path());
    build_with(
        &dir.path().join("site"),
        Some(1),
        build_time(),
        demo_key(),
        &registry,
    );
    let (_, client) = synced(dir.path());
    // `script` gives the client a real terminal, so it asks; we answer "n".
    let inner = client.command(&["resolve", "@sarah-k/llm-cache"]);
    let mut line = String::new();
    for part in std::iter::once(inner.get_program()).chain(inner.get_args()) {
        line.push_str(&format!("'{}' ", part.to_str().unwrap()));
    }
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"]).env_clear();
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux runs");
    child.stdin.take().unwrap().write_all(b"n\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    // One screen for llm-cache and the two modules it brings in.
    assert!(shown.contains("Approve all 3 new modules?"), "{shown}");
    assert!(shown.contains("were not approved"), "{shown}");
    assert_escaped(&shown);
    assert!(!client.project.join(".mlld/mlld.lock.json").exists());
}

#[test]
fn check_warns_about_hostile_text_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let registry = hostile_registry(dir.path());
    let diagnostics = mlld_indexer::check::check(&registry, None).unwrap();
    let warning = diagnostics
        .iter()
        .find(|d| d.file == "sarah-k/advisories.json")
        .expect("a warning about the hostile description");
    assert!(!warning.is_error());
    assert_eq!(warning.path.to_string(), "$.advisories[0].description");
    assert!(warning.line > 1 && warning.column > 1, "{warning}");
    assert!(warning.message.contains("U+001B"), "{warning}");
    let text = format!("{warning}");
    assert!(!text.contains('\x1b'), "{text:?}");
    let annotation = mlld_indexer::check::github_annotation(warning, "");
    assert!(annotation.starts_with("::warning file=sarah-k/advisories.json,line="));
    assert!(!annotation.contains('\x1b'), "{annotation:?}");

    // The build's report, printed by `cargo xtask index`, is escaped too, and
    // the build keeps the advisory (a warning, not an error).
    let site = build_with(
        &dir.path().join("site"),
        Some(1),
        build_time(),
        demo_key(),
        &registry,
    );
    let report = site.report.to_string();
    assert!(report.contains("U+001B"), "{report}");
    assert!(!report.contains('\x1b'), "{report:?}");
}
