//! `sync [--from URL|DIR|FILE]`: fetch the site's newest signed snapshot,
//! verify it completely, and only then make it current.
//!
//! Refused, with nothing written: a `latest.json` or manifest whose
//! signature does not verify with a trusted key; a serial lower than the
//! highest one accepted from the registry (rollback), or equal to it with other
//! content; an expired pointer or manifest (freeze); a download that is
//! larger than announced or does not hash to what the signed pointer names;
//! any member missing, extra, altered or oversized.

use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::commands::{print_json, safe};
use crate::config::user_config_path;
use crate::context::Context;
use crate::output::count;
use crate::sync::run::{Request, sync};
use crate::sync::snapshot_import::Limits;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  mlld-registry sync --from https://registry.example.org --trusted-key mlld-registry.pub\n  MLLD_REGISTRY_URL=https://registry.example.org mlld-registry sync\n  mlld-registry sync --from ./site          # a site directory\n  mlld-registry sync --from snapshot.tar.zst --offline\n  mlld-registry sync --sparse               # only the signed root and what the lock needs"
)]
pub struct Args {
    /// The registry site (https:// URL or directory), or one snapshot file.
    /// Default: MLLD_REGISTRY_URL, then "registry" in the config file, then
    /// the site the current snapshot was synced from.
    #[arg(long, value_name = "URL|DIR|FILE")]
    pub from: Option<String>,
    /// Download the whole snapshot file even when a delta would do (by
    /// default, with a current snapshot, only the index-only snapshot and the
    /// blobs the store lacks are fetched).
    #[arg(long)]
    pub full: bool,
    /// Abandon a download after this many seconds without a byte (default
    /// 20; also MLLD_REGISTRY_IDLE_TIMEOUT, or "idleTimeout" in the config).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idle_timeout: Option<u64>,
    /// The slowest average speed, in bytes a second, a download may have:
    /// its deadline is its size at this speed plus the idle timeout (default
    /// 16384; also MLLD_REGISTRY_MIN_RATE, or "minRate" in the config).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub min_rate: Option<u64>,
    /// Fetch nothing: check the current stored snapshot completely (its
    /// signature and every member's hash) and rebuild the records commands
    /// read from it, after a message said the store is damaged.
    #[arg(long, conflicts_with_all = ["from", "full", "sparse"])]
    pub repair: bool,
    /// Fetch only the signed root, then the records and content the
    /// project's lock needs; later commands fetch what else they read,
    /// unless --offline. Once sparse, `sync` stays sparse until --full.
    /// Without it the whole snapshot is kept, for fully offline use.
    #[arg(long, conflicts_with = "full")]
    pub sparse: bool,
}

