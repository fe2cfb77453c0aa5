//! Support for the end-to-end tests: building sites from the examples,
//! running the real `mlld-registry` binary in isolated homes, and loopback
//! servers that watch for network use.

pub mod fake_github;
pub mod http;
pub mod net_guard;
pub mod project;
pub mod raw_host;
pub mod s3;
pub mod served;
pub mod synth_site;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use mlld_indexer::{BuildConfig, BuildReport, RecordedGists, SigningKey};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

pub fn examples() -> PathBuf {
    workspace_root().join("examples")
}

pub fn demo_key() -> SigningKey {
    SigningKey::from_file(&examples().join("keys/demo.key"), None).expect("the demo key loads")
}

/// A site built from the embedded examples.
pub struct Site {
    pub dir: PathBuf,
    pub report: BuildReport,
}

impl Site {
    pub fn latest(&self) -> mlld_schemas::Latest {
        serde_json::from_slice(&std::fs::read(self.dir.join("latest.json")).unwrap()).unwrap()
    }

    pub fn snapshot(&self) -> PathBuf {
        self.dir.join(self.latest().snapshot)
    }

    pub fn public_key(&self) -> PathBuf {
        self.dir.join("mlld-registry.pub")
    }
}

/// Builds the examples into `out` with the demo key.
pub fn build_examples(out: &Path, serial: Option<u64>, created: time::OffsetDateTime) -> Site {
    build_with(
        out,
        serial,
        created,
        demo_key(),
        &examples().join("registry"),
    )
}

pub fn build_with(
    out: &Path,
    serial: Option<u64>,
    created: time::OffsetDateTime,
    key: SigningKey,
    registry: &Path,
) -> Site {
    build_from(
        out,
        serial,
        created,
        key,
        registry,
        &examples().join("gists"),
    )
}

/// Like [`build_with`], with the recorded gists read from `gists`.
pub fn build_from(
    out: &Path,
    serial: Option<u64>,
    created: time::OffsetDateTime,
    key: SigningKey,
    registry: &Path,
    gists: &Path,
) -> Site {
    let mut config = BuildConfig::new(registry.to_path_buf(), out.to_path_buf(), key, created);
    config.serial = serial;
    config.raw = recorded_raw();
    let source = RecordedGists {
        dir: gists.to_path_buf(),
    };
    let report = mlld_indexer::build(&config, &source).expect("the examples build");
    Site {
        dir: out.to_path_buf(),
        report,
    }
}

/// The recorded raw files of the examples' versioned modules (`examples/raw`).
pub fn recorded_raw() -> mlld_indexer::RawConfig {
    mlld_indexer::RawConfig::Recorded(examples().join("raw"))
}

/// The example gists as they were before `adamavenir/json-utils` moved from
/// revision 996153b to b20e54d: a copy under `dir` whose recording of that
/// gist is rewound (older content, the older revision first).
pub fn rewound_gists(dir: &Path) -> PathBuf {
    let out = dir.join("gists-rewound");
    std::fs::create_dir_all(&out).unwrap();
    for e in std::fs::read_dir(examples().join("gists")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), out.join(e.file_name())).unwrap();
    }
    let path = out.join(format!("{JSON_UTILS_GIST}.json"));
    let mut gist: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let file = &mut gist["files"]["json-utils.mld"];
    let content = file["content"]
        .as_str()
        .unwrap()
        .replace("version: 1.2.0", "version: 1.1.0")
        .replace(
            "Pretty-print, query and normalise",
            "Pretty-print and query",
        );
    file["size"] = content.len().into();
    file["content"] = content.into();
    let history = gist["history"].as_array_mut().unwrap();
    history.remove(0);
    gist["updated_at"] = history[0]["committed_at"].clone();
    std::fs::write(&path, serde_json::to_vec_pretty(&gist).unwrap()).unwrap();
    out
}

pub const JSON_UTILS_GIST: &str = "a1f3e09a42db6c680b454f6f93efa9d8";
pub const JSON_UTILS_OLD: &str = "996153bec98057662b4922d7f556dd79c64deec9";
pub const JSON_UTILS_NEW: &str = "b20e54d6dbf422252b7b670af492632f2fa6c1a2";

