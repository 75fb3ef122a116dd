//! Secrets at rest and bearer secrets: AES-256-GCM sealing, random tokens, and their SHA-256 digests.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("encryption key is not valid base64")]
    KeyEncoding,
    #[error("encryption key must be 32 bytes, got {0}")]
    KeyLength(usize),
    #[error(
        "cannot decrypt a sealed value for {context}: wrong encryption key or the value was tampered with"
    )]
    Open { context: String },
    #[error("cannot hash the password: {0}")]
    Password(String),
}

/// Seals small secrets (cloud credentials, the CA key) with AES-256-GCM. The associated data binds each
/// ciphertext to the row it belongs to, so a sealed value copied into another row does not decrypt.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox([redacted])")
    }
}

impl SecretBox {
    pub fn from_base64_key(key: &str) -> Result<Self, CryptoError> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(key.trim())
                .map_err(|_| CryptoError::KeyEncoding)?,
        );
        if bytes.len() != 32 {
            return Err(CryptoError::KeyLength(bytes.len()));
        }
        let cipher =
            Aes256Gcm::new_from_slice(&bytes).map_err(|_| CryptoError::KeyLength(bytes.len()))?;
        Ok(Self { cipher })
    }

    /// Returns `nonce || ciphertext`.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let fail = || CryptoError::Open {
            context: context.to_string(),
        };
        if sealed.len() < NONCE_LEN {
            return Err(fail());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| fail())
    }
}

/// A bearer secret shown to a person once. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct OneTimeSecret(String);

impl OneTimeSecret {
    /// 256 random bits, URL-safe, with a prefix that says what the secret is for (e.g. `efb_` bootstrap).
    pub fn generate(prefix: &str) -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> String {
        sha256_hex(&self.0)
    }
}

impl std::fmt::Debug for OneTimeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneTimeSecret([redacted])")
    }
}

/// What the database stores instead of a bearer token.
pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Sealing context of a cloud account's credentials.
pub fn cloud_credentials_context(cloud_id: uuid::Uuid) -> String {
    format!("cloud:{cloud_id}:credentials")
}

/// Sealing context of a provisioned cluster's kubeconfig.
pub fn cluster_kubeconfig_context(cluster_id: uuid::Uuid) -> String {
    format!("cluster:{cluster_id}:kubeconfig")
}

/// Compares two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Hashes a console password with argon2id (the crate's defaults: 19 MiB, 2 passes), salted.
pub fn hash_password(password: &str) -> Result<String, CryptoError> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
        .map(|hash| hash.to_string())
        .map_err(|e| CryptoError::Password(e.to_string()))
}

/// Whether `password` matches a stored argon2 hash; a malformed hash never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(stored).is_ok_and(|hash| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

pub const BOOTSTRAP_TOKEN_PREFIX: &str = "efb_";
pub const SESSION_TOKEN_PREFIX: &str = "efs_";
pub const API_TOKEN_PREFIX: &str = "efa_";

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> String {
        STANDARD.encode([7u8; 32])
    }

    #[test]
    fn sealed_value_opens_only_in_its_context() {
        let sbox = SecretBox::from_base64_key(&key()).unwrap();
        let sealed = sbox.seal(b"secret-key", "cloud:1");
        assert!(!sealed.windows(10).any(|w| w == b"secret-key"));
        assert_eq!(&*sbox.open(&sealed, "cloud:1").unwrap(), b"secret-key");
        assert!(sbox.open(&sealed, "cloud:2").is_err());
    }

    #[test]
    fn short_keys_are_refused() {
        let err = SecretBox::from_base64_key(&STANDARD.encode([1u8; 16])).unwrap_err();
        assert!(matches!(err, CryptoError::KeyLength(16)));
    }

    #[test]
    fn tokens_are_long_random_and_hidden_from_debug() {
        let a = OneTimeSecret::generate(BOOTSTRAP_TOKEN_PREFIX);
        let b = OneTimeSecret::generate(BOOTSTRAP_TOKEN_PREFIX);
        assert_ne!(a, b);
        assert!(a.expose().len() >= 4 + 43);
        assert!(!format!("{a:?}").contains(a.expose()));
        assert_eq!(a.digest().len(), 64);
    }
}