pub fn run(ctx: &Context, args: &Args) -> Result<ExitCode> {
    if args.repair {
        return repair(ctx);
    }
    let request = Request {
        spec: source_spec(ctx, args)?,
        timeouts: crate::sync::site::configured_timeouts(
            args.idle_timeout,
            args.min_rate,
            &ctx.config,
        )?,
        full: args.full,
        sparse: args.sparse,
    };
    let report = sync(ctx, &request, Limits::default())?;
    if ctx.json {
        print_json(&report)?;
    } else if report.up_to_date {
        crate::outln!(
            "up to date: serial {} ({}), expires {}",
            report.serial,
            count(report.modules, "module", "modules"),
            safe(&report.expires)
        );
    } else {
        crate::outln!(
            "synced serial {} ({}) from {}; expires {}; {} download, {}",
            report.serial,
            count(report.modules, "module", "modules"),
            safe(&report.source),
            safe(&report.expires),
            report.mode,
            count(report.downloaded_bytes, "byte", "bytes")
        );
        if let Some(s) = &report.sparse {
            let prefetched = if s.prefetched.modules == 0 {
                "records and content are fetched when a command reads them".to_string()
            } else {
                format!(
                    "records and content of the {} in the lock: {}; the rest is fetched when read",
                    count(s.prefetched.modules, "module", "modules"),
                    count(s.prefetched.bytes, "byte", "bytes")
                )
            };
            crate::outln!(
                "  signed root: {}, {}; {prefetched}",
                count(s.root_bytes, "byte", "bytes"),
                count(s.shards, "shard", "shards"),
            );
        }
        if let Some(d) = &report.delta {
            let how = match d.route {
                "patch" => format!(
                    "patched the stored snapshot ({}) and took {} from the delta pack ({})",
                    count(d.patch_bytes, "byte", "bytes"),
                    count(d.blobs_from_pack, "new blob", "new blobs"),
                    count(d.blob_pack_bytes, "byte", "bytes")
                ),
                _ => format!(
                    "index-only snapshot ({})",
                    count(d.index_bytes, "byte", "bytes")
                ),
            };
            crate::outln!(
                "  {how}; {} fetched one by one ({}), {} reused from the store",
                count(d.blobs_fetched, "blob", "blobs"),
                count(d.blob_bytes_fetched, "byte", "bytes"),
                d.blobs_reused
            );
            if let Some(why) = &d.patch_unusable {
                crate::outln!("  the site's patch was not used: {}", safe(why));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `sync --repair`: the current snapshot checked whole, its query store rebuilt.
fn repair(ctx: &Context) -> Result<ExitCode> {
    let keys = ctx.keys()?;
    let _guard = ctx.store.exclusive()?;
    let Some(current) = ctx.store.state()?.current else {
        bail!("nothing to repair: no snapshot was synced yet; run `mlld-registry sync`");
    };
    let checked = crate::registry::write::rebuild(&ctx.store, &current.snapshot, &keys, true)?;
    if ctx.json {
        print_json(&serde_json::json!({
            "snapshot": current.snapshot, "serial": current.serial, "membersChecked": checked
        }))?;
    } else {
        crate::outln!(
            "repaired: snapshot serial {} checked ({} verified), its records rebuilt",
            current.serial,
            count(checked, "member", "members")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The site the current snapshot came from, when nothing else names one: a
/// sparse store keeps fetching from its site, and `sync` alone syncs again
/// from where the last sync read. A snapshot file is not a site to return to.
fn last_site(ctx: &Context) -> Result<Option<String>> {
    let Some(current) = ctx.store.state()?.current else {
        return Ok(None);
    };
    let site = match &current.sparse {
        Some(sparse) => sparse.site.clone(),
        None => current.source,
    };
    let is_site = site.starts_with("https://")
        || site.starts_with("http://")
        || std::path::Path::new(&site).is_dir();
    Ok(is_site.then_some(site))
}

/// A site directory or snapshot file named relative to where `sync` runs,
/// made absolute: the store remembers where it synced from, and a later
/// `sync` (or a sparse store's fetch) may run from another directory.
fn absolute_local(spec: &str) -> String {
    // Any URL, supported or not, is left for the site reader to judge.
    if spec.contains("://") {
        return spec.to_string();
    }
    std::path::absolute(spec)
        .ok()
        .and_then(|p| p.into_os_string().into_string().ok())
        .unwrap_or_else(|| spec.to_string())
}

fn source_spec(ctx: &Context, args: &Args) -> Result<String> {
    if let Some(from) = &args.from {
        return Ok(absolute_local(from));
    }
    if let Ok(url) = std::env::var("MLLD_REGISTRY_URL")
        && !url.trim().is_empty()
    {
        return Ok(absolute_local(url.trim()));
    }
    if let Some(url) = &ctx.config.registry {
        return Ok(url.clone());
    }
    if let Some(site) = last_site(ctx)? {
        return Ok(site);
    }
    bail!(
        "no registry site is configured: pass --from URL (or a site directory or snapshot file), set MLLD_REGISTRY_URL, or set \"registry\" in {}",
        user_config_path().map_or("the config file".into(), |p| p.display().to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::absolute_local;

    #[test]
    fn urls_are_left_alone_and_local_paths_made_absolute() {
        for url in [
            "https://r.example/site",
            "HTTP://x",
            "s3://bucket/prefix",
            "ftp://x",
        ] {
            assert_eq!(absolute_local(url), url);
        }
        let local = absolute_local("target/site");
        assert!(std::path::Path::new(&local).is_absolute(), "{local}");
        assert!(local.ends_with("target/site"), "{local}");
    }
}
