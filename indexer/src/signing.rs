//! Minisign-format Ed25519 signatures, made deterministically.
//!
//! Key files are read and written with the `minisign` crate, but its `sign`
//! mixes random noise into every signature, and a snapshot holds its
//! manifest's signature: reproducible snapshots need RFC 8032's deterministic
//! Ed25519. The output is the standard minisign signature format (prehashed
//! with BLAKE2b-512, algorithm `ED`), which `minisign -V` verifies.

use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use blake2::Digest as _;
use ed25519_dalek::Signer as _;

/// The untrusted comment of the demo key; builds signed with it say so.
pub const DEMO_KEY_COMMENT: &str = "DEMO KEY: never use it to sign a real registry";

/// A secret key ready to sign.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    keynum: [u8; 8],
    pub is_demo: bool,
}

impl SigningKey {
    /// Reads a minisign secret key file. An encrypted key needs `password`.
    pub fn from_file(path: &Path, password: Option<String>) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading signing key {}", path.display()))?;
        Self::from_text(&text, password)
            .with_context(|| format!("{} is not a usable minisign secret key", path.display()))
    }

    pub fn from_text(text: &str, password: Option<String>) -> Result<Self> {
        let is_demo = text
            .lines()
            .next()
            .is_some_and(|l| l.contains(DEMO_KEY_COMMENT));
        let sk_box = minisign::SecretKeyBox::from_string(text)?;
        let sk = match password {
            Some(p) => sk_box.into_secret_key(Some(p))?,
            None => sk_box.into_unencrypted_secret_key()?,
        };
        if sk.is_encrypted() {
            bail!("the key is encrypted: set MLLD_SIGNING_KEY_PASSWORD");
        }
        // Layout of minisign's secret key: sig_alg(2) kdf_alg(2) chk_alg(2)
        // salt(32) opslimit(8) memlimit(8) keynum(8) sk(64: seed ‖ public) chk(32).
        let bytes = sk.to_bytes();
        if bytes.len() != 158 || &bytes[..2] != b"Ed" {
            bail!("unsupported secret key format");
        }
        let mut keynum = [0u8; 8];
        keynum.copy_from_slice(&bytes[54..62]);
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes[62..94]);
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        if key.verifying_key().as_bytes()[..] != bytes[94..126] {
            bail!("the secret key's public half does not match its seed");
        }
        Ok(Self {
            key,
            keynum,
            is_demo,
        })
    }

    /// The public key file (minisign format) that verifies this key's signatures.
    pub fn public_key_file(&self) -> String {
        let mut raw = Vec::with_capacity(42);
        raw.extend_from_slice(b"Ed");
        raw.extend_from_slice(&self.keynum);
        raw.extend_from_slice(self.key.verifying_key().as_bytes());
        format!(
            "untrusted comment: minisign public key: {}\n{}\n",
            self.key_id(),
            B64.encode(raw)
        )
    }

    /// The key id as minisign prints it.
    pub fn key_id(&self) -> String {
        format!("{:016X}", u64::from_le_bytes(self.keynum))
    }

    /// A minisign signature file for `data`.
    pub fn sign(&self, data: &[u8], trusted_comment: &str) -> String {
        self.sign_prehashed(&blake2::Blake2b512::digest(data).into(), trusted_comment)
    }

    /// A minisign signature file for data whose BLAKE2b-512 digest is
    /// `prehash` (see [`Prehashing`]): a manifest streamed to a file is
    /// signed without being held in memory.
    pub fn sign_prehashed(&self, prehash: &[u8; 64], trusted_comment: &str) -> String {
        assert!(
            !trusted_comment.contains('\n'),
            "trusted comments are one line"
        );
        let sig = self.key.sign(prehash);
        let mut sig_line = Vec::with_capacity(74);
        sig_line.extend_from_slice(b"ED");
        sig_line.extend_from_slice(&self.keynum);
        sig_line.extend_from_slice(&sig.to_bytes());
        let mut global = sig.to_bytes().to_vec();
        global.extend_from_slice(trusted_comment.as_bytes());
        let global_sig = self.key.sign(&global);
        format!(
            "untrusted comment: signature from mlld-registry indexer, key {}\n{}\ntrusted comment: {trusted_comment}\n{}\n",
            self.key_id(),
            B64.encode(sig_line),
            B64.encode(global_sig.to_bytes()),
        )
    }
}

/// A writer that passes everything to `inner` and keeps the BLAKE2b-512
/// prehash a minisign signature covers, and the length.
pub struct Prehashing<W> {
    inner: W,
    hasher: blake2::Blake2b512,
    len: u64,
}

impl<W: std::io::Write> Prehashing<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: blake2::Blake2b512::new(),
            len: 0,
        }
    }

    /// The prehash of everything written, its length, and the inner writer.
    pub fn finish(self) -> ([u8; 64], u64, W) {
        (self.hasher.finalize().into(), self.len, self.inner)
    }
}

impl<W: std::io::Write> std::io::Write for Prehashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a new unencrypted key pair as `{dir}/{name}.key` and `{dir}/{name}.pub`.
pub fn generate_keypair(
    dir: &Path,
    name: &str,
    comment: Option<&str>,
) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let pair = minisign::KeyPair::generate_unencrypted_keypair()?;
    let sk_text = pair.sk.to_box(comment)?.into_string();
    let pk_text = pair.pk.to_box()?.into_string();
    let (sk_path, pk_path) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    );
    for p in [&sk_path, &pk_path] {
        if p.exists() {
            bail!("{} exists; refusing to overwrite a key", p.display());
        }
    }
    mlld_fsutil::write_atomic(&sk_path, sk_text.as_bytes())?;
    restrict_permissions(&sk_path)?;
    mlld_fsutil::write_atomic(&pk_path, pk_text.as_bytes())?;
    Ok((sk_path, pk_path))
}

fn restrict_permissions(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_deterministic_and_verify_with_minisign_verify() {
        let dir = tempfile::tempdir().unwrap();
        let (sk, _) = generate_keypair(dir.path(), "k", None).unwrap();
        let key = SigningKey::from_file(&sk, None).unwrap();
        let a = key.sign(b"hello", "serial:1");
        assert_eq!(a, key.sign(b"hello", "serial:1"));
        let pk = minisign_verify::PublicKey::decode(&key.public_key_file()).unwrap();
        let sig = minisign_verify::Signature::decode(&a).unwrap();
        pk.verify(b"hello", &sig, false).unwrap();
        assert!(pk.verify(b"hellO", &sig, false).is_err());
        assert_eq!(sig.trusted_comment(), "serial:1");
    }

    #[test]
    fn public_key_matches_the_generated_file() {
        let dir = tempfile::tempdir().unwrap();
        let (sk, pk) = generate_keypair(dir.path(), "k", Some(DEMO_KEY_COMMENT)).unwrap();
        let key = SigningKey::from_file(&sk, None).unwrap();
        assert!(key.is_demo);
        let ours = minisign_verify::PublicKey::decode(&key.public_key_file()).unwrap();
        let theirs = minisign_verify::PublicKey::from_file(&pk).unwrap();
        let sig = minisign_verify::Signature::decode(&key.sign(b"x", "c")).unwrap();
        theirs.verify(b"x", &sig, false).unwrap();
        ours.verify(b"x", &sig, false).unwrap();
    }
}
