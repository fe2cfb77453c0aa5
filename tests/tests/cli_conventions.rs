//! Conventions scripts and shells rely on, through the real binary: a
//! reader that closes the pipe early, plural counts.

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
