//! Which keys the client trusts, and signature checks against them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use minisign_verify::{PublicKey, Signature};

/// Where trusted keys come from, in order: `--trusted-key FILE`, the
/// `MLLD_REGISTRY_KEY` variable (a key file's path or the key itself), then
/// `trusted_keys` in the client's config file.
pub struct TrustedKeys {
    keys: Vec<TrustedKey>,
}

struct TrustedKey {
    /// Where it came from, for messages.
    source: String,
    /// A stable id: the first 16 hex digits of the SHA-256 of its base64 text.
    id: String,
    key: PublicKey,
}

/// A signature check that passed.
pub struct Verified {
    pub trusted_comment: String,
    pub key_id: String,
}

pub const KEY_HELP: &str = "pass --trusted-key FILE (the site's mlld-registry.pub), set MLLD_REGISTRY_KEY to that file or to the key itself, or list it under \"trustedKeys\" in the config file (`mlld-registry config` shows where)";

impl TrustedKeys {
    /// `config_keys` are the config file's `trustedKeys` entries: key file
    /// paths or base64 keys.
    pub fn load(flag: Option<&Path>, config_keys: &[String]) -> Result<Self> {
        let mut keys = Vec::new();
        if let Some(path) = flag {
            keys.push(read_key_file(path)?);
        } else if let Ok(value) = std::env::var("MLLD_REGISTRY_KEY") {
            keys.push(key_from_value(&value, "MLLD_REGISTRY_KEY")?);
        } else {
            for value in config_keys {
                keys.push(key_from_value(value, "the config file's trustedKeys")?);
            }
        }
        if keys.is_empty() {
            bail!("no trusted registry key is configured: {KEY_HELP}");
        }
        Ok(Self { keys })
    }

    /// Like [`TrustedKeys::verify`], also naming the key that verified.
    pub fn verify_with_key(&self, what: &str, data: &[u8], sig_text: &str) -> Result<Verified> {
        self.verify_stream_with_key(what, &|| Ok(Box::new(data)), sig_text)
    }

    /// Checks `sig_text` against the bytes `open` streams, hashed as they
    /// are read (minisign's prehashed form, the only one accepted), so a
    /// file too large to hold is never held; names the key that verified.
    pub fn verify_stream_with_key<'a>(
        &self,
        what: &str,
        open: &dyn Fn() -> std::io::Result<Box<dyn std::io::Read + 'a>>,
        sig_text: &str,
    ) -> Result<Verified> {
        let sig = Signature::decode(sig_text)
            .map_err(|e| anyhow::anyhow!("{what}: the signature is malformed ({e})"))?;
        let mut last_err = None;
        for k in &self.keys {
            // Only the key the signature names gets this far: others fail here.
            let mut verifier = match k.key.verify_stream(&sig) {
                Ok(v) => v,
                Err(e) => {
                    last_err = Some(e.to_string());
                    continue;
                }
            };
            let mut reader = open().with_context(|| format!("{what}: reading it back"))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = reader
                    .read(&mut buf)
                    .with_context(|| format!("{what}: reading it back"))?;
                if n == 0 {
                    break;
                }
                verifier.update(&buf[..n]);
            }
            match verifier.finalize() {
                Ok(()) => {
                    return Ok(Verified {
                        trusted_comment: sig.trusted_comment().to_string(),
                        key_id: k.id.clone(),
                    });
                }
                Err(e) => last_err = Some(e.to_string()),
            }
        }
        let sources: Vec<_> = self.keys.iter().map(|k| k.source.as_str()).collect();
        bail!(
            "{what}: the signature does not verify with the trusted key ({}): {}; the file was tampered with or signed by another key. Nothing was used or written",
            sources.join(", "),
            last_err.unwrap_or_default()
        )
    }

    /// A digest of every trusted key (order-independent): whatever remembers
    /// a verification must be forgotten when this changes.
    pub fn fingerprint(&self) -> String {
        let mut ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        mlld_schemas::sha256_hex(ids.join(",").as_bytes())
    }

    /// Whether the key with this id is among the trusted keys.
    pub fn trusts(&self, key_id: &str) -> bool {
        self.keys.iter().any(|k| k.id == key_id)
    }

    /// Checks `sig_text` over `data` against the trusted keys and returns the trusted comment.
    pub fn verify(&self, what: &str, data: &[u8], sig_text: &str) -> Result<String> {
        Ok(self.verify_with_key(what, data, sig_text)?.trusted_comment)
    }
}

/// A key file's path, or a base64 key.
fn key_from_value(value: &str, source: &str) -> Result<TrustedKey> {
    let value = value.trim();
    let path = expand_home(value);
    if path.is_file() {
        return read_key_file(&path);
    }
    let key = PublicKey::from_base64(value).map_err(|e| {
        if looks_like_path(value) {
            let what = match std::fs::symlink_metadata(&path) {
                Ok(_) => "not a regular file",
                Err(_) => "no such file",
            };
            anyhow::anyhow!(
                "{source}: reading trusted key {}: {what}; {KEY_HELP}",
                path.display()
            )
        } else {
            anyhow::anyhow!(
                "{source}: `{value}` is neither a key file nor a base64 minisign public key ({e}); {KEY_HELP}"
            )
        }
    })?;
    Ok(TrustedKey {
        source: source.to_string(),
        id: key_id(value),
        key,
    })
}

/// Whether a value that is no key was meant as a key file's path: a
/// minisign key is base64 (which has `/` too) without dots, so a dot or a
/// leading `/` or `~` says path.
fn looks_like_path(value: &str) -> bool {
    value.starts_with(['/', '~', '.']) || value.contains('.') || value.contains('\\')
}

fn expand_home(value: &str) -> PathBuf {
    match (value.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(value),
    }
}

fn key_id(base64: &str) -> String {
    mlld_schemas::sha256_hex(base64.trim().as_bytes())[..16].to_string()
}

fn read_key_file(path: &Path) -> Result<TrustedKey> {
    let text = crate::input::read_text(path)
        .with_context(|| format!("reading trusted key {}", path.display()))?
        .with_context(|| format!("reading trusted key {}: no such file", path.display()))?;
    let key = PublicKey::decode(&text).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a minisign public key: {e}; use the site's mlld-registry.pub",
            path.display()
        )
    })?;
    // The key line is the last non-empty line of a minisign .pub file.
    let line = text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
    Ok(TrustedKey {
        source: path.display().to_string(),
        id: key_id(line),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_key_file_is_named_as_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pub");
        let err = key_from_value(missing.to_str().unwrap(), "MLLD_REGISTRY_KEY")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("no such file"), "{err}");
        assert!(err.contains(&missing.display().to_string()), "{err}");
    }

    #[test]
    fn a_key_path_that_is_a_directory_is_not_called_missing() {
        let dir = tempfile::tempdir().unwrap();
        let err = key_from_value(dir.path().to_str().unwrap(), "MLLD_REGISTRY_KEY")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }

    #[test]
    fn a_value_that_is_neither_path_nor_key_says_so() {
        let err = key_from_value("RWnotakey", "MLLD_REGISTRY_KEY")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("neither a key file nor a base64"), "{err}");
    }
}
