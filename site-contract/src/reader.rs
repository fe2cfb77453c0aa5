//! The one reader of a published site, for the client's sync and the
//! indexer's incremental build alike: a directory or an HTTP(S) base URL,
//! behind one configured HTTP client (reqwest with rustls, no OpenSSL).
//!
//! Every read has a size cap, and every HTTP read an idle timeout and a
//! deadline scaled to its size, so a stalled or trickling host ends in an
//! error that says which, never an endless wait. A file that signed
//! metadata names by digest is hashed while it streams ([`Site::fetch_signed`],
//! [`Site::download`]); nothing is handed back before the digest matches.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sha2::Digest as _;

/// How long a download may take: no byte for `idle` ends it, and so does
/// taking longer than `idle` plus its size at `min_rate` bytes a second.
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
    /// The deadline for a download of `size` bytes.
    pub fn deadline(&self, size: u64) -> Duration {
        self.idle + Duration::from_secs(size / self.min_rate.max(1))
    }
}

/// What the caller's user is told in a timeout's message: which settings
/// change the timeouts and what to do next. The client and the indexer
/// name different flags.
#[derive(Clone, Copy, Debug)]
pub struct Advice {
    /// e.g. "--idle-timeout sets it".
    pub idle_setting: &'static str,
    /// e.g. "--min-rate sets it".
    pub rate_setting: &'static str,
    /// e.g. "Nothing was written; try again later or another mirror".
    pub next_step: &'static str,
}

impl Advice {
    /// For a directory, where no timeout applies.
    const LOCAL: Advice = Advice {
        idle_setting: "",
        rate_setting: "",
        next_step: "Check the site directory",
    };
}

/// The process's one crypto provider for rustls (ring: no OpenSSL), for
/// every HTTP client of the client and the indexer; installing it again is
/// harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A published site.
pub enum Site {
    Http(Box<HttpSite>),
    Dir(PathBuf),
}

/// A site over HTTP(S).
pub struct HttpSite {
    base: String,
    client: reqwest::blocking::Client,
    timeouts: Timeouts,
    advice: Advice,
}

impl Site {
    /// The site at the `http(s)://` URL `base`, read through one HTTP client
    /// configured with `timeouts`.
    pub fn http(base: &str, timeouts: Timeouts, advice: Advice, user_agent: &str) -> Result<Self> {
        install_crypto_provider();
        // The blocking client's timeout bounds the wait for the response head
        // and for each read of the body: an idle timeout. The whole
        // download's deadline is kept by [`Timed`].
        let client = reqwest::blocking::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(timeouts.idle)
            .timeout(timeouts.idle)
            .build()
            .context("setting up the HTTP client")?;
        Ok(Site::Http(Box::new(HttpSite {
            base: base.trim_end_matches('/').to_string(),
            client,
            timeouts,
            advice,
        })))
    }

    /// The URL or the directory, for messages.
    pub fn describe(&self) -> String {
        match self {
            Site::Http(h) => h.base.clone(),
            Site::Dir(dir) => dir.display().to_string(),
        }
    }