/// The workspace's target directory (`CARGO_TARGET_DIR`, or `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The `xtask` binary, built once per test process.
pub fn xtask_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| built_bin("xtask", "xtask")).clone()
}

/// The `mlld-registry` binary, built once if `cargo test` has not built it.
pub fn client_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| built_bin("mlld-registry", "mlld-registry"))
        .clone()
}

/// Builds `bin` of `package` in the profile these tests were built in
/// (cargo's own check makes this quick when it is current) and returns it.
fn built_bin(package: &str, bin: &str) -> PathBuf {
    let release = !cfg!(debug_assertions);
    let mut build = cargo_child::command(env!("CARGO"));
    build.args(["build", "--quiet", "-p", package, "--bin", bin]);
    if release {
        build.arg("--release");
    }
    let status = (build.current_dir(workspace_root()).status()).expect("cargo runs");
    assert!(status.success(), "building {bin} failed");
    let profile = if release { "release" } else { "debug" };
    (target_dir().join(profile)).join(format!("{bin}{}", std::env::consts::EXE_SUFFIX))
}

/// A client invocation with its own store and no way to reach a network
/// unnoticed: every proxy variable points at a guard that counts connections.
pub struct Client {
    pub home: PathBuf,
    pub project: PathBuf,
    pub guard: net_guard::NetGuard,
}

