//! Ed25519 keys for the offline tooling: made, stored (PKCS#8, hex) and
//! used to sign. Verification needs only the public key (`verify.rs`).

use super::{Envelope, Signature, TrustError, SIGNING_CONTEXT};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use sha2::{Digest, Sha256};

/// A signing key, with its id.
#[derive(Debug)]
pub struct KeyPair {
    pair: Ed25519KeyPair,
    pkcs8_hex: String,
}

/// A new key, from the system's random source.
pub fn generate_key() -> Result<KeyPair, TrustError> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| TrustError::Malformed("no randomness to make a key".into()))?;
    KeyPair::from_pkcs8_hex(&crate::hex(pkcs8.as_ref()))
}

/// The id of a public key: its SHA-256, hex.
pub fn key_id(public_key: &[u8]) -> String {
    crate::hex(&Sha256::digest(public_key))
}

/// The id of a public key written in hex (as `KeyPair::public_hex` and
/// root metadata write it).
pub fn public_key_id(public_hex: &str) -> Result<String, TrustError> {
    unhex(public_hex.trim())
        .filter(|bytes| bytes.len() == 32)
        .map(|bytes| key_id(&bytes))
        .ok_or_else(|| {
            TrustError::Malformed(format!(
                "`{public_hex}` is not an Ed25519 public key (64 hex digits, as `keys create` prints)"
            ))
        })
}

impl KeyPair {
    /// Reads a key as `to_pkcs8_hex` wrote it.
    pub fn from_pkcs8_hex(text: &str) -> Result<Self, TrustError> {
        let bytes = unhex(text.trim())
            .ok_or_else(|| TrustError::Malformed("a signing key must be hex".into()))?;
        let pair = Ed25519KeyPair::from_pkcs8(&bytes)
            .map_err(|e| TrustError::Malformed(format!("not an Ed25519 signing key: {e}")))?;
        Ok(Self {
            pair,
            pkcs8_hex: text.trim().to_owned(),
        })
    }

    pub fn to_pkcs8_hex(&self) -> &str {
        &self.pkcs8_hex
    }

    pub fn public_hex(&self) -> String {
        crate::hex(self.pair.public_key().as_ref())
    }

    pub fn key_id(&self) -> String {
        key_id(self.pair.public_key().as_ref())
    }

    /// Adds this key's signature over the envelope's payload.
    pub fn sign(&self, envelope: &mut Envelope) {
        let mut message = SIGNING_CONTEXT.to_vec();
        message.extend_from_slice(envelope.payload.as_bytes());
        let sig = crate::hex(self.pair.sign(&message).as_ref());
        let keyid = self.key_id();
        envelope.signatures.retain(|s| s.keyid != keyid);
        envelope.signatures.push(Signature { keyid, sig });
    }
}

pub(super) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