    /// The site's directory, when it is one.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Site::Dir(dir) => Some(dir),
            Site::Http(_) => None,
        }
    }

    /// The site file `rel` of at most `cap` bytes; `None` when the site has
    /// no such file.
    pub fn read(&self, rel: &str, cap: u64) -> Result<Option<Vec<u8>>> {
        let Some(opened) = self.open(rel, cap)? else {
            return Ok(None);
        };
        let expected = opened.expected_len.unwrap_or(0);
        read_capped(opened.reader, cap, expected, &opened.what, opened.advice).map(Some)
    }

    /// The site file `rel`, which signed metadata names by `sha256`, at most
    /// `cap` bytes: refused unless what arrives hashes to that digest.
    pub fn fetch_signed(&self, rel: &str, sha256: &str, cap: u64) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        let got = match self.stream(rel, cap, &mut bytes, &|_| {})? {
            Some(got) => got,
            None => bail!(
                "{}/{rel} is missing, though the signed metadata names it: the site is incomplete or mid-update; try again later or another mirror",
                self.describe()
            ),
        };
        check_digest(&self.describe(), rel, &got, sha256)?;
        Ok(bytes)
    }

    /// Downloads or copies the site file `rel` to `dest`, refusing anything
    /// but exactly `size` bytes; returns the SHA-256 of what arrived, or
    /// `None` when the site has no such file. `progress` hears the bytes so
    /// far. `dest` is a staging file, checked and then read or discarded:
    /// it is not synced to disk.
    pub fn download(
        &self,
        rel: &str,
        size: u64,
        dest: &Path,
        progress: &dyn Fn(u64),
    ) -> Result<Option<String>> {
        let mut out = io::BufWriter::new(
            File::create(dest).with_context(|| format!("creating {}", dest.display()))?,
        );
        let got = self.download_into(rel, size, &mut out, progress)?;
        out.into_inner().map_err(io::IntoInnerError::into_error)?;
        Ok(got)
    }

    /// Streams the site file `rel` into `sink`, refusing anything but
    /// exactly `size` bytes; returns the SHA-256 of what arrived, or `None`
    /// when the site has no such file. What reaches `sink` is not yet
    /// checked: the caller compares the digest before trusting any of it.
    pub fn download_into(
        &self,
        rel: &str,
        size: u64,
        sink: &mut dyn Write,
        progress: &dyn Fn(u64),
    ) -> Result<Option<String>> {
        let mut counted = Counted {
            inner: sink,
            len: 0,
        };
        let Some(sha) = self.stream(rel, size, &mut counted, progress)? else {
            return Ok(None);
        };
        if counted.len != size {
            bail!(
                "{}/{rel} ended after {} bytes; the signed latest.json says {size}. Try again",
                self.describe(),
                counted.len
            );
        }
        Ok(Some(sha))
    }

    /// Streams `rel` (at most `cap` bytes) into `sink`, hashing as it goes.
    fn stream(
        &self,
        rel: &str,
        cap: u64,
        sink: &mut dyn Write,
        progress: &dyn Fn(u64),
    ) -> Result<Option<String>> {
        let Some(opened) = self.open(rel, cap)? else {
            return Ok(None);
        };
        copy_hashed(
            opened.reader,
            sink,
            cap,
            &opened.what,
            opened.advice,
            progress,
        )
        .map(Some)
    }

    /// Opens `rel` for reading: `None` when the site has no such file. Over
    /// HTTP, a body announced larger than `cap` is refused before it is read.
    fn open(&self, rel: &str, cap: u64) -> Result<Option<Opened>> {
        check_rel(rel)?;
        match self {
            Site::Http(h) => {
                let Some(resp) = h.get(rel)? else {
                    return Ok(None);
                };
                let url = h.url(rel);
                let expected_len = resp.content_length();
                if let Some(len) = expected_len
                    && len > cap
                {
                    bail!(
                        "{url} is {len} bytes, over its {cap}-byte limit; refused before downloading"
                    );
                }
                Ok(Some(Opened {
                    reader: Box::new(h.timed(resp, &url, cap)),
                    expected_len,
                    what: url,
                    advice: h.advice,
                }))
            }
            Site::Dir(dir) => {
                // Only a regular file inside the site: a FIFO would hang, a
                // link out of the site would read something else.
                let path = dir.join(rel);
                let opened = mlld_fsutil::check_within(dir, &path)
                    .and_then(|()| mlld_fsutil::open_regular(&path));
                match opened {
                    Ok(file) => Ok(Some(Opened {
                        expected_len: file.metadata().ok().map(|m| m.len()),
                        reader: Box::new(file),
                        what: path.display().to_string(),
                        advice: Advice::LOCAL,
                    })),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
                }
            }
        }
    }
}

/// A writer that counts what passes through it.
struct Counted<'a> {
    inner: &'a mut dyn Write,
    len: u64,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A site file opened for reading, with what to call it in messages.
struct Opened {
    reader: Box<dyn Read>,
    /// The length the file says it has (a header or its metadata): a
    /// hint for the buffer, never trusted beyond the cap.
    expected_len: Option<u64>,
    what: String,
    advice: Advice,
}

impl HttpSite {
    fn url(&self, rel: &str) -> String {
        format!("{}/{rel}", self.base)
    }

    /// The response for `rel`, or `None` on 404; any other failure is an error.
    fn get(&self, rel: &str) -> Result<Option<reqwest::blocking::Response>> {
        let url = self.url(rel);
        let resp = self.client.get(&url).send().map_err(|e| {
            if e.is_timeout() {
                anyhow::anyhow!(
                    "fetching {url}: the site did not answer in time (idle timeout; {}); the site is stalled or unreachable. {}",
                    self.advice.idle_setting,
                    self.advice.next_step
                )
            } else {
                anyhow::Error::new(e)
                    .context(format!("fetching {url}; check the URL and your connection"))
            }
        })?;
        match resp.status() {
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(resp)),
            s => bail!("fetching {url}: the server answered {s}; is this a registry site?"),
        }
    }

    fn timed<R>(&self, inner: R, url: &str, size: u64) -> Timed<R> {
        Timed {
            inner,
            url: url.to_string(),
            timeouts: self.timeouts,
            advice: self.advice,
            started: Instant::now(),
            deadline: self.timeouts.deadline(size),
        }
    }
}

/// Only plain relative paths are read: signed metadata names files inside
/// the site, never above it.
fn check_rel(rel: &str) -> Result<()> {
    if rel.is_empty()
        || !rel
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\\'))
    {
        bail!("`{rel}` is not a path inside the site; refused");
    }
    Ok(())
}

/// Refuses bytes whose digest is not the signed one.
fn check_digest(site: &str, rel: &str, got: &str, sha256: &str) -> Result<()> {
    if got != sha256 {
        bail!(
            "{site}/{rel} has SHA-256 {got}, but the signed metadata names {sha256}: the site or a mirror serves altered or foreign content; refused, nothing was written"
        );
    }
    Ok(())
}

