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

use anyhow::{Context as _, Result, bail};
use mlld_schemas::Latest;
use mlld_schemas::names::{format_timestamp, parse_timestamp};
use mlld_schemas::snapshot::{LATEST_NAME, LATEST_SIG_NAME, SNAPSHOT_FORMAT};
use serde::Serialize;

use crate::commands::{print_json, safe};
use crate::config::user_config_path;
use crate::context::Context;
use crate::output::count;
use crate::site::{self, Source, Timeouts};
use crate::snapshot_import::{self, Limits};
use crate::store::{Current, Rollback, SyncState};
use crate::trust::TrustedKeys;

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  mlld-registry sync --from https://registry.example.org --trusted-key mlld-registry.pub\n  MLLD_REGISTRY_URL=https://registry.example.org mlld-registry sync\n  mlld-registry sync --from ./site          # a site directory\n  mlld-registry sync --from snapshot.tar.zst --offline"
)]
pub struct Args {
    /// The registry site (https:// URL or directory), or one snapshot file.
    /// Default: MLLD_REGISTRY_URL, then "registry" in the config file.
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    pub source: String,
    pub snapshot: String,
    pub serial: u64,
    pub expires: String,
    pub modules: usize,
    /// The serial that was current before, if any.
    pub previous_serial: Option<u64>,
    /// True when the site had nothing newer.
    pub up_to_date: bool,
    /// `full`, `delta`, `sparse`, or `none` (up to date, or a local snapshot file).
    pub mode: &'static str,
    /// Bytes fetched from the site.
    pub downloaded_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<crate::delta::DeltaStats>,
    /// A sparse sync: the root, and what was fetched for the project's lock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sparse: Option<crate::sparse::sync::SparseReport>,
}

