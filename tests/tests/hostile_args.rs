//! No input may panic: every command, over a corpus of hostile arguments
//! (short, long, unicode, `../`, empty, control characters, huge), ends
//! with exit 2 and a message. A panic anywhere (exit 101, or "panicked" on
//! stderr) or a signal fails this test.

use mlld_e2e::Client;
use mlld_e2e::project::synced;

fn corpus() -> Vec<String> {
    let mut c: Vec<String> = [
        "",
        " ",
        "a",
        "@",
        "@/",
        "//",
        "@a/b@",
        "@user/module@v1.0",
        "@sarah-k/llm-cache@v1.0",
        "@sarah-k/llm-cache@1",
        "@sarah-k/llm-cache@v",
        "@sarah-k/llm-cache@ffffffffffffffffffffffffffffffffffffffffff",
        "@sarah-k/llm-cache@é",
        "mlld://../../x",
        "@sarah-k/../x",
        "sarah-k/../../etc",
        "../..",
        "/etc/passwd",
        "\\..\\..\\x",
        "\u{1b}[2J\u{1b}[Hsafe",
        "a\u{7}\u{8}\u{7f}b",
        "\u{202e}kcatta",
        "@sárah/модуль",
        "@sarah‐k/llm-cache",
        "%2e%2e/%2e%2e",
        "-",
        "-x",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    c.push("a".repeat(100_000));
    c.push(format!("@{}/b", "a".repeat(60_000)));
    c.push(format!("@sarah-k/llm-cache@{}", "f".repeat(60_000)));
    c.push("é".repeat(30_000));
    c.push("\u{1b}".repeat(1000));
    c
}

/// Where each hostile value goes; `search` may legitimately match (0) or not (1).
fn invocations(value: &str) -> Vec<(Vec<String>, &'static [i32])> {
    let v = value.to_string();
    let s = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let with = |a: &[&str]| {
        let mut out = s(a);
        out.push(v.clone());
        out
    };
    const ERROR: &[i32] = &[2];
    vec![
        (with(&["resolve", "--yes"]), ERROR),
        (with(&["update", "--yes"]), ERROR),
        (with(&["info"]), ERROR),
        (with(&["search"]), &[0, 1, 2]),
        (with(&["search", "json", "--author"]), &[1, 2]),
        (with(&["search", "json", "--tag"]), &[1, 2]),
        (with(&["sync", "--offline", "--from"]), ERROR),
        (with(&["audit", "--severity"]), ERROR),
        (with(&["stats", "--since"]), ERROR),
        (with(&["install"]), ERROR),
        (with(&["verify"]), ERROR),
        (with(&["ls"]), ERROR),
        (with(&["info", "jdoe/date-fmt", "--snapshot"]), ERROR),
        (with(&["audit", "--trusted-key"]), ERROR),
    ]
}

fn check(client: &Client, args: &[String], allowed: &[i32]) {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = client.run(&refs);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let shown: Vec<String> = refs
        .iter()
        .map(|a| a.chars().take(60).collect::<String>())
        .collect();
    assert!(
        !stderr.contains("panicked"),
        "{shown:?} panicked:\n{stderr}"
    );
    let code = out.status.code();
    assert!(
        code.is_some_and(|c| allowed.contains(&c)),
        "{shown:?} exited {code:?} (allowed {allowed:?}):\n{}",
        stderr.chars().take(2000).collect::<String>()
    );
    if code == Some(2) {
        assert!(
            stderr.trim_start().starts_with("error") && stderr.trim().len() > 10,
            "{shown:?} gave no message:\n{stderr}"
        );
    }
}

#[test]
fn every_command_survives_hostile_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    mlld_e2e::assert_ok(&client.run(&["resolve", "@sarah-k/llm-cache", "--yes"]));
    for value in corpus() {
        for (args, allowed) in invocations(&value) {
            check(&client, &args, allowed);
        }
    }
}

#[test]
fn a_version_pin_on_a_gist_module_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    let out = client.run(&["resolve", "@sarah-k/llm-cache@v1.0", "--yes"]);
    let stderr = mlld_e2e::assert_fails(&out, 2);
    assert!(stderr.contains("pin a gist revision instead"), "{stderr}");
    // Once locked, the same pin is still an error, not silently ignored.
    mlld_e2e::assert_ok(&client.run(&["resolve", "@sarah-k/llm-cache", "--yes"]));
    let out = client.run(&["resolve", "@sarah-k/llm-cache@v1.0", "--yes"]);
    let stderr = mlld_e2e::assert_fails(&out, 2);
    assert!(stderr.contains("pin a gist revision instead"), "{stderr}");
}
