//! One sync, below the command line: read and verify `latest.json`, take
//! the route (the stored snapshot again, a delta, the full file, or the
//! sparse root), verify everything against the signed digests, and only
//! then make the result current under the store lock, the rollback floor
//! checked again. `commands/sync.rs` parses the arguments and prints.

use anyhow::{Context as _, Result, bail};
use mlld_schemas::Latest;
use mlld_schemas::names::{format_timestamp, parse_timestamp};
use mlld_schemas::snapshot::LATEST_NAME;
use serde::Serialize;

use crate::context::Context;
use crate::store::{Current, Rollback, SyncState};
use crate::sync::site::{Source, Timeouts};
use crate::sync::snapshot_import::{self, Limits, Verifier};
use crate::trust::TrustedKeys;

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
    pub delta: Option<crate::sync::delta::DeltaStats>,
    /// A sparse sync: the root, and what was fetched for the project's lock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sparse: Option<crate::sparse::sync::SparseReport>,
}

/// What to sync from and how, as the command line asked.
pub struct Request {
    /// The site URL or directory, or a snapshot file.
    pub spec: String,
    pub timeouts: Timeouts,
    /// `--full`: the whole snapshot file even where a delta would do, and
    /// leave a sparse store.
    pub full: bool,
    /// `--sparse`.
    pub sparse: bool,
}

/// Fetches, verifies and makes current the newest snapshot (full, delta
/// or sparse), or refuses with nothing written.
pub fn sync(ctx: &Context, args: &Request, limits: Limits) -> Result<SyncReport> {
    let source = Source::parse(&args.spec, ctx.offline, args.timeouts)?;
    let keys = ctx.keys()?;
    // Downloading and verifying happen without the store lock (a stalled
    // site must not block another sync); the lock is taken only to make the
    // verified snapshot current, after checking the floor again.
    let state = ctx.store.state()?;
    let rollback = |_key_id: &str, serial: u64, sha: &str| check_rollback(&state, serial, sha);
    let mut mode = "none";
    let mut downloaded_bytes = 0;
    let mut delta_stats = None;

    if args.sparse && matches!(source, Source::File(_)) {
        bail!(
            "--sparse reads a site (URL or directory), and {} is one snapshot file: drop --sparse to import it whole",
            args.spec
        );
    }
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
            let accept = |key: &str, serial: u64| rollback(key, serial, &sha);
            let verifier = Verifier {
                keys: &keys,
                now: ctx.now,
                limits,
                accept: &accept,
            };
            let v = snapshot_import::import_checked(&ctx.store, path, Some(&sha), &verifier)?;
            (v, sha)
        }
        Source::Site(_) => {
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
            let verifier = Verifier {
                keys: &keys,
                now: ctx.now,
                limits,
                accept: &check,
            };
            let stored = snapshot_import::load_stored(
                &ctx.store,
                &latest.sha256,
                &keys,
                Some(ctx.now),
                &check,
            )?;
            let delta_offered = latest.index.is_some() || !latest.chunk_deltas.is_empty();
            let current = match (&state.current, delta_offered, args.full, &stored) {
                (Some(c), true, false, None) => ctx.store.load_manifest(&c.snapshot, &keys)?,
                _ => None,
            };
            let v = match &source {
                _ if stored.is_some() => snapshot_import::Imported::of(&stored.expect("checked")),
                _ if current.is_some() => {
                    let (imported, stats) = crate::sync::delta::sync(
                        &ctx.store,
                        &source,
                        &latest,
                        current.as_ref().expect("checked"),
                        &verifier,
                        !ctx.json,
                    )?;
                    mode = "delta";
                    downloaded_bytes = stats.downloaded();
                    delta_stats = Some(stats);
                    imported
                }
                _ if source.dir().is_some() => {
                    let path = source.dir().expect("checked").join(&rel);
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
                        &verifier,
                    )?
                }
                Source::Site(_) => {
                    if latest.size > limits.compressed {
                        bail!(
                            "the site announces a {}-byte snapshot, over the {}-byte limit; refused",
                            latest.size,
                            limits.compressed
                        );
                    }
                    mode = "full";
                    downloaded_bytes = latest.size;
                    snapshot_import::import_streamed(
                        &ctx.store,
                        &source,
                        &rel,
                        (&latest.sha256, latest.size),
                        &verifier,
                        !ctx.json,
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
    // A sparse store that takes the full file is not "up to date": it just
    // downloaded the snapshot it had only the root of.
    let up_to_date =
        (previous.as_ref()).is_some_and(|c| c.snapshot == latest_sha && c.sparse.is_none());
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
    // A sparse store's shards and blobs outlive a switch to `--full` by one
    // sync, as a replaced snapshot does, for processes still reading them.
    if previous.as_ref().is_none_or(|p| p.sparse.is_none()) {
        crate::sparse::remove(&ctx.store);
    }
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
    let site = source.site()?;
    let verified = mlld_site_contract::latest::read_signed(site, |bytes, sig| {
        keys.verify_with_key("latest.json", bytes, sig)
    })?
    .with_context(|| {
        format!(
            "{} has no {LATEST_NAME}: is it a registry site? Check --from, MLLD_REGISTRY_URL or \"registry\" in the config file",
            site.describe()
        )
    })?;
    let latest = verified.latest;
    let expires = parse_timestamp(&latest.expires).map_err(anyhow::Error::msg)?;
    if expires <= ctx.now {
        bail!(
            "the site's latest.json (serial {}) expired at {}: the site has stopped publishing or a mirror is frozen. Nothing was written; sync from an up-to-date site",
            latest.serial,
            latest.expires
        );
    }
    accept(&verified.signer.key_id, latest.serial, &latest.sha256)?;
    Ok((latest, verified.signer.key_id))
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
