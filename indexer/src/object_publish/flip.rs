//! The flip: the crawl state, `latest.json.minisig`, then `latest.json`,
//! one after the other, put back should one of them fail.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use mlld_schemas::snapshot::LATEST_NAME;

use super::plan::{LocalFile, RemoteObject};
use super::{MAX_POINTER_BYTES, Publisher};

impl Publisher<'_> {
    /// The flip: the crawl state, the pointer's signature, the pointer, one
    /// after the other. Each object it replaces is first copied aside
    /// (server-side, under `.publish-backup/`, which the next successful
    /// publish deletes as garbage); should one upload fail, those already
    /// replaced are put back, newest first, so the old pointer and its
    /// signature match again.
    pub(super) async fn flip(
        &self,
        flip: &[&LocalFile],
        remote: &BTreeMap<String, RemoteObject>,
    ) -> Result<()> {
        let stopped = || {
            format!(
                "publishing to {} stopped before {LATEST_NAME} was replaced",
                self.target
            )
        };
        for file in flip.iter().filter(|f| remote.contains_key(&f.path)) {
            self.bucket
                .copy(&file.path, &backup(&file.path))
                .await
                .with_context(stopped)?;
        }
        for (i, file) in flip.iter().enumerate() {
            let Err(e) = self.bucket.upload(self.site, file).await else {
                continue;
            };
            if file.path == LATEST_NAME && self.pointer_landed().await {
                // The answer was lost, not the upload: the flip happened.
                return Ok(());
            }
            let e = e.context(stopped());
            return Err(match self.put_back(&flip[..i], remote).await {
                Ok(()) => e.context(
                    "the files the flip had replaced were put back: the published site is unchanged and valid",
                ),
                Err(restore) => e.context(format!(
                    "putting the replaced files back failed too ({restore:#}); publish again to repair the site"
                )),
            });
        }
        Ok(())
    }

    /// Whether the bucket's `latest.json` is the one being published.
    async fn pointer_landed(&self) -> bool {
        let now = self.bucket.read_small(LATEST_NAME, MAX_POINTER_BYTES).await;
        now.ok().flatten().as_ref() == Some(&self.local.latest_bytes)
    }

    /// Restores `replaced`, newest first: each from its copy, or removed
    /// when the bucket did not have it before.
    async fn put_back(
        &self,
        replaced: &[&LocalFile],
        remote: &BTreeMap<String, RemoteObject>,
    ) -> Result<()> {
        for file in replaced.iter().rev() {
            if remote.contains_key(&file.path) {
                self.bucket.copy(&backup(&file.path), &file.path).await?;
            } else {
                self.bucket.delete(&file.path).await?;
            }
        }
        Ok(())
    }
}

/// Where the flip keeps a copy of an object it replaces.
fn backup(rel: &str) -> String {
    format!(".publish-backup/{rel}")
}
