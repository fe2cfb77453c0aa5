//! One approval screen: `resolve @sarah-k/eval-report` shows the eight
//! modules it would lock once, each with author, revision, size,
//! advisories (its own and those of what it brings in) and why it is here,
//! and asks once: approve all, review one by one, or abort. Driven on a
//! real pseudo-terminal (`script` from util-linux), as a person would.

use std::io::Write as _;
use std::process::{Command, Stdio};

use mlld_e2e::project::{lock, synced, write};
use mlld_e2e::{Client, assert_fails};

/// Runs the client with `args` on a pseudo-terminal, typing `input`;
/// returns the exit code and everything the terminal showed.
fn on_terminal(client: &Client, args: &[&str], input: &str) -> (Option<i32>, String) {
    let inner = client.command(args);
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
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"),
    )
}

const EIGHT: [&str; 8] = [
    "sarah-k/eval-report",
    "sarah-k/llm-cache",
    "sarah-k/llm-judge",
    "adamavenir/json-utils",
    "devops-dan/http-retry",
    "mlld-lang/prompt-kit",
    "textkit/string-case",
    "textkit/text-wrap",
];

#[test]
fn one_screen_lists_every_new_module_and_approve_all_locks_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    let (code, shown) = on_terminal(&client, &["resolve", "@sarah-k/eval-report"], "a\n");
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("8 new modules to approve:"), "{shown}");
    assert_eq!(shown.matches("Approve").count(), 1, "asked once:\n{shown}");
    assert!(
        shown.contains(
            "Approve all 8 new modules? [a] approve all  [r] review one by one  [N] abort"
        ),
        "{shown}"
    );
    for name in EIGHT {
        assert!(
            shown.contains(&format!("\n  {name}  revision ")),
            "{name}:\n{shown}"
        );
    }
    for wanted in [
        "  sarah-k/eval-report  revision f3c810c9f8e9  1.0 KiB  by sarah-k",
        "    why         asked for on the command line",
        "    why         dependency of sarah-k/eval-report",
        "    why         dependency of sarah-k/llm-judge",
        // Its own advisory, and the root sees those of what it brings in.
        "    ADVISORY    [high] sarah-k/2024-001 cache-poisoning:",
        "    ADVISORY    [high] via sarah-k/llm-cache: sarah-k/2024-001 cache-poisoning:",
        "    ADVISORY    [medium] via devops-dan/http-retry: devops-dan/2024-001 denial-of-service:",
        "    ADVISORY    [low] via textkit/text-wrap: sarah-k/2024-002 data-corruption:",
    ] {
        assert!(shown.contains(wanted), "{wanted:?} in\n{shown}");
    }
    let l = lock(&client);
    let imports = l["imports"].as_object().unwrap();
    assert_eq!(imports.len(), 8, "{l:#}");
    assert!(
        imports
            .values()
            .all(|e| e["approvedAt"].as_str().is_some_and(|t| t.ends_with('Z')))
    );
}

#[test]
fn abort_and_a_refusal_while_reviewing_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    let (code, shown) = on_terminal(&client, &["resolve", "@sarah-k/eval-report"], "n\n");
    assert_eq!(code, Some(2), "{shown}");
    assert!(
        shown.contains("the 8 new modules were not approved; nothing was changed"),
        "{shown}"
    );
    assert!(!client.project.join(".mlld/mlld.lock.json").exists());

    // Review: the first seven approved, the last refused.
    let input = format!("r\n{}n\n", "y\n".repeat(7));
    let (code, shown) = on_terminal(&client, &["resolve", "@sarah-k/eval-report"], &input);
    assert_eq!(code, Some(2), "{shown}");
    assert!(
        shown.contains("(1/8) module     @sarah-k/eval-report"),
        "{shown}"
    );
    assert!(shown.contains("(8/8) module     @"), "{shown}");
    assert!(
        shown.contains("was not approved; nothing was changed"),
        "{shown}"
    );
    assert!(!client.project.join(".mlld/mlld.lock.json").exists());
    assert!(!client.project.join(".mlld/cache").exists());
}

#[test]
fn reviewing_one_by_one_and_approving_each_locks_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    let input = format!("r\n{}", "y\n".repeat(8));
    let (code, shown) = on_terminal(&client, &["resolve", "@sarah-k/eval-report"], &input);
    assert_eq!(code, Some(0), "{shown}");
    assert_eq!(shown.matches("[y/N]").count(), 8, "{shown}");
    assert_eq!(lock(&client)["imports"].as_object().unwrap().len(), 8);
}

#[test]
fn install_says_where_each_import_is_and_without_a_terminal_names_yes() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    write(
        &client.project,
        "main.mld",
        "# report\n\n/import { @report } from @sarah-k/eval-report\n/import { @slug } from @textkit/slugify\n",
    );
    let stderr = assert_fails(&client.run(&["install"]), 2);
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(stderr.contains("sarah-k/eval-report, "), "{stderr}");
    assert!(!client.project.join(".mlld/mlld.lock.json").exists());

    let (code, shown) = on_terminal(&client, &["install"], "a\n");
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("9 new modules to approve:"), "{shown}");
    assert!(
        shown.contains("    why         imported at main.mld:3"),
        "{shown}"
    );
    assert!(
        shown.contains("    why         imported at main.mld:4"),
        "{shown}"
    );
    // string-case comes in through two modules.
    assert!(
        shown.contains(
            "    why         dependency of adamavenir/json-utils; dependency of textkit/slugify"
        ),
        "{shown}"
    );
    assert_eq!(shown.matches("Approve").count(), 1, "{shown}");
    assert_eq!(lock(&client)["imports"].as_object().unwrap().len(), 9);
}