/// Reads at most `cap` bytes into a buffer sized for `expected` (never
/// more than `cap`): read whole into a growing buffer, a file of hundreds
/// of megabytes is copied and its memory touched about twice. A failed
/// reservation falls back to growing, which reports running out of
/// memory as an error rather than aborting.
fn read_capped(
    reader: impl Read,
    cap: u64,
    expected: u64,
    what: &str,
    advice: Advice,
) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let _ = bytes.try_reserve_exact(usize::try_from(expected.min(cap)).unwrap_or(0));
    reader
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| read_error(e, what, advice))?;
    if bytes.len() as u64 > cap {
        bail!("{what} is over its {cap}-byte limit; refused");
    }
    Ok(bytes)
}

/// Copies at most `cap` bytes from `reader` to `sink`; returns their SHA-256.
fn copy_hashed(
    mut reader: impl Read,
    sink: &mut dyn Write,
    cap: u64,
    what: &str,
    advice: Advice,
    progress: &dyn Fn(u64),
) -> Result<String> {
    let mut hasher = sha2::Sha256::new();
    let mut total = 0u64;
    let mut buf = vec![0; 256 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| read_error(e, what, advice))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > cap {
            bail!("{what} is over its {cap}-byte limit; refused");
        }
        hasher.update(&buf[..n]);
        sink.write_all(&buf[..n])?;
        progress(total);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// A failed read: a timeout's own message, or a broken connection.
fn read_error(e: io::Error, what: &str, advice: Advice) -> anyhow::Error {
    if e.kind() == io::ErrorKind::TimedOut {
        anyhow::anyhow!("{e}. {}", advice.next_step)
    } else {
        anyhow::Error::new(e).context(format!("reading {what}: the connection broke; try again"))
    }
}

/// A response body read under [`Timeouts`]: an idle read (from the HTTP
/// client's timeout) or a passed deadline is an error saying which.
struct Timed<R> {
    inner: R,
    url: String,
    timeouts: Timeouts,
    advice: Advice,
    started: Instant,
    deadline: Duration,
}

impl<R: Read> Read for Timed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.started.elapsed() > self.deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{} took longer than its {} s deadline (the size at {} bytes/s, plus {} s; {}): the site is too slow or trickling",
                    self.url,
                    self.deadline.as_secs(),
                    self.timeouts.min_rate,
                    self.timeouts.idle.as_secs(),
                    self.advice.rate_setting
                ),
            ));
        }
        self.inner.read(buf).map_err(|e| {
            if is_timeout(&e) {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} sent nothing for {} s (idle timeout; {}): the site is stalled",
                        self.url,
                        self.timeouts.idle.as_secs(),
                        self.advice.idle_setting
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
    }

    fn site() -> (tempfile::TempDir, Site) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/file"), b"hello").unwrap();
        let site = Site::Dir(dir.path().to_path_buf());
        (dir, site)
    }

    #[test]
    fn a_signed_file_is_returned_only_when_its_digest_matches() {
        let (_dir, site) = site();
        let sha = hex::encode(sha2::Sha256::digest(b"hello"));
        assert_eq!(site.fetch_signed("a/file", &sha, 5).unwrap(), b"hello");
        let err = site.fetch_signed("a/file", &"0".repeat(64), 5).unwrap_err();
        assert!(format!("{err:#}").contains("altered or foreign"), "{err:#}");
        let err = site.fetch_signed("a/file", &sha, 4).unwrap_err();
        assert!(
            format!("{err:#}").contains("over its 4-byte limit"),
            "{err:#}"
        );
        let err = site.fetch_signed("a/missing", &sha, 5).unwrap_err();
        assert!(format!("{err:#}").contains("is missing"), "{err:#}");
    }

    #[test]
    fn paths_outside_the_site_are_refused_before_any_read() {
        let (_dir, site) = site();
        for rel in [
            "../a/file",
            "/etc/passwd",
            "a/../a/file",
            "",
            "a//file",
            "a\\b",
        ] {
            assert!(site.read(rel, 100).is_err(), "{rel}");
        }
        assert_eq!(site.read("a/none", 100).unwrap(), None);
        assert!(site.read("a/file", 4).is_err(), "over the cap");
    }

    #[cfg(unix)]
    #[test]
    fn a_link_out_of_the_site_is_not_followed() {
        let (dir, site) = site();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"secret").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("a/link"))
            .unwrap();
        assert!(site.read("a/link", 100).is_err());
        let dest = dir.path().join("copy");
        assert!(site.download("a/link", 6, &dest, &|_| {}).is_err());
    }

    #[test]
    fn a_download_must_be_exactly_the_signed_size() {
        let (dir, site) = site();
        let dest = dir.path().join("copy");
        let seen = std::cell::Cell::new(0);
        let sha = site
            .download("a/file", 5, &dest, &|n| seen.set(n))
            .unwrap()
            .unwrap();
        assert_eq!(sha, hex::encode(sha2::Sha256::digest(b"hello")));
        assert_eq!(seen.get(), 5);
        assert!(site.download("a/file", 6, &dest, &|_| {}).is_err());
        assert!(site.download("a/file", 4, &dest, &|_| {}).is_err());
        assert_eq!(site.download("a/none", 4, &dest, &|_| {}).unwrap(), None);
    }
}
