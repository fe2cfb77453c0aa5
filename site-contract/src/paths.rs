//! Every path of the published site, in one place. A client fetches only
//! the paths these functions produce for the digests the signed
//! `latest.json` names; [`expect_path`] refuses anything else.

pub use mlld_schemas::snapshot::{
    LATEST_NAME, LATEST_SIG_NAME, PUBLIC_KEY_NAME, blob_path, delta_blobs_path,
};
pub use mlld_schemas::sparse::{root_path as sparse_root_path, shard_path as sparse_shard_path};

/// `snapshots/<sha256>.tar.zst`: the full snapshot.
pub fn snapshot_path(sha256: &str) -> String {
    format!("snapshots/{sha256}.tar.zst")
}

/// `snapshots/<sha256>.index.tar.zst`: the snapshot without blobs.
pub fn index_snapshot_path(sha256: &str) -> String {
    format!("snapshots/{sha256}.index.tar.zst")
}

/// `deltas/<sha256>.chunks.zst`: a chunk delta (`chunk_delta`). The name
/// differs from the retired zstd patches' `deltas/<sha256>.patch.zst`.
pub fn chunk_delta_path(sha256: &str) -> String {
    format!("deltas/{sha256}.chunks.zst")
}

/// Refuses a path in signed metadata that is not exactly the one its
/// digest names (`what` says which file, for the message).
pub fn expect_path(what: &str, named: &str, expected: &str) -> Result<(), String> {
    if named == expected {
        Ok(())
    } else {
        Err(format!(
            "latest.json names {what} `{named}`; only `{expected}` is accepted"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_must_be_exactly_the_digests_name() {
        let hex = "ab".repeat(32);
        let path = snapshot_path(&hex);
        assert!(expect_path("snapshot", &path, &path).is_ok());
        let err = expect_path("snapshot", "../etc/passwd", &path).unwrap_err();
        assert!(err.contains("only `snapshots/"), "{err}");
        assert_ne!(index_snapshot_path(&hex), path);
    }
}
