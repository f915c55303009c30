//! Encryption of device credentials at rest: XChaCha20-Poly1305 (RustCrypto) under a key
//! derived from `WEBNET_SECRET_KEY`. Random 192-bit nonces make nonce reuse a non-issue;
//! the associated data binds each ciphertext to its customer and field, so a ciphertext
//! copied into another row or another customer fails to decrypt.

use std::path::Path;

use anyhow::Context;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// Encrypts and decrypts secrets; cheap to clone.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// A box keyed by `secret` (any string of at least 32 characters; it is hashed into a
    /// 256-bit key, so a long random string is what it should be).
    pub fn from_secret(secret: &str) -> anyhow::Result<Self> {
        if secret.len() < 32 {
            anyhow::bail!(
                "WEBNET_SECRET_KEY must be at least 32 characters (e.g. `openssl rand -hex 32`)"
            );
        }
        let key = Sha256::new()
            .chain_update(b"webnet credential key v1\0")
            .chain_update(secret.as_bytes())
            .finalize();
        Ok(Self {
            cipher: XChaCha20Poly1305::new_from_slice(&key).expect("32-byte key"),
        })
    }

    /// A box with a random key, for tests.
    pub fn random() -> Self {
        Self::from_secret(&random_secret()).expect("random secret is long enough")
    }

    /// Loads the key from `WEBNET_SECRET_KEY`, or else from `file`, creating the file with a
    /// random key on first use (single-machine setups). Returns whether it came from the file.
    pub fn load(secret: Option<&str>, file: &Path) -> anyhow::Result<(Self, bool)> {
        if let Some(secret) = secret {
            return Ok((Self::from_secret(secret)?, false));
        }
        if !file.exists() {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            write_private(file, &random_secret())
                .with_context(|| format!("writing a new secret key to {}", file.display()))?;
        }
        let secret = std::fs::read_to_string(file)
            .with_context(|| format!("reading the secret key from {}", file.display()))?;
        Ok((Self::from_secret(secret.trim())?, true))
    }

    /// Encrypts `plaintext`, bound to `context` (e.g. `credential:7:password`).
    pub fn seal(&self, context: &str, plaintext: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("encryption cannot fail for in-memory input");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Decrypts what [`seal`](Self::seal) produced with the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> anyhow::Result<String> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != VERSION {
            anyhow::bail!("not a webnet ciphertext");
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
        let plaintext = self
            .cipher
            .decrypt(
                &XNonce::from(<[u8; NONCE_LEN]>::try_from(nonce)?),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow::anyhow!(
                    "cannot decrypt a stored credential: WEBNET_SECRET_KEY differs from the key it was saved with"
                )
            })?;
        String::from_utf8(plaintext).context("decrypted credential is not UTF-8")
    }
}

fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// A decrypted secret, such as a device password. Its `Debug` never shows the value, so no
/// log line, error or panic message can carry it by accident.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Whether it is the empty string (which clears a stored secret).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must send it (the SSH sign-in).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_context() {
        let sb = SecretBox::from_secret(&"k".repeat(32)).unwrap();
        let sealed = sb.seal("credential:1:password", "hunter2");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(
            sb.open("credential:1:password", &sealed).unwrap(),
            "hunter2"
        );
        assert!(sb.open("credential:2:password", &sealed).is_err());
        let other = SecretBox::from_secret(&"j".repeat(32)).unwrap();
        assert!(other.open("credential:1:password", &sealed).is_err());
    }

    #[test]
    fn the_same_secret_seals_differently_each_time() {
        let sb = SecretBox::random();
        assert_ne!(sb.seal("c", "x"), sb.seal("c", "x"));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(SecretBox::from_secret("short").is_err());
    }
}
