//! Where `sync` reads from: a site (over HTTP(S) or a directory, read
//! through the site contract's one reader, `mlld_site_contract::reader`)
//! or one snapshot file. This is the client's only network use.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};
pub use mlld_site_contract::reader::Timeouts;
use mlld_site_contract::reader::{Advice, Site};

/// What a timeout's message tells the user of the client.
const ADVICE: Advice = Advice {
    idle_setting: "--idle-timeout, MLLD_REGISTRY_IDLE_TIMEOUT or \"idleTimeout\" sets it",
    rate_setting: "--min-rate, MLLD_REGISTRY_MIN_RATE or \"minRate\" sets it",
    next_step: "Nothing was written; try again later or another mirror",
};

/// The timeouts, each setting from its flag, then the environment, then
/// the config file, then the default.
pub fn configured_timeouts(
    idle_flag: Option<u64>,
    min_rate_flag: Option<u64>,
    config: &crate::config::UserConfig,
) -> Result<Timeouts> {
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
    let default = Timeouts::default();
    let idle = setting(idle_flag, "MLLD_REGISTRY_IDLE_TIMEOUT", config.idle_timeout)?;
    let min_rate = setting(min_rate_flag, "MLLD_REGISTRY_MIN_RATE", config.min_rate)?;
    Ok(Timeouts {
        idle: idle.map_or(default.idle, Duration::from_secs),
        min_rate: min_rate.unwrap_or(default.min_rate).max(1),
    })
}

/// Where a sync comes from.
pub enum Source {
    Site(Site),
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
            let agent = concat!("mlld-registry/", env!("CARGO_PKG_VERSION"));
            return Ok(Source::Site(Site::http(spec, timeouts, ADVICE, agent)?));
        }
        if let Some(rest) = spec.split_once("://").map(|(scheme, _)| scheme) {
            bail!(
                "`{spec}`: the {rest}:// scheme is not supported; use https://, http://, a directory or a file"
            );
        }
        let path = PathBuf::from(spec);
        if path.is_dir() {
            Ok(Source::Site(Site::Dir(path)))
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
            Source::Site(site) => site.describe(),
            Source::File(p) => p.display().to_string(),
        }
    }

    /// The site, or an error for a snapshot file (which has no site files).
    pub fn site(&self) -> Result<&Site> {
        match self {
            Source::Site(site) => Ok(site),
            Source::File(p) => bail!(
                "{} is one snapshot file, not a site; this needs a site (URL or directory)",
                p.display()
            ),
        }
    }

    /// The site's directory, when the source is one.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Source::Site(site) => site.dir(),
            Source::File(_) => None,
        }
    }

    /// The site file `rel`, which signed metadata names by `sha256`, at
    /// most `cap` bytes: refused unless what arrives hashes to that digest.
    pub fn fetch_signed(&self, rel: &str, sha256: &str, cap: u64) -> Result<Vec<u8>> {
        self.site()?.fetch_signed(rel, sha256, cap)
    }

    /// Copies or downloads the site file `rel` (exactly `size` bytes) to
    /// `dest`; returns its SHA-256, or `None` when the site has no such file
    /// (or the source is a snapshot file). A progress bar shows on a
    /// terminal when `show_progress`.
    pub fn fetch_to(
        &self,
        rel: &str,
        size: u64,
        dest: &Path,
        show_progress: bool,
    ) -> Result<Option<String>> {
        self.with_progress(size, show_progress, &|site, progress| {
            site.download(rel, size, dest, progress)
        })
    }

    /// Runs `transfer` on the site with a progress bar on a terminal (over
    /// HTTP, when `show_progress`); `None` when this is no site.
    fn with_progress(
        &self,
        size: u64,
        show_progress: bool,
        transfer: &Transfer<'_>,
    ) -> Result<Option<String>> {
        let Source::Site(site) = self else {
            return Ok(None);
        };
        let bar = (show_progress && site.dir().is_none() && std::io::stderr().is_terminal())
            .then(|| progress_bar(size));
        let got = transfer(site, &|n| {
            if let Some(b) = &bar {
                b.set_position(n);
            }
        });
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        got
    }
}

impl Source {
    /// Streams the site file `rel` (exactly `size` bytes) into `sink`, with
    /// a progress bar on a terminal; returns its SHA-256, or `None` when the
    /// site lacks it or this is no site. Nothing is checked but the size.
    pub(crate) fn stream_into(
        &self,
        rel: &str,
        size: u64,
        sink: &mut dyn std::io::Write,
        show_progress: bool,
    ) -> Result<Option<String>> {
        let sink = std::cell::RefCell::new(sink);
        self.with_progress(size, show_progress, &|site, progress| {
            site.download_into(rel, size, &mut **sink.borrow_mut(), progress)
        })
    }
}

/// A download from the site that reports its progress; its SHA-256, or
/// `None` when the site lacks the file.
type Transfer<'a> = dyn Fn(&Site, &dyn Fn(u64)) -> Result<Option<String>> + 'a;

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
    fn timeouts_come_from_the_flag_then_the_environment_then_the_config() {
        let config: crate::config::UserConfig =
            serde_json::from_str(r#"{"idleTimeout": 5, "minRate": 100}"#).unwrap();
        let from_flags = configured_timeouts(Some(3), None, &config).unwrap();
        assert_eq!(from_flags.idle, Duration::from_secs(3), "the flag wins");
        let zero: crate::config::UserConfig =
            serde_json::from_str(r#"{"idleTimeout": 0}"#).unwrap();
        assert!(
            configured_timeouts(None, None, &zero).is_err()
                || std::env::var_os("MLLD_REGISTRY_IDLE_TIMEOUT").is_some()
        );
    }
}
