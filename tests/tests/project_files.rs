//! The project and its files, through the real binary: the project root is
//! found from a subdirectory as cargo and npm find theirs, `--project`
//! must name a directory, and no symbolic link below the project or the
//! store can redirect a write.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use mlld_e2e::project::{synced, write};
use mlld_e2e::{assert_fails, assert_ok, tree};

#[test]
fn audit_from_a_subdirectory_finds_the_projects_locked_advisory() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    assert_ok(&client.run(&["resolve", "@sarah-k/eval-report", "--yes"]));
    let deep = client.project.join("src/deep");
    fs::create_dir_all(&deep).unwrap();
    let out = client.command_in(&deep, &["audit"]).output().unwrap();
    let stderr = assert_fails(&out, 1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("llm-cache"), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "using the project at {}",
            client.project.display()
        )),
        "{stderr}"
    );
    // From the root itself nothing is said.
    let out = client
        .command_in(&client.project, &["audit"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("using the project"));
}

#[test]
fn install_from_a_subdirectory_does_not_create_a_nested_mlld() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    // A project marked only by its config file, not yet installed.
    write(&client.project, "mlld-config.json", "{}\n");
    write(
        &client.project,
        "src/main.mld",
        "/import { @x } from @jdoe/date-fmt\n",
    );
    let sub = client.project.join("src");
    let out = client
        .command_in(&sub, &["install", "--yes"])
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(!sub.join(".mlld").exists(), "{:?}", tree(&sub));
    let lock = fs::read_to_string(client.project.join(".mlld/mlld.lock.json")).unwrap();
    assert!(lock.contains("mlld://jdoe/date-fmt"), "{lock}");
}

#[test]
fn without_any_marker_the_current_directory_is_the_project() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    let fresh = dir.path().join("fresh");
    fs::create_dir_all(&fresh).unwrap();
    let out = client
        .command_in(&fresh, &["resolve", "@jdoe/date-fmt", "--yes"])
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(fresh.join(".mlld/mlld.lock.json").is_file());
}

#[test]
fn a_project_that_does_not_exist_is_an_error_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    let missing = dir.path().join("no-such-dir");
    let missing = missing.to_str().unwrap();
    for args in [
        &["sync", "--offline"][..],
        &["resolve", "@jdoe/date-fmt", "--yes"],
        &["install", "--yes"],
        &["update"],
        &["audit"],
        &["verify"],
        &["ls"],
        &["stats"],
        &["search", "json"],
        &["info", "jdoe/date-fmt"],
    ] {
        let mut full = args.to_vec();
        full.extend(["--project", missing]);
        let out = client.command_in(dir.path(), &full).output().unwrap();
        let stderr = assert_fails(&out, 2);
        assert!(
            stderr.contains("no-such-dir: no such directory"),
            "{args:?}: {stderr}"
        );
    }
    assert!(!Path::new(missing).exists());
    // A file given for the project (its main.mld, say) is named as a file.
    let file = dir.path().join("main.mld");
    fs::write(&file, "/import { @x } from @jdoe/date-fmt\n").unwrap();
    let out = (client.command_in(
        dir.path(),
        &["install", "--project", file.to_str().unwrap()],
    ))
    .output()
    .unwrap();
    let stderr = assert_fails(&out, 2);
    assert!(
        stderr.contains("main.mld: a file, not a directory"),
        "{stderr}"
    );
}

/// Runs `args`, expecting a refusal that names `link`, and nothing outside.
fn assert_refused(client: &mlld_e2e::Client, args: &[&str], link: &Path, outside: &Path) {
    let out = client.run(args);
    let stderr = assert_fails(&out, 2);
    assert!(stderr.contains("symbolic link"), "{args:?}: {stderr}");
    assert!(
        stderr.contains(&link.display().to_string()),
        "{args:?}: {stderr}"
    );
    assert_eq!(tree(outside), Vec::<String>::new(), "{args:?}");
}

fn outside(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("outside");
    fs::create_dir_all(&out).unwrap();
    out
}

#[test]
fn a_symlinked_mlld_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    let outside = outside(dir.path());
    let link = client.project.join(".mlld");
    symlink(&outside, &link).unwrap();
    assert_refused(
        &client,
        &["resolve", "@jdoe/date-fmt", "--yes"],
        &link,
        &outside,
    );
}

#[test]
fn a_symlinked_cache_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    let outside = outside(dir.path());
    fs::create_dir_all(client.project.join(".mlld")).unwrap();
    let link = client.project.join(".mlld/cache");
    symlink(&outside, &link).unwrap();
    assert_refused(
        &client,
        &["resolve", "@jdoe/date-fmt", "--yes"],
        &link,
        &outside,
    );
}

#[test]
fn a_symlinked_project_lock_file_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    let outside = outside(dir.path());
    fs::create_dir_all(client.project.join(".mlld")).unwrap();
    let link = client.project.join(".mlld/.lock");
    symlink(outside.join("created"), &link).unwrap();
    assert_refused(
        &client,
        &["resolve", "@jdoe/date-fmt", "--yes"],
        &link,
        &outside,
    );
}