pub fn run(ctx: &Context, args: &Args) -> Result<ExitCode> {
    if args.repair {
        return repair(ctx);
    }
    let report = sync(ctx, args, Limits::default())?;
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
            crate::outln!(
                "  sparse root ({}, {} shards); {} for the {} locked: {}",
                count(s.root_bytes, "byte", "bytes"),
                s.shards,
                count(s.prefetched.modules, "record", "records"),
                count(s.prefetched.modules, "module", "modules"),
                count(s.prefetched.bytes, "byte", "bytes")
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

fn source_spec(ctx: &Context, args: &Args) -> Result<String> {
    if let Some(from) = &args.from {
        return Ok(from.clone());
    }
    if let Ok(url) = std::env::var("MLLD_REGISTRY_URL")
        && !url.trim().is_empty()
    {
        return Ok(url.trim().to_string());
    }
    if let Some(url) = &ctx.config.registry {
        return Ok(url.clone());
    }
    bail!(
        "no registry site is configured: pass --from URL (or a site directory or snapshot file), set MLLD_REGISTRY_URL, or set \"registry\" in {}",
        user_config_path().map_or("the config file".into(), |p| p.display().to_string())
    )
}

pub fn sync(ctx: &Context, args: &Args, limits: Limits) -> Result<SyncReport> {
    let spec = source_spec(ctx, args)?;
    let source = Source::parse(
        &spec,
        ctx.offline,
        Timeouts::configured(args.idle_timeout, args.min_rate, &ctx.config)?,
    )?;
    let keys = ctx.keys()?;
    // Downloading and verifying happen without the store lock (a stalled
    // site must not block another sync); the lock is taken only to make the
    // verified snapshot current, after checking the floor again.
    let state = ctx.store.state()?;
    let rollback = |_key_id: &str, serial: u64, sha: &str| check_rollback(&state, serial, sha);
    let mut mode = "none";
    let mut downloaded_bytes = 0;
    let mut delta_stats = None;

    let sparse = !matches!(source, Source::File(_))
        && (args.sparse
            || (!args.full && state.current.as_ref().is_some_and(|c| c.sparse.is_some())));
    if sparse {
        let (latest, key_id) = read_latest(ctx, &source, &keys, &rollback)?;
        return crate::sparse::sync::sync(ctx, &source, &latest, &key_id, check_rollback);
    }
    let (verified, latest_sha) = match &source {
        Source::File(path) => {
            let sha = snapshot_import::file_sha256(path)?;
            let v = snapshot_import::import_checked(
                &ctx.store,
                path,
                Some(&sha),
                &keys,
                ctx.now,
                limits,
                &|key, serial| rollback(key, serial, &sha),
            )?;
            (v, sha)
        }
        Source::Dir(_) | Source::Http { .. } => {
            let (latest, _) = read_latest(ctx, &source, &keys, &rollback)?;
            let rel = checked_snapshot_path(&latest)?;
            let check = |key: &str, serial: u64| {
                if serial != latest.serial {
                    bail!(
                        "the snapshot's signed manifest has serial {serial}, but the signed latest.json says {}; the site mixes two builds. Nothing was written",
                        latest.serial
                    );
                }
                rollback(key, serial, &latest.sha256)
            };
            let stored = snapshot_import::load_stored(
                &ctx.store,
                &latest.sha256,
                &keys,
                Some(ctx.now),
                &check,
            )?;
            let delta_offered = latest.index.is_some() || !latest.deltas.is_empty();
            let current = match (&state.current, delta_offered, args.full, &stored) {
                (Some(c), true, false, None) => ctx.store.load_manifest(&c.snapshot, &keys)?,
                _ => None,
            };
            let v = match &source {
                _ if stored.is_some() => snapshot_import::Imported::of(&stored.expect("checked")),
                _ if current.is_some() => {
                    let (imported, stats) = crate::delta::sync(
                        &ctx.store,
                        &source,
                        &latest,
                        current.as_ref().expect("checked"),
                        &keys,
                        ctx.now,
                        limits,
                        &check,
                        !ctx.json,
                    )?;
                    mode = "delta";
                    downloaded_bytes = stats.downloaded();
                    delta_stats = Some(stats);
                    imported
                }
                Source::Dir(dir) => {
                    let path = dir.join(&rel);
                    let size = std::fs::metadata(&path)
                        .with_context(|| format!("the site lacks {}", path.display()))?
                        .len();
                    if size != latest.size {
                        bail!(
                            "{} is {size} bytes, but the signed latest.json says {}; refused",
                            path.display(),
                            latest.size
                        );
                    }
                    mode = "full";
                    downloaded_bytes = size;
                    snapshot_import::import_checked(
                        &ctx.store,
                        &path,
                        Some(&latest.sha256),
                        &keys,
                        ctx.now,
                        limits,
                        &check,
                    )?
                }
                Source::Http {
                    base,
                    client,
                    timeouts,
                } => {
                    if latest.size > limits.compressed {
                        bail!(
                            "the site announces a {}-byte snapshot, over the {}-byte limit; refused",
                            latest.size,
                            limits.compressed
                        );
                    }
                    let staging = ctx.store.staging("download-")?;
                    let dest = staging.path().join("snapshot.tar.zst");
                    let url = format!("{base}/{rel}");
                    let sha =
                        site::download(client, &url, &dest, latest.size, *timeouts, !ctx.json)?;
                    mode = "full";
                    downloaded_bytes = latest.size;
                    if sha != latest.sha256 {
                        bail!(
                            "{url} has SHA-256 {sha}, but the signed latest.json names {}; the download was altered. Nothing was written",
                            latest.sha256
                        );
                    }
                    snapshot_import::import_checked(
                        &ctx.store,
                        &dest,
                        Some(&latest.sha256),
                        &keys,
                        ctx.now,
                        limits,
                        &check,
                    )?
                }
                Source::File(_) => unreachable!(),
            };
            (v, latest.sha256.clone())
        }
    };

    let _guard = ctx.store.exclusive()?;
    // Another sync may have finished meanwhile: the floor is checked again
    // against the state as it is now, and the snapshot must still be there.
    let state = ctx.store.state()?;
    check_rollback(&state, verified.serial, &latest_sha)?;
    let stored = ctx.store.snapshot_dir(&latest_sha);
    if !stored.join(mlld_schemas::snapshot::MANIFEST_NAME).is_file() {
        bail!(
            "snapshot {latest_sha} was removed from the store by another process while this sync verified it; run `mlld-registry sync` again"
        );
    }
    // A snapshot stored by an older client has no query store yet.
    if !stored
        .join(crate::registry::QUERY_DIR)
        .join(crate::registry::tables::HEAD_NAME)
        .is_file()
    {
        crate::registry::write::rebuild(&ctx.store, &latest_sha, &keys, false)?;
    }
    let previous = state.current.clone();
    let up_to_date = previous.as_ref().is_some_and(|c| c.snapshot == latest_sha);
    let mut new_state = state.clone();
    new_state.raise_floor(verified.serial);
    let kept_previous = match &previous {
        Some(c) if c.snapshot != latest_sha => Some(c.snapshot.clone()),
        Some(c) => c.previous.clone(),
        None => None,
    };
    new_state.current = Some(Current {
        snapshot: latest_sha.clone(),
        serial: verified.serial,
        key_id: verified.key_id.clone(),
        source: source.describe(),
        synced_at: format_timestamp(ctx.now),
        previous: kept_previous.clone(),
        sparse: None,
    });
    ctx.store.write_state(&new_state)?;
    // The previous snapshot stays for processes still reading it; older ones go.
    let mut keep = vec![latest_sha.as_str()];
    keep.extend(kept_previous.as_deref());
    ctx.store.prune(&keep);
    Ok(SyncReport {
        source: source.describe(),
        snapshot: latest_sha,
        serial: verified.serial,
        expires: verified.expires.clone(),
        modules: verified.modules,
        previous_serial: previous.map(|c| c.serial),
        up_to_date,
        mode,
        downloaded_bytes,
        delta: delta_stats,
        sparse: None,
    })
}

/// Refuses a serial below the registry's floor, or the floor's serial with other content.
pub(crate) fn check_rollback(state: &SyncState, serial: u64, sha: &str) -> Result<()> {
    state.check_serial(serial, sha).map_err(|refusal| match refusal {
        Rollback::Older { .. } => anyhow::anyhow!(
            "{refusal}; the site or a mirror is serving an old snapshot. Nothing was written; try again later or another mirror"
        ),
        Rollback::SameSerial { .. } => anyhow::anyhow!("{refusal}; nothing was written"),
    })
}

type RollbackCheck<'a> = dyn Fn(&str, u64, &str) -> Result<()> + Sync + 'a;

/// Reads and verifies `latest.json`: signature, format, freshness, rollback.
/// Returns it with the id of the key that signed it.
fn read_latest(
    ctx: &Context,
    source: &Source,
    keys: &TrustedKeys,
    accept: &RollbackCheck<'_>,
) -> Result<(Latest, String)> {
    let bytes = source.read_small(LATEST_NAME, 64 << 10)?;
    let sig = source.read_small(LATEST_SIG_NAME, 4 << 10)?;
    let sig = String::from_utf8(sig).context("latest.json.minisig is not text")?;
    let verified = keys.verify_with_key("latest.json", &bytes, &sig)?;
    let latest: Latest =
        serde_json::from_slice(&bytes).context("the signed latest.json is malformed")?;
    if latest.format_version != SNAPSHOT_FORMAT {
        bail!(
            "the site publishes snapshot format {} (this client reads {SNAPSHOT_FORMAT}); upgrade mlld-registry",
            latest.format_version
        );
    }
    let expires = parse_timestamp(&latest.expires).map_err(anyhow::Error::msg)?;
    if expires <= ctx.now {
        bail!(
            "the site's latest.json (serial {}) expired at {}: the site has stopped publishing or a mirror is frozen. Nothing was written; sync from an up-to-date site",
            latest.serial,
            latest.expires
        );
    }
    accept(&verified.key_id, latest.serial, &latest.sha256)?;
    Ok((latest, verified.key_id))
}

/// `snapshots/<sha256>.tar.zst`, exactly: no other path is fetched.
fn checked_snapshot_path(latest: &Latest) -> Result<String> {
    mlld_schemas::names::check_sha256_hex(&latest.sha256).map_err(anyhow::Error::msg)?;
    let expected = mlld_site_contract::paths::snapshot_path(&latest.sha256);
    mlld_site_contract::paths::expect_path("snapshot", &latest.snapshot, &expected)
        .map_err(anyhow::Error::msg)?;
    Ok(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(serial: u64, snapshot: &str) -> SyncState {
        SyncState {
            current: Some(Current {
                snapshot: snapshot.into(),
                serial,
                key_id: "k".into(),
                source: "s".into(),
                synced_at: "2025-01-01T00:00:00Z".into(),
                previous: None,
                sparse: None,
            }),
            floor: Some(serial),
            accepted: Default::default(),
        }
    }

    #[test]
    fn rollback_floor_is_per_registry_not_per_key() {
        let s = state(5, "aa");
        assert!(check_rollback(&s, 6, "bb").is_ok());
        assert!(
            check_rollback(&s, 5, "aa").is_ok(),
            "the current snapshot again"
        );
        let err = check_rollback(&s, 4, "cc").unwrap_err().to_string();
        assert!(err.contains("rollback refused"), "{err}");
        let err = check_rollback(&s, 5, "dd").unwrap_err().to_string();
        assert!(err.contains("different content"), "{err}");
        assert!(check_rollback(&SyncState::default(), 1, "ff").is_ok());
    }

    #[test]
    fn a_per_key_floor_of_an_older_client_becomes_the_registry_floor() {
        let old: SyncState =
            serde_json::from_str(r#"{"accepted": {"old-key": 7, "new-key": 3}}"#).unwrap();
        assert_eq!(old.floor(), Some(7));
        assert!(
            check_rollback(&old, 5, "aa").is_err(),
            "another key's lower serial"
        );
        let mut raised = old.clone();
        raised.raise_floor(8);
        let text = serde_json::to_string(&raised).unwrap();
        assert_eq!(text, r#"{"floor":8}"#);
    }
}
