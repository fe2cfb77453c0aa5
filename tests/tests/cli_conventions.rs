//! Conventions scripts and shells rely on, through the real binary: a
//! reader that closes the pipe early, plural counts, `--help` examples a
//! new user can copy against the demo site.

use std::io::Read;
use std::process::{Command, Stdio};

use mlld_e2e::project::synced;
use mlld_e2e::{Client, assert_ok};

/// Runs `args` with stdout a pipe whose reader is already gone (as after
/// `| head -1` has read its line): the exit code and stderr.
fn into_closed_pipe(client: &Client, args: &[&str]) -> (Option<i32>, String) {
    let mut child: std::process::Child = client
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (child.wait().unwrap().code(), stderr)
}

fn exit_code(mut cmd: Command) -> Option<i32> {
    cmd.output().unwrap().status.code()
}

#[test]
fn a_closed_pipe_stops_the_output_not_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    assert_ok(&client.run(&["resolve", "@sarah-k/eval-report", "--yes"]));
    for (args, code) in [
        (&["audit"][..], 1),
        (&["audit", "--json"], 1),
        (&["search", "json", "--json"], 0),
        (&["search", "json"], 0),
        (&["search", "zzzzqqq"], 1),
        (&["ls"], 0),
        (&["info", "sarah-k/llm-cache"], 0),
    ] {
        assert_eq!(exit_code(client.command(args)), Some(code), "{args:?}");
        let (closed, stderr) = into_closed_pipe(&client, args);
        assert_eq!(closed, Some(code), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("error"), "{args:?}: {stderr}");
    }
}

#[test]
fn counts_are_in_the_right_number() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    // text-wrap imports nothing and has one advisory.
    assert_ok(&client.run(&["resolve", "@textkit/text-wrap", "--yes"]));
    let verify = assert_ok(&client.run(&["verify"]));
    assert!(
        verify.contains("1 of 1 cached module matches the lock"),
        "{verify}"
    );
    let out = client.run(&["audit"]);
    assert_eq!(out.status.code(), Some(1));
    let audit = String::from_utf8_lossy(&out.stdout);
    assert!(
        audit.contains("1 locked module checked")
            && audit.contains("1 advisory at or above low applies"),
        "{audit}"
    );
    assert_ok(&client.run(&["resolve", "@sarah-k/eval-report", "--yes"]));
    let audit = assert_ok(&client.run(&["audit", "--severity", "critical"]));
    assert!(
        audit.contains("locked modules checked")
            && audit.contains("0 advisories at or above critical apply"),
        "{audit}"
    );
}

#[test]
fn completions_print_a_script_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    // No store, config or project needed.
    let client = Client::new(dir.path());
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef mlld-registry"),
        ("fish", "complete -c mlld-registry"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let script = assert_ok(&client.run(&["completions", shell]));
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("audit"), "{shell}");
    }
    // Flags that take one of a few words offer them.
    let bash = assert_ok(&client.run(&["completions", "bash"]));
    assert!(bash.contains("\"low medium high critical\""), "{bash}");
    let out = client.run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn colour_follows_the_flag_no_color_and_term() {
    let dir = tempfile::tempdir().unwrap();
    let (_, client) = synced(dir.path());
    assert_ok(&client.run(&["resolve", "@textkit/text-wrap", "--yes"]));
    let audit = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = client.command(args);
        cmd.env_remove("NO_COLOR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        String::from_utf8(cmd.output().unwrap().stdout).unwrap()
    };
    let colored = audit(&["audit", "--color", "always"], &[]);
    assert!(colored.contains("\x1b["), "{colored}");
    // Not a terminal (a pipe here): auto means none.
    assert!(!audit(&["audit"], &[]).contains('\x1b'));
    assert!(!audit(&["audit", "--color", "never"], &[]).contains('\x1b'));
    assert!(!audit(&["audit", "--color", "auto"], &[("TERM", "dumb")]).contains('\x1b'));
    // The flag outranks the environment.
    assert!(audit(&["audit", "--color", "always"], &[("NO_COLOR", "1")]).contains('\x1b'));
    let config = audit(&["config", "--json"], &[("NO_COLOR", "1")]);
    assert!(
        config.contains(r#""source":"environment NO_COLOR""#),
        "{config}"
    );
}

/// Every module a `--help` example names is in the demo registry, so that a
/// new user can copy any example against `cargo xtask index`'s site: each
/// resolves there (a bare `user/module` as `@user/module`). Each of the four
/// commands' examples names at least one.
#[test]
fn help_examples_name_modules_the_demo_registry_has() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    let mut refs = Vec::new();
    for command in ["resolve", "remove", "info", "update"] {
        let help = assert_ok(&client.run(&[command, "--help"]));
        let prefix = format!("mlld-registry {command} ");
        let examples = help.lines().filter_map(|l| l.trim().strip_prefix(&prefix));
        // Every word up to a comment, flags and their values aside.
        let words =
            examples.flat_map(|rest| rest.split('#').next().unwrap_or("").split_whitespace());
        let named: Vec<String> = words
            .filter(|w| w.contains('/') && !w.starts_with('-') && !w.contains(".tar"))
            .map(|w| match w.starts_with('@') || w.starts_with("mlld://") {
                true => w.to_string(),
                false => format!("@{w}"),
            })
            .collect();
        assert!(
            !named.is_empty(),
            "`{command} --help` names no module:\n{help}"
        );
        refs.extend(named);
    }
    for module in &refs {
        assert_ok(&client.run(&["resolve", module.as_str(), "--yes"]));
    }
}
