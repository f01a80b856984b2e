//! Sealing secret values at rest: AES-256-GCM envelopes under a master key.
//!
//! A sealed value is the text `v1:<key_id>:<base64(nonce || ciphertext || tag)>`, where
//! `key_id` is the first 16 hex digits of SHA-256 of the key, so a [`Keyring`] holding the
//! current primary key and any retired keys can open values sealed before a rotation. The nonce
//! is random per seal (aws-lc-rs `RandomizedNonceKey`). Callers pass an AAD that binds the value
//! to where it is stored, so a sealed value copied to another row does not open. Neither type
//! here prints key bytes in `Debug`, and errors never contain plaintext or keys. No IO.

use crate::StoreError;
use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::fmt;

const KEY_LEN: usize = 32;
const VERSION: &str = "v1";

/// A 256-bit master key. `Debug` shows only its key id.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; KEY_LEN],
    id: String,
    /// The AES-256-GCM key schedule, built once: building it per seal (key expansion and the
    /// GHASH table) cost about as much as sealing a small transcript body.
    aead: std::sync::Arc<RandomizedNonceKey>,
}

impl MasterKey {
    /// A fresh random key from the system CSPRNG.
    pub fn generate() -> Result<MasterKey, StoreError> {
        let mut bytes = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| StoreError::Crypto("random number generator failed".into()))?;
        Self::from_array(bytes)
    }

    /// Exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, StoreError> {
        let arr: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| StoreError::Crypto(format!("master key must be {KEY_LEN} bytes, got {}", bytes.len())))?;
        Self::from_array(arr)
    }

    /// Standard base64 (surrounding whitespace ignored) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<MasterKey, StoreError> {
        let bytes = B64.decode(text.trim()).map_err(|_| StoreError::Crypto("master key is not valid base64".into()))?;
        Self::from_bytes(&bytes)
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.bytes)
    }

    /// First 16 hex digits of SHA-256 of the key: safe to store and show.
    pub fn key_id(&self) -> String {
        self.id.clone()
    }

    fn from_array(bytes: [u8; KEY_LEN]) -> Result<MasterKey, StoreError> {
        let hash = digest(&SHA256, &bytes);
        let id = hash.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
        let aead = RandomizedNonceKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| StoreError::Crypto("cannot initialise AES-256-GCM key".into()))?;
        Ok(MasterKey { bytes, id, aead: std::sync::Arc::new(aead) })
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("key_id", &self.id).finish_non_exhaustive()
    }
}

/// The primary key (seals) plus retired keys (open only). `Debug` shows key ids only.
#[derive(Clone)]
pub struct Keyring {
    primary: MasterKey,
    old: Vec<MasterKey>,
}

impl Keyring {
    pub fn new(primary: MasterKey) -> Self {
        Keyring { primary, old: Vec::new() }
    }

    /// Adds a retired key, kept for opening. Ignored when a key with its id is already held.
    pub fn with_old(mut self, old: MasterKey) -> Self {
        if old.id != self.primary.id && !self.old.iter().any(|k| k.id == old.id) {
            self.old.push(old);
        }
        self
    }

    pub fn primary_id(&self) -> String {
        self.primary.key_id()
    }

    /// A 256-bit key for another purpose, derived from the primary key: HMAC-SHA256 keyed with
    /// the master key over `tollgate/v1/<purpose>`. Every replica sharing the master key derives
    /// the same key (the console signs its session cookies with one); rotating the master key
    /// changes it.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use aws_lc_rs::hmac;
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.primary.bytes);
        let tag = hmac::sign(&key, format!("tollgate/v1/{purpose}").as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Every key held, primary first.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &MasterKey> {
        std::iter::once(&self.primary).chain(self.old.iter())
    }

    /// Seals under the primary key: `v1:<key_id>:<base64(nonce || ciphertext || tag)>`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<String, StoreError> {
        // nonce || ciphertext || tag, encrypted in place after the nonce's room.
        let mut blob = Vec::with_capacity(NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
        blob.extend_from_slice(&[0u8; NONCE_LEN]);
        blob.extend_from_slice(plaintext);
        let (nonce, tag) = self
            .primary
            .aead
            .seal_in_place_separate_tag(Aad::from(aad), &mut blob[NONCE_LEN..])
            .map_err(|_| StoreError::Crypto("sealing failed".into()))?;
        blob[..NONCE_LEN].copy_from_slice(nonce.as_ref());
        blob.extend_from_slice(tag.as_ref());
        let mut out = String::with_capacity(VERSION.len() + self.primary.id.len() + 2 + blob.len().div_ceil(3) * 4);
        out.push_str(VERSION);
        out.push(':');
        out.push_str(&self.primary.id);
        out.push(':');
        B64.encode_string(&blob, &mut out);
        Ok(out)
    }

    /// Opens a value sealed by [`Keyring::seal`] with any key held here.
    /// `UnknownKeyId` when its key is not held; `Crypto` when it is malformed or fails to
    /// authenticate (wrong AAD, tampered bytes).
    pub fn open(&self, aad: &[u8], sealed: &str) -> Result<Vec<u8>, StoreError> {
        let (key_id, body) = parse_sealed(sealed)?;
        let key = self.keys().find(|k| k.id == key_id).ok_or_else(|| StoreError::UnknownKeyId(key_id.to_owned()))?;
        let mut blob = B64.decode(body).map_err(|_| StoreError::Crypto("sealed value is not valid base64".into()))?;
        if blob.len() < NONCE_LEN {
            return Err(StoreError::Crypto("sealed value is too short".into()));
        }
        let nonce = Nonce::try_assume_unique_for_key(&blob[..NONCE_LEN])
            .map_err(|_| StoreError::Crypto("sealed value has a bad nonce".into()))?;
        let plain = key
            .aead
            .open_in_place(nonce, Aad::from(aad), &mut blob[NONCE_LEN..])
            .map_err(|_| StoreError::Crypto(format!("cannot open value sealed with key \"{key_id}\"")))?;
        Ok(plain.to_vec())
    }
}

/// Splits `v1:<key_id>:<body>` into the key id and the base64 body.
pub(crate) fn parse_sealed(sealed: &str) -> Result<(&str, &str), StoreError> {
    let mut parts = sealed.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(VERSION), Some(id), Some(body)) if !id.is_empty() => Ok((id, body)),
        _ => Err(StoreError::Crypto("sealed value has an unknown format".into())),
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let old: Vec<&str> = self.old.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring").field("primary", &self.primary.id).field("old", &old).finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn derived_keys_depend_on_purpose_and_primary_key_only() {
        let a = MasterKey::from_bytes(&[7u8; 32]).unwrap();
        let b = MasterKey::from_bytes(&[8u8; 32]).unwrap();
        let ring = Keyring::new(a.clone());
        assert_eq!(
            ring.derive("console-session"),
            Keyring::new(a.clone()).with_old(b.clone()).derive("console-session")
        );
        assert_ne!(ring.derive("console-session"), ring.derive("other"));
        assert_ne!(ring.derive("console-session"), Keyring::new(b).derive("console-session"));
        assert_ne!(ring.derive("console-session"), [7u8; 32]);
    }
}
