//! Where `sync` reads from: a site over HTTP(S), a site directory, or one
//! snapshot file. Every read is size-capped; HTTP goes through reqwest with
//! rustls (no OpenSSL) and is the only network use of the client.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha2::Digest as _;

/// Where a sync comes from.
pub enum Source {
    Http {
        base: String,
        client: Box<reqwest::blocking::Client>,
    },
    Dir(PathBuf),
    File(PathBuf),
}

impl Source {
    /// Parses `--from`: an `http(s)://` URL, a site directory, or a snapshot file.
    pub fn parse(spec: &str, offline: bool) -> Result<Self> {
        if spec.starts_with("http://") || spec.starts_with("https://") {
            if offline {
                bail!(
                    "--offline forbids the network, and {spec} is a URL; sync from a site directory or snapshot file instead, or drop --offline"
                );
            }
            return Ok(Source::Http {
                base: spec.trim_end_matches('/').to_string(),
                client: Box::new(http_client()?),
            });
        }
        if let Some(rest) = spec.split_once("://").map(|(scheme, _)| scheme) {
            bail!(
                "`{spec}`: the {rest}:// scheme is not supported; use https://, http://, a directory or a file"
            );
        }
        let path = PathBuf::from(spec);
        if path.is_dir() {
            Ok(Source::Dir(path))
        } else if path.is_file() {
            Ok(Source::File(path))
        } else {
            bail!(
                "`{spec}` is neither a URL nor an existing site directory or snapshot file; check --from, MLLD_REGISTRY_URL or \"registry\" in the config file"
            )
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Http { base, .. } => base.clone(),
            Source::Dir(p) | Source::File(p) => p.display().to_string(),
        }
    }

    /// A small site file (`latest.json`, its signature), at most `cap` bytes.
    pub fn read_small(&self, name: &str, cap: u64) -> Result<Vec<u8>> {
        match self {
            Source::Http { base, client } => {
                let url = format!("{base}/{name}");
                let resp = get(client, &url)?;
                read_capped(resp, cap, &url)
            }
            Source::Dir(dir) => {
                // Only a regular file inside the site: a FIFO would hang, a
                // link out of the site would read something else.
                let path = dir.join(name);
                mlld_fsutil::read_regular_within(dir, &path, cap).with_context(|| {
                    format!(
                        "reading {}: is {} a registry site?",
                        path.display(),
                        dir.display()
                    )
                })
            }
            Source::File(_) => unreachable!("a snapshot file has no site files"),
        }
    }
}

impl Source {
    /// Copies or downloads the site file `rel` (at most `size` bytes) to
    /// `dest`; returns its SHA-256, or `None` when the site has no such file.
    pub fn fetch_to(
        &self,
        rel: &str,
        size: u64,
        dest: &Path,
        show_progress: bool,
    ) -> Result<Option<String>> {
        match self {
            Source::Http { base, client } => {
                let url = format!("{base}/{rel}");
                let resp = client.get(&url).send().with_context(|| {
                    format!("fetching {url}; check the URL and your connection")
                })?;
                if resp.status() == reqwest::StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                if !resp.status().is_success() {
                    bail!("fetching {url}: the server answered {}", resp.status());
                }
                save(resp, &url, dest, size, show_progress).map(Some)
            }
            Source::Dir(dir) => {
                let path = dir.join(rel);
                let len = match std::fs::metadata(&path) {
                    Ok(m) if m.is_file() => m.len(),
                    Ok(_) => bail!("{} is not a regular file; refused", path.display()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
                };
                mlld_fsutil::check_within(dir, &path)?;
                if len != size {
                    bail!(
                        "{} is {len} bytes, but the signed latest.json says {size}; refused",
                        path.display()
                    );
                }
                std::fs::copy(&path, dest)
                    .with_context(|| format!("copying {}", path.display()))?;
                crate::snapshot_import::file_sha256(dest).map(Some)
            }
            Source::File(_) => Ok(None),
        }
    }
}

fn http_client() -> Result<reqwest::blocking::Client> {
    // One crypto provider for rustls, chosen here (ring; no OpenSSL, no C toolchain beyond ring's).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .user_agent(concat!("mlld-registry/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(600))
        .build()
        .context("setting up the HTTP client")
}

fn get(client: &reqwest::blocking::Client, url: &str) -> Result<reqwest::blocking::Response> {
    let resp = client
        .get(url)
        .send()
        .with_context(|| format!("fetching {url}; check the URL and your connection"))?;
    let status = resp.status();
    if !status.is_success() {
        bail!("fetching {url}: the server answered {status}; is this a registry site?");
    }
    Ok(resp)
}

fn read_capped(reader: impl Read, cap: u64, what: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {what}"))?;
    if bytes.len() as u64 > cap {
        bail!("{what} is over its {cap}-byte limit; refused");
    }
    Ok(bytes)
}

/// Downloads `rel` from an HTTP site into `dest`, refusing more than
/// `expected` bytes; returns the SHA-256 of what arrived. Shows a progress
/// bar when stderr is a terminal.
pub fn download(
    client: &reqwest::blocking::Client,
    url: &str,
    dest: &Path,
    expected: u64,
    show_progress: bool,
) -> Result<String> {
    save(get(client, url)?, url, dest, expected, show_progress)
}

/// Streams a response into `dest` as [`download`] does.
fn save(
    mut resp: reqwest::blocking::Response,
    url: &str,
    dest: &Path,
    expected: u64,
    show_progress: bool,
) -> Result<String> {
    if let Some(len) = resp.content_length()
        && len > expected
    {
        bail!(
            "{url} is {len} bytes, but the signed latest.json says {expected}; refused before downloading"
        );
    }
    let bar = (show_progress && io::stderr().is_terminal()).then(|| progress_bar(expected));
    let mut out = io::BufWriter::new(
        File::create(dest).with_context(|| format!("creating {}", dest.display()))?,
    );
    let mut hasher = sha2::Sha256::new();
    let mut total = 0u64;
    let mut buf = vec![0; 256 * 1024];
    loop {
        let n = resp
            .read(&mut buf)
            .with_context(|| format!("downloading {url}: the connection broke; try again"))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > expected {
            bail!(
                "{url} sent more than the {expected} bytes the signed latest.json announces; refused"
            );
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        if let Some(b) = &bar {
            b.set_position(total);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if total != expected {
        bail!("{url} ended after {total} bytes; the signed latest.json says {expected}. Try again");
    }
    out.into_inner()
        .map_err(io::IntoInnerError::into_error)?
        .sync_all()?;
    Ok(hex::encode(hasher.finalize()))
}

fn progress_bar(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    let template = if std::env::var_os("NO_COLOR").is_some() {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}"
    } else {
        "{msg} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} {eta}"
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message("downloading snapshot");
    bar
}
