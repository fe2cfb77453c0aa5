//! The human output of every command, as snapshots (`insta`, in the style
//! of uv's CLI tests): a wording change shows up as a reviewed diff of
//! `tests/tests/snapshots/*.snap` (`cargo insta review`, or
//! `INSTA_UPDATE=always` and `git diff`), never by accident. Temp paths,
//! times and digests are filtered. Also: each subcommand's `--help` shows
//! only the flags it uses, and `resolve` says what it did with a new pin.

use std::process::Output;

use mlld_e2e::project::{lock, synced, synced_then_moved_on, write};
use mlld_e2e::{Client, assert_ok};

/// stdout and stderr of a run, with its exit code, filtered.
fn shown(client: &Client, args: &[&str]) -> String {
    render(client, &client.run(args))
}

fn render(client: &Client, out: &Output) -> String {
    let root = client
        .project
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    format!(
        "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .replace(&root, "[TMP]")
}

macro_rules! snapshot {
    ($name:expr, $text:expr) => {
        insta::with_settings!({
            filters => vec![
                (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", "[TIME]"),
                (r"\b[0-9a-f]{64}\b", "[SHA256]"),
                (r"\b\d+(\.\d+)? (B|KiB|MiB)\b", "[SIZE]"),
                (r"\b\d+ bytes\b", "[BYTES]"),
                (r"\b\d+ (second|minute|hour|day)s? (old|ago)\b", "[AGE]"),
            ],
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!($name, $text);
        });
    };
}

#[test]
fn the_workflow_commands_say_what_they_did() {
    let dir = tempfile::tempdir().unwrap();
    let (site, client) = synced(dir.path());
    let from = site.dir.to_str().unwrap().to_string();
    snapshot!(
        "sync_up_to_date",
        shown(&client, &["sync", "--from", &from, "--offline"])
    );
    snapshot!(
        "resolve",
        shown(&client, &["resolve", "@sarah-k/eval-report", "--yes"])
    );
    write(
        &client.project,
        "main.mld",
        "/import { @slug } from @textkit/slugify\n",
    );
    snapshot!("install", shown(&client, &["install", "--yes"]));
    snapshot!("audit", shown(&client, &["audit"]));
    snapshot!(
        "audit_high",
        shown(&client, &["audit", "--severity", "high"])
    );
    snapshot!("verify", shown(&client, &["verify"]));
    snapshot!("ls", shown(&client, &["ls"]));
    snapshot!("stats", shown(&client, &["stats"]));
    snapshot!("search", shown(&client, &["search", "retry"]));
    snapshot!("search_no_match", shown(&client, &["search", "slugifier"]));
    snapshot!("info", shown(&client, &["info", "sarah-k/llm-cache"]));
    snapshot!(
        "info_versioned",
        shown(&client, &["info", "@alice-dev/prompt-lib"])
    );
    snapshot!("update_nothing", shown(&client, &["update"]));
    snapshot!("config", shown(&client, &["config"]));
    snapshot!("doctor", shown(&client, &["doctor"]));
    snapshot!(
        "resolve_unknown",
        shown(&client, &["resolve", "@sarah-k/llm-cahce"])
    );
}

#[test]
fn update_and_an_acted_on_advisory() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced_then_moved_on(dir.path());
    snapshot!("audit_fix_by_update", shown(&client, &["audit"]));
    snapshot!("outdated", shown(&client, &["outdated"]));
    snapshot!("update", shown(&client, &["update", "--yes"]));
    snapshot!("outdated_nothing", shown(&client, &["outdated"]));
    snapshot!(
        "remove",
        shown(&client, &["remove", "mlld://adamavenir/json-utils"])
    );
}

#[test]
fn every_help_shows_only_the_flags_its_command_uses() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(dir.path());
    for sub in [
        "sync",
        "resolve",
        "install",
        "update",
        "audit",
        "verify",
        "ls",
        "stats",
        "search",
        "info",
        "config",
        "doctor",
        "completions",
        "remove",
        "outdated",
    ] {
        let out = client.command(&[sub, "--help"]).output().unwrap();
        let help = assert_ok(&out);
        snapshot!(format!("help_{sub}"), help.clone());
        let has = |flag: &str| help.contains(&format!("      {flag}"));
        assert_eq!(
            has("--yes"),
            ["resolve", "install", "update"].contains(&sub),
            "{sub}: {help}"
        );
        // Every command reading the registry: a sparse store fetches what it lacks.
        let reads_registry = [
            "sync", "resolve", "install", "update", "audit", "ls", "search", "info", "remove",
            "outdated",
        ];
        assert_eq!(
            has("--offline"),
            reads_registry.contains(&sub),
            "{sub}: {help}"
        );
        assert_eq!(
            has("--allow-expired"),
            ["resolve", "install", "update", "audit"].contains(&sub),
            "{sub}: {help}"
        );
        assert_eq!(has("--json"), sub != "completions", "{sub}: {help}");
    }
    // A hidden flag is still accepted (scripts that pass it keep working).
    let out = client.run(&["verify", "--yes", "--offline"]);
    assert_eq!(out.status.code(), Some(0), "{}", render(&client, &out));
}

#[test]
fn resolve_with_a_new_pin_says_what_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    assert_ok(&client.run(&["resolve", "@adamavenir/json-utils@1.0.0", "--yes"]));
    // A range the locked version satisfies: kept, the request recorded.
    let text = assert_ok(&client.run(&["resolve", "@adamavenir/json-utils@^1.0.0", "--yes"]));
    assert!(
        text.contains("kept @adamavenir/json-utils at 1.0.0 (sha256:")
            && text
                .contains("): it satisfies ^1.0.0; the lock now asks for ^1.0.0 instead of 1.0.0"),
        "{text}"
    );
    assert_eq!(
        lock(&client)["modules"]["@adamavenir/json-utils"]["requested"],
        "^1.0.0"
    );
    // A pin it does not satisfy: moved.
    let text = assert_ok(&client.run(&["resolve", "@adamavenir/json-utils@2.0.0", "--yes"]));
    assert!(
        text.starts_with("moved @adamavenir/json-utils from 1.0.0 to 2.0.0 (sha256:")
            && text.contains("as @adamavenir/json-utils@2.0.0 asks"),
        "{text}"
    );
    // The same again: nothing to do.
    let text = assert_ok(&client.run(&["resolve", "@adamavenir/json-utils@2.0.0", "--yes"]));
    assert!(
        text.starts_with("already locked @adamavenir/json-utils at 2.0.0"),
        "{text}"
    );
    snapshot!(
        "resolve_gist_pin",
        shown(
            &client,
            &["resolve", "mlld://adamavenir/json-utils@b20e54d", "--yes"]
        )
    );
}