#[test]
fn symlinks_in_the_store_are_refused() {
    for name in ["tmp", "snapshots", ".lock"] {
        let dir = tempfile::tempdir().unwrap();
        let (site, client) = synced(dir.path());
        let outside = outside(dir.path());
        let link = client.home.join(name);
        // Forget the synced snapshot, so that sync must stage and store it again.
        fs::remove_dir_all(client.home.join("snapshots")).unwrap();
        let _ = fs::remove_dir_all(&link);
        let _ = fs::remove_file(&link);
        let target = if name == ".lock" {
            outside.join("created")
        } else {
            outside.clone()
        };
        symlink(&target, &link).unwrap();
        fs::write(client.home.join("state.json"), "{}").unwrap();
        assert_refused(
            &client,
            &[
                "sync",
                "--offline",
                "--from",
                site.snapshot().to_str().unwrap(),
            ],
            &link,
            &outside,
        );
    }
}

/// A staging directory as `sync` leaves it, owned (its `.owner` locked) by
/// the process `holder` runs in, when there is one.
fn staging(tmp: &Path, name: &str, with_owner: bool) -> std::path::PathBuf {
    let dir = tmp.join(name);
    fs::create_dir_all(dir.join("snapshot")).unwrap();
    fs::write(dir.join("snapshot/pack"), vec![0u8; 4096]).unwrap();
    if with_owner {
        fs::write(dir.join(".owner"), b"").unwrap();
    }
    dir
}

fn hold_lock(path: &Path) -> std::process::Child {
    // `-o`: only flock itself holds the lock, so killing it releases the lock.
    let child = std::process::Command::new("flock")
        .args(["-x", "-o"])
        .arg(path)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    // Wait until the lock is really held.
    for _ in 0..100 {
        let probe = std::process::Command::new("flock")
            .args(["-n", "-x"])
            .arg(path)
            .arg("true")
            .status()
            .unwrap();
        if !probe.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

#[test]
fn staging_of_killed_syncs_is_cleaned_and_live_staging_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (site, client) = synced(dir.path());
    let tmp = client.home.join("tmp");
    let killed = staging(&tmp, "import-killed", true);
    let mut dead = hold_lock(&killed.join(".owner"));
    dead.kill().unwrap();
    dead.wait().unwrap();
    let live = staging(&tmp, "import-live", true);
    let mut holder = hold_lock(&live.join(".owner"));
    let fresh = staging(&tmp, "import-fresh", false);
    let old = staging(&tmp, "import-old", false);
    let status = std::process::Command::new("touch")
        .args(["-d", "3 hours ago"])
        .arg(&old)
        .status()
        .unwrap();
    assert!(status.success());
    // Any run that stages: an import of a snapshot the store does not hold.
    fs::remove_dir_all(client.home.join("snapshots")).unwrap();
    fs::write(client.home.join("state.json"), "{}").unwrap();
    assert_ok(&client.run(&[
        "sync",
        "--offline",
        "--from",
        site.snapshot().to_str().unwrap(),
    ]));
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(!killed.exists(), "the killed run's staging remains");
    assert!(!old.exists(), "old unowned staging remains");
    assert!(
        live.join("snapshot/pack").exists(),
        "live staging was removed"
    );
    assert!(
        fresh.exists(),
        "fresh staging (its owner may be about to lock it) was removed"
    );
    // Its own staging is gone too.
    let mut left: Vec<_> = fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["import-fresh", "import-live"]);
}

/// Moves the cache's `sarah-k` folder to `outside` and leaves a link in its
/// place; returns the link and where the folder went.
fn cache_user_moved_outside(
    client: &mlld_e2e::Client,
    outside: &Path,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let moved = outside.join("moved-sarah-k");
    let user_dir = client.project.join(".mlld/cache/gist/sarah-k");
    fs::rename(&user_dir, &moved).unwrap();
    symlink(&moved, &user_dir).unwrap();
    (user_dir, moved)
}

#[test]
fn a_remove_refused_by_a_symlinked_cache_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    assert_ok(&client.run(&["resolve", "@sarah-k/eval-report", "--yes"]));
    let lock = client.project.join(".mlld/mlld.lock.json");
    let before = fs::read(&lock).unwrap();
    let (_link, moved) = cache_user_moved_outside(&client, dir.path());
    let kept = tree(&moved);
    let out = client.run(&["remove", "@sarah-k/eval-report"]);
    let stderr = assert_fails(&out, 2);
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(fs::read(&lock).unwrap(), before, "the lock is as it was");
    assert_eq!(tree(&moved), kept, "nothing outside was touched");
}

#[test]
fn an_install_refused_by_a_symlinked_cache_prunes_once_the_link_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (_site, client) = synced(dir.path());
    write(
        &client.project,
        "main.mld",
        "/import { @x } from @sarah-k/eval-report\n",
    );
    assert_ok(&client.run(&["install", "--yes"]));
    // The import is deleted: the next install drops what it locked.
    write(&client.project, "main.mld", "/show \"nothing imported\"\n");
    let lock = client.project.join(".mlld/mlld.lock.json");
    let before = fs::read(&lock).unwrap();
    let (user_dir, moved) = cache_user_moved_outside(&client, dir.path());
    let stderr = assert_fails(&client.run(&["install"]), 2);
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(fs::read(&lock).unwrap(), before);
    // With the link replaced, the prune still happens: the refusal did not
    // forget that these modules were imported.
    fs::remove_file(&user_dir).unwrap();
    fs::rename(&moved, &user_dir).unwrap();
    assert_ok(&client.run(&["install"]));
    let after = String::from_utf8(fs::read(&lock).unwrap()).unwrap();
    assert!(!after.contains("eval-report"), "{after}");
}
