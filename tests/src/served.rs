//! A registry site served on loopback for `sync` tests, and the checks
//! those tests share: what the client wrote, and refusals that write nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mlld_schemas::Latest;
use serde_json::Value;

use crate::http::{Handler, HttpServer, Request, Response, static_files};
use crate::{
    Client, RawMember, Site, assert_fails, build_examples, build_time, craft_snapshot, demo_key,
    snapshot_members, tree,
};

pub struct Served {
    pub server: HttpServer,
    pub requests: Arc<AtomicUsize>,
}

pub fn serve(handler: Handler) -> Served {
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    let server = HttpServer::start(Arc::new(move |r: &Request| {
        count.fetch_add(1, Ordering::SeqCst);
        handler(r)
    }));
    Served { server, requests }
}

pub fn serve_dir(dir: &Path) -> Served {
    serve(static_files(dir.to_path_buf()))
}

/// Runs the client with loopback exempt from the proxy guard (so only the
/// test server is reachable); any other connection still hits the guard.
pub fn run_loopback(client: &Client, args: &[&str]) -> Output {
    client
        .command(args)
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1")
        .output()
        .unwrap()
}

/// A full sync: the tests that use it attack the whole-snapshot download
/// (delta sync has its own tests in `delta_sync.rs`).
pub fn sync(client: &Client, url: &str, key: &Path) -> Output {
    run_loopback(
        client,
        &[
            "sync",
            "--full",
            "--from",
            url,
            "--trusted-key",
            key.to_str().unwrap(),
            "--json",
        ],
    )
}

/// Everything in the store (but staging) with its bytes, and the project's `.mlld/`.
pub fn written(client: &Client) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = tree(&client.home)
        .into_iter()
        .filter(|f| !f.starts_with("tmp") && f != ".lock")
        .map(|f| {
            let bytes = fs::read(client.home.join(&f)).unwrap();
            (f, bytes)
        })
        .collect();
    out.extend(
        tree(&client.project)
            .into_iter()
            .map(|f| (format!("project/{f}"), Vec::new())),
    );
    out
}

/// Asserts `out` failed with exit 2 naming `expect`, and nothing changed.
pub fn refused(client: &Client, out: &Output, before: &[(String, Vec<u8>)], expect: &str) {
    let stderr = assert_fails(out, 2);
    assert!(stderr.contains(expect), "expected `{expect}` in:\n{stderr}");
    assert_eq!(written(client), before, "a refused sync changed the store");
    assert!(
        tree(&client.home.join("tmp")).is_empty(),
        "staging was left behind"
    );
    assert_eq!(client.guard.connections(), 0, "a connection left loopback");
}

pub fn site_at(dir: &Path, name: &str, serial: u64) -> Site {
    build_examples(&dir.join(name), Some(serial), build_time())
}

pub fn current_serial(client: &Client) -> Option<u64> {
    let state: Value =
        serde_json::from_slice(&fs::read(client.home.join("state.json")).ok()?).unwrap();
    state["current"]["serial"].as_u64()
}

/// Re-signs a site's latest.json after `edit` (what a holder of the key could publish).
pub fn resign_latest(site: &Path, edit: impl FnOnce(&mut Latest)) {
    let mut latest: Latest =
        serde_json::from_slice(&fs::read(site.join("latest.json")).unwrap()).unwrap();
    edit(&mut latest);
    let mut bytes = serde_json::to_vec_pretty(&latest).unwrap();
    bytes.push(b'\n');
    let sig = demo_key().sign(
        &bytes,
        &format!("mlld-registry latest serial:{}", latest.serial),
    );
    fs::write(site.join("latest.json"), bytes).unwrap();
    fs::write(site.join("latest.json.minisig"), sig).unwrap();
}

pub fn serve_with_snapshot(site: &Site, body: Vec<u8>) -> Served {
    let files = static_files(site.dir.clone());
    let path = format!("/{}", site.latest().snapshot);
    serve(Arc::new(move |r: &Request| {
        if r.path() == path {
            Response::new(200, body.clone())
        } else {
            files(r)
        }
    }))
}

pub fn members_of(snapshot: &Path) -> Vec<(String, Vec<u8>)> {
    snapshot_members(snapshot)
}

pub fn craft(path: &Path, members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let raw: Vec<RawMember<'_>> = members
        .iter()
        .map(|(n, b)| RawMember::regular(n, b))
        .collect();
    craft_snapshot(path, &raw);
    fs::read(path).unwrap()
}

/// Points the site's (re-signed) latest.json at `bytes`, as a key holder could.
pub fn publish_crafted(site: &Site, bytes: &[u8]) -> PathBuf {
    let sha = mlld_schemas::sha256_hex(bytes);
    let rel = format!("snapshots/{sha}.tar.zst");
    fs::write(site.dir.join(&rel), bytes).unwrap();
    resign_latest(&site.dir, |l| {
        l.snapshot = rel.clone();
        l.sha256 = sha.clone();
        l.size = bytes.len() as u64;
    });
    site.dir.join(rel)
}

impl Served {
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}