impl Client {
    pub fn new(root: &Path) -> Self {
        let home = root.join("home");
        let project = root.join("project");
        std::fs::create_dir_all(&project).unwrap();
        Self {
            home,
            project,
            guard: net_guard::NetGuard::start(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.bare_command();
        cmd.args(["--project", self.project.to_str().unwrap()])
            .args(args);
        cmd
    }

    /// Like [`Client::command`] without `--project`, run from `dir`: the
    /// client finds the project itself.
    pub fn command_in(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = self.bare_command();
        cmd.args(args).current_dir(dir);
        cmd
    }

    fn bare_command(&self) -> Command {
        let mut cmd = Command::new(client_bin());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("MLLD_REGISTRY_HOME", &self.home)
            .env("HOME", self.home.join("user-home"))
            .env("NO_COLOR", "1");
        let proxy = self.guard.url();
        for var in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            cmd.env(var, &proxy);
        }
        cmd.stdin(std::process::Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("mlld-registry runs")
    }
}

/// Asserts the command succeeded, showing its output otherwise.
pub fn assert_ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Asserts the command failed with exit code `code`; returns stderr.
pub fn assert_fails(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// Every file under `dir`, relative, sorted; empty when `dir` does not exist.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if dir.exists() {
        for e in walk(dir) {
            out.push(e.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// A fixed build time for reproducible builds in tests: now, rounded to the hour.
pub fn build_time() -> time::OffsetDateTime {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    time::OffsetDateTime::from_unix_timestamp(now - now % 3600).unwrap()
}

/// One member of a hand-made snapshot.
pub struct RawMember<'a> {
    /// Written into the tar header as is, so tests can use `..` or absolute paths.
    pub name: &'a str,
    pub bytes: &'a [u8],
    pub kind: tar::EntryType,
}

impl<'a> RawMember<'a> {
    /// A regular file member.
    pub fn regular(name: &'a str, bytes: &'a [u8]) -> Self {
        Self {
            name,
            bytes,
            kind: tar::EntryType::Regular,
        }
    }
}

/// Writes a tar.zst from raw members, bypassing every check the indexer makes.
pub fn craft_snapshot(dest: &Path, members: &[RawMember<'_>]) {
    let file = std::fs::File::create(dest).unwrap();
    let mut builder = tar::Builder::new(zstd::Encoder::new(file, 3).unwrap().auto_finish());
    for m in members {
        let mut h = tar::Header::new_gnu();
        let name = m.name.as_bytes();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_size(if m.kind == tar::EntryType::Regular {
            m.bytes.len() as u64
        } else {
            0
        });
        h.set_entry_type(m.kind);
        h.set_mode(0o644);
        if m.kind == tar::EntryType::Symlink {
            h.set_link_name("/etc/passwd").unwrap();
        }
        h.set_cksum();
        let data: &[u8] = if m.kind == tar::EntryType::Regular {
            m.bytes
        } else {
            &[]
        };
        builder.append(&h, data).unwrap();
    }
    builder.into_inner().unwrap();
}

/// Unpacks a snapshot into (name, bytes) in archive order.
pub fn snapshot_members(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive =
        tar::Archive::new(zstd::Decoder::new(std::fs::File::open(path).unwrap()).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    mlld_schemas::sha256_hex(bytes)
}

/// The tests' settings for the GitHub source at `api`: a token, short
/// timeouts and backoff, four tries, a minute's budget.
pub fn github_config(api: &str) -> mlld_indexer::GithubConfig {
    mlld_indexer::GithubConfig {
        api: api.to_string(),
        token: Some("test-token".into()),
        request_timeout: std::time::Duration::from_millis(1500),
        deadline: std::time::Instant::now() + std::time::Duration::from_secs(60),
        max_attempts: 4,
        retry_base: std::time::Duration::from_millis(5),
    }
}

/// The ids of the example gists (`examples/gists/{id}.json`), sorted.
pub fn example_gist_ids() -> Vec<String> {
    let dir = examples().join("gists");
    let mut ids: Vec<String> = (std::fs::read_dir(dir).expect("the example gists"))
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    ids.sort();
    ids
}

/// A build whose gists come from a (fake) GitHub API, with timings suited to tests.
pub fn github_build(
    registry: &Path,
    out: &Path,
    api: &str,
    previous: mlld_indexer::PreviousSite,
    tune: impl FnOnce(&mut mlld_indexer::GithubConfig),
) -> anyhow::Result<BuildReport> {
    let mut github = github_config(api);
    tune(&mut github);
    let source = mlld_indexer::GithubGists::new(github)?;
    let mut config = BuildConfig::new(
        registry.to_path_buf(),
        out.to_path_buf(),
        demo_key(),
        build_time(),
    );
    config.previous = previous;
    config.raw = recorded_raw();
    mlld_indexer::build(&config, &source)
}

/// Verifies a site's current snapshot the way the client does; returns its manifest.
pub fn verify_site(site: &Path) -> mlld_schemas::Manifest {
    let latest: mlld_schemas::Latest =
        serde_json::from_slice(&std::fs::read(site.join("latest.json")).unwrap()).unwrap();
    let keys = mlld_registry::trust::TrustedKeys::load(Some(&site.join("mlld-registry.pub")), &[])
        .unwrap();
    let sig = std::fs::read_to_string(site.join("latest.json.minisig")).unwrap();
    keys.verify(
        "latest.json",
        &std::fs::read(site.join("latest.json")).unwrap(),
        &sig,
    )
    .expect("latest.json is signed");
    let store = tempfile::tempdir().unwrap();
    let verified = mlld_registry::sync::snapshot_import::import(
        &mlld_registry::store::Store::at(store.path()),
        &site.join(&latest.snapshot),
        &keys,
        time::OffsetDateTime::now_utc(),
        mlld_registry::sync::snapshot_import::Limits::default(),
    )
    .expect("the published snapshot verifies");
    assert_eq!(verified.manifest.serial, latest.serial);
    verified.manifest
}

/// Copies a directory tree (test fixtures such as the example registry).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Makes a FIFO at `path` (replacing what is there), for tests that check a
/// reader refuses one instead of blocking on it.
pub fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let made = Command::new("mkfifo").arg(path).status();
    assert!(made.unwrap().success(), "mkfifo {}", path.display());
}

/// Runs `cmd`; fails the test (instead of hanging) after 30 seconds.
pub fn run_bounded(mut cmd: Command) -> std::process::Output {
    use std::time::{Duration, Instant};
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the command hung (on a FIFO?)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}
