//! A bucket on moto for the publishing tests: `cargo xtask index --out
//! s3://…` through a recording proxy, and `mlld-registry sync` from the
//! bucket's public URL.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use super::{Moto, RecordingProxy, client};
use crate::{Client, assert_ok, examples};

pub const BUCKET: &str = "registry-site";
pub const PREFIX: &str = "mlld/v1";

/// A bucket on moto, reached for publishing through the recording proxy.
pub struct Bucket {
    pub dir: tempfile::TempDir,
    pub moto: Moto,
    pub proxy: RecordingProxy,
}

impl Bucket {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let moto = Moto::start(&dir.path().join("moto.log"));
        moto.create_public_bucket(BUCKET);
        let proxy = RecordingProxy::start(moto.url());
        Self { dir, moto, proxy }
    }

    /// What a client reads: the bucket's public, path-style URL.
    pub fn public_url(&self) -> String {
        format!("{}/{BUCKET}/{PREFIX}", self.moto.url())
    }

    /// `cargo xtask ARGS` with credentials for the proxy in front of moto.
    pub fn xtask(&self, args: &[&str]) -> Output {
        let work = self.dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        Command::new(crate::xtask_bin())
            .args(args)
            .current_dir(&work)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", self.proxy.url())
            .env("NO_PROXY", "127.0.0.1")
            .env("no_proxy", "127.0.0.1")
            .output()
            .unwrap()
    }

    /// Builds the examples (with `gists`) and publishes them to the bucket.
    pub fn index(&self, gists: &Path, previous: &str) -> Output {
        self.index_with(gists, previous, &[])
    }

    /// [`index`](Self::index) with more arguments.
    pub fn index_with(&self, gists: &Path, previous: &str, more: &[&str]) -> Output {
        let registry = examples().join("registry");
        let raw = examples().join("raw");
        let target = format!("s3://{BUCKET}/{PREFIX}");
        self.xtask(
            &[
                "index",
                "--registry",
                registry.to_str().unwrap(),
                "--gists",
                gists.to_str().unwrap(),
                "--raw",
                raw.to_str().unwrap(),
                "--out",
                &target,
                "--previous",
                previous,
            ]
            .into_iter()
            .chain(more.iter().copied())
            .collect::<Vec<_>>(),
        )
    }

    /// Object keys under the prefix (relative) with their ETags.
    pub fn objects(&self) -> BTreeMap<String, String> {
        self.moto
            .list(BUCKET, PREFIX)
            .into_iter()
            .map(|(k, v)| (k[PREFIX.len() + 1..].to_string(), v))
            .collect()
    }

    pub fn get(&self, rel: &str) -> reqwest::blocking::Response {
        client()
            .get(format!("{}/{rel}", self.public_url()))
            .send()
            .unwrap()
    }

    pub fn serial(&self) -> u64 {
        let latest: mlld_schemas::Latest = self.get("latest.json").json().unwrap();
        latest.serial
    }

    /// `mlld-registry sync` from the bucket's public URL, in a fresh store.
    pub fn sync(&self, name: &str) -> u64 {
        let client = Client::new(&self.dir.path().join(name));
        let key = examples().join("keys/demo.pub");
        let out = client
            .command(&["sync", "--from", &self.public_url(), "--json"])
            .env("NO_PROXY", "127.0.0.1")
            .env("no_proxy", "127.0.0.1")
            .env("MLLD_REGISTRY_KEY", key)
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(&assert_ok(&out)).unwrap();
        json["data"]["serial"]
            .as_u64()
            .expect("sync --json reports the serial")
    }
}
