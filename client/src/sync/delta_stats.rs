//! What a delta sync downloaded, filled in by `delta` and `delta_patch`.

use serde::Serialize;

/// What a delta sync downloaded.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaStats {
    /// `patch` (from the stored snapshot) or `index` (the index-only snapshot).
    pub route: &'static str,
    /// Why a patch the site offers was not used, if one was offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_unusable: Option<String>,
    pub patch_bytes: u64,
    pub blob_pack_bytes: u64,
    pub blobs_from_pack: usize,
    pub index_bytes: u64,
    pub blobs_fetched: usize,
    pub blob_bytes_fetched: u64,
    pub blobs_reused: usize,
}

impl DeltaStats {
    pub fn downloaded(&self) -> u64 {
        self.patch_bytes + self.blob_pack_bytes + self.index_bytes + self.blob_bytes_fetched
    }
}
