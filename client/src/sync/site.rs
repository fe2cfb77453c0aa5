//! Where `sync` reads from: a site over HTTP(S), a site directory, or one
//! snapshot file. Every read is size-capped; HTTP goes through reqwest with
//! rustls (no OpenSSL) and is the only network use of the client.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sha2::Digest as _;

/// How long a download may take: no byte for `idle` ends it, and so does
/// taking longer than `idle` plus its size at `min_rate` bytes a second. A
/// stalled or trickling server ends in an error, never an endless wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub idle: Duration,
    pub min_rate: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(20),
            min_rate: 16 << 10,
        }
    }
}

impl Timeouts {
    /// Each setting from its flag, then the environment, then the config
    /// file, then the default.
    pub fn configured(
        idle_flag: Option<u64>,
        min_rate_flag: Option<u64>,
        config: &crate::config::UserConfig,
    ) -> Result<Self> {
        fn setting(flag: Option<u64>, var: &str, config: Option<u64>) -> Result<Option<u64>> {
            if flag.is_some() {
                return Ok(flag);
            }
            match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => match v.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => bail!("{var}=`{v}` is not a positive whole number"),
                },
                _ if config == Some(0) => bail!(
                    "the config file sets 0 where {var}'s setting must be a positive whole number"
                ),
                _ => Ok(config),
            }
        }
        let default = Self::default();
        let idle = setting(idle_flag, "MLLD_REGISTRY_IDLE_TIMEOUT", config.idle_timeout)?;
        let min_rate = setting(min_rate_flag, "MLLD_REGISTRY_MIN_RATE", config.min_rate)?;
        Ok(Self {
            idle: idle.map_or(default.idle, Duration::from_secs),
            min_rate: min_rate.unwrap_or(default.min_rate).max(1),
        })
    }

    /// The deadline for a download of `size` bytes.
    pub fn deadline(&self, size: u64) -> Duration {
        self.idle + Duration::from_secs(size / self.min_rate.max(1))
    }
}

/// Where a sync comes from.
pub enum Source {
    Http {
        base: String,
        client: Box<reqwest::blocking::Client>,
        timeouts: Timeouts,
    },
    Dir(PathBuf),
    File(PathBuf),
}

impl Source {
    /// Parses `--from`: an `http(s)://` URL, a site directory, or a snapshot file.
    pub fn parse(spec: &str, offline: bool, timeouts: Timeouts) -> Result<Self> {
        if spec.starts_with("http://") || spec.starts_with("https://") {
            if offline {
                bail!(
                    "--offline forbids the network, and {spec} is a URL; sync from a site directory or snapshot file instead, or drop --offline"
                );
            }
            return Ok(Source::Http {
                base: spec.trim_end_matches('/').to_string(),
                client: Box::new(http_client(timeouts.idle)?),
                timeouts,
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
            Source::Http {
                base,
                client,
                timeouts,
            } => {
                let url = format!("{base}/{name}");
                let resp = get(client, &url)?;
                read_capped(Timed::new(resp, &url, *timeouts, cap), cap, &url)
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
    /// The site file `rel`, which signed metadata names by `sha256`, at
    /// most `cap` bytes: refused unless what arrives hashes to that digest.
    pub fn fetch_signed(&self, rel: &str, sha256: &str, cap: u64) -> Result<Vec<u8>> {
        let bytes = self.read_small(rel, cap)?;
        let got = mlld_schemas::sha256_hex(&bytes);
        if got != sha256 {
            bail!(
                "{}/{rel} has SHA-256 {got}, but the signed metadata names {sha256}: the site or a mirror serves altered or foreign content; refused, nothing was written",
                self.describe()
            );
        }
        Ok(bytes)
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
            Source::Http {
                base,
                client,
                timeouts,
            } => {
                let url = format!("{base}/{rel}");
                let resp = client
                    .get(&url)
                    .send()
                    .map_err(|e| connect_error(e, &url))?;
                if resp.status() == reqwest::StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                if !resp.status().is_success() {
                    bail!("fetching {url}: the server answered {}", resp.status());
                }
                save(resp, &url, dest, size, *timeouts, show_progress).map(Some)
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
                crate::sync::snapshot_import::file_sha256(dest).map(Some)
            }
            Source::File(_) => Ok(None),
        }
    }
}

fn http_client(idle: Duration) -> Result<reqwest::blocking::Client> {
    // One crypto provider for rustls, chosen here (ring; no OpenSSL, no C toolchain beyond ring's).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The blocking client's timeout bounds the wait for the response head
    // and for each read of the body: an idle timeout. The whole download's
    // deadline is kept by [`Timed`].
    reqwest::blocking::Client::builder()
        .user_agent(concat!("mlld-registry/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(idle)
        .timeout(idle)
        .build()
        .context("setting up the HTTP client")
}

fn connect_error(e: reqwest::Error, url: &str) -> anyhow::Error {
    if e.is_timeout() {
        anyhow::anyhow!(
            "fetching {url}: the site did not answer in time (idle timeout; --idle-timeout, MLLD_REGISTRY_IDLE_TIMEOUT or \"idleTimeout\" sets it); the site is stalled or unreachable. Nothing was written; try again later or another mirror"
        )
    } else {
        anyhow::Error::new(e).context(format!("fetching {url}; check the URL and your connection"))
    }
}

/// A response body read under [`Timeouts`]: an idle read (from the HTTP
/// client's timeout) or a passed deadline is an error saying which.
struct Timed<R> {
    inner: R,
    url: String,
    timeouts: Timeouts,
    started: Instant,
    deadline: Duration,
}

impl<R> Timed<R> {
    fn new(inner: R, url: &str, timeouts: Timeouts, size: u64) -> Self {
        Self {
            inner,
            url: url.to_string(),
            timeouts,
            started: Instant::now(),
            deadline: timeouts.deadline(size),
        }
    }
}

impl<R: Read> Read for Timed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.started.elapsed() > self.deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{} took longer than its {} s deadline (the size at {} bytes/s, plus {} s; --min-rate, MLLD_REGISTRY_MIN_RATE or \"minRate\" sets it): the site is too slow or trickling",
                    self.url,
                    self.deadline.as_secs(),
                    self.timeouts.min_rate,
                    self.timeouts.idle.as_secs()
                ),
            ));
        }
        self.inner.read(buf).map_err(|e| {
            if is_timeout(&e) {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} sent nothing for {} s (idle timeout; --idle-timeout, MLLD_REGISTRY_IDLE_TIMEOUT or \"idleTimeout\" sets it): the site is stalled",
                        self.url,
                        self.timeouts.idle.as_secs()
                    ),
                )
            } else {
                e
            }
        })
    }
}

