//! Which keys the client trusts, and signature checks against them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use minisign_verify::{PublicKey, Signature};

/// Where trusted keys come from, in order: `--trusted-key FILE`, the
/// `MLLD_REGISTRY_KEY` variable (a key file's path or the key itself), then
/// `trusted_keys` in the client's config file.
pub struct TrustedKeys {
    keys: Vec<(String, PublicKey)>,
}

pub const KEY_HELP: &str = "pass --trusted-key FILE (the site's mlld-registry.pub), or set MLLD_REGISTRY_KEY to that file or to the key itself";

impl TrustedKeys {
    pub fn load(flag: Option<&Path>, config_keys: &[PathBuf]) -> Result<Self> {
        let mut keys = Vec::new();
        if let Some(path) = flag {
            keys.push(read_key_file(path)?);
        } else if let Ok(value) = std::env::var("MLLD_REGISTRY_KEY") {
            let value = value.trim();
            if Path::new(value).is_file() {
                keys.push(read_key_file(Path::new(value))?);
            } else {
                let key = PublicKey::from_base64(value).with_context(
                    || "MLLD_REGISTRY_KEY is neither a key file nor a base64 minisign public key",
                )?;
                keys.push(("MLLD_REGISTRY_KEY".into(), key));
            }
        } else {
            for path in config_keys {
                keys.push(read_key_file(path)?);
            }
        }
        if keys.is_empty() {
            bail!("no trusted registry key is configured: {KEY_HELP}");
        }
        Ok(Self { keys })
    }

    /// Checks `sig_text` over `data` against the trusted keys and returns the trusted comment.
    pub fn verify(&self, what: &str, data: &[u8], sig_text: &str) -> Result<String> {
        let sig = Signature::decode(sig_text)
            .map_err(|e| anyhow::anyhow!("{what}: the signature is malformed ({e})"))?;
        let mut last_err = None;
        for (_, key) in &self.keys {
            match key.verify(data, &sig, false) {
                Ok(()) => return Ok(sig.trusted_comment().to_string()),
                Err(e) => last_err = Some(e),
            }
        }
        let sources: Vec<_> = self.keys.iter().map(|(s, _)| s.as_str()).collect();
        bail!(
            "{what}: the signature does not verify with the trusted key ({}): {}; the file was tampered with or signed by another key. Nothing was used or written",
            sources.join(", "),
            last_err.map(|e| e.to_string()).unwrap_or_default()
        )
    }
}

fn read_key_file(path: &Path) -> Result<(String, PublicKey)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading trusted key {}", path.display()))?;
    let key = PublicKey::decode(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a minisign public key: {e}", path.display()))?;
    Ok((path.display().to_string(), key))
}