fn is_timeout(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
            .is_some_and(reqwest::Error::is_timeout)
}

fn get(client: &reqwest::blocking::Client, url: &str) -> Result<reqwest::blocking::Response> {
    let resp = client.get(url).send().map_err(|e| connect_error(e, url))?;
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
        .map_err(|e| download_error(e, what))?;
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
    timeouts: Timeouts,
    show_progress: bool,
) -> Result<String> {
    save(
        get(client, url)?,
        url,
        dest,
        expected,
        timeouts,
        show_progress,
    )
}

/// A failed read: a timeout's own message, or a broken connection.
fn download_error(e: io::Error, what: &str) -> anyhow::Error {
    if e.kind() == io::ErrorKind::TimedOut {
        anyhow::anyhow!("{e}. Nothing was written; try again later or another mirror")
    } else {
        anyhow::Error::new(e).context(format!(
            "downloading {what}: the connection broke; try again"
        ))
    }
}

/// Streams a response into `dest` as [`download`] does.
fn save(
    resp: reqwest::blocking::Response,
    url: &str,
    dest: &Path,
    expected: u64,
    timeouts: Timeouts,
    show_progress: bool,
) -> Result<String> {
    if let Some(len) = resp.content_length()
        && len > expected
    {
        bail!(
            "{url} is {len} bytes, but the signed latest.json says {expected}; refused before downloading"
        );
    }
    let mut resp = Timed::new(resp, url, timeouts, expected);
    let bar = (show_progress && io::stderr().is_terminal()).then(|| progress_bar(expected));
    let mut out = io::BufWriter::new(
        File::create(dest).with_context(|| format!("creating {}", dest.display()))?,
    );
    let mut hasher = sha2::Sha256::new();
    let mut total = 0u64;
    let mut buf = vec![0; 256 * 1024];
    loop {
        let n = resp.read(&mut buf).map_err(|e| download_error(e, url))?;
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
    let template = if crate::color::stderr_enabled() {
        "{msg} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} {eta}"
    } else {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}"
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message("downloading snapshot");
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_grows_with_the_size_at_the_minimum_rate() {
        let t = Timeouts {
            idle: Duration::from_secs(20),
            min_rate: 16 << 10,
        };
        assert_eq!(t.deadline(0), Duration::from_secs(20));
        assert_eq!(t.deadline(10 * (16 << 10)), Duration::from_secs(30));
        let config: crate::config::UserConfig =
            serde_json::from_str(r#"{"idleTimeout": 5, "minRate": 100}"#).unwrap();
        let from_flags = Timeouts::configured(Some(3), None, &config).unwrap();
        assert_eq!(from_flags.idle, Duration::from_secs(3), "the flag wins");
        let zero: crate::config::UserConfig =
            serde_json::from_str(r#"{"idleTimeout": 0}"#).unwrap();
        assert!(
            Timeouts::configured(None, None, &zero).is_err()
                || std::env::var_os("MLLD_REGISTRY_IDLE_TIMEOUT").is_some()
        );
    }
}
