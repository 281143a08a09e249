//! Secrets at rest: authenticated encryption of small values (AES-256-GCM, a random 96-bit
//! nonce in front of the ciphertext) with the row's id as associated data, so a sealed value
//! cannot be moved to another row. Used for card numbers (the card service) and webhook
//! signing secrets (the merchant service); each service holds its own master secret and
//! derives its keys from it with HMAC-SHA256 and a label.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

const NONCE_LEN: usize = 12;

/// HMAC-SHA256 of the concatenated `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// A key that seals and opens values.
#[derive(Clone)]
pub struct Sealer(Aes256Gcm);

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer([REDACTED])")
    }
}

impl Sealer {
    /// A sealer with a 256-bit key.
    pub fn new(key: &[u8; 32]) -> Self {
        Self(Aes256Gcm::new(key.into()))
    }

    /// The sealer whose key is HMAC-SHA256(`master`, `label`).
    pub fn derived(master: &[u8], label: &[u8]) -> Self {
        Self::new(&hmac_sha256(master, &[label]))
    }

    /// `nonce ‖ ciphertext` of `plaintext`, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    /// The plaintext of a [`Self::seal`] result; an error when the key, the value or the
    /// associated data differ.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> anyhow::Result<Vec<u8>> {
        anyhow::ensure!(sealed.len() > NONCE_LEN, "sealed value too short");
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.0
            .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
            .map_err(|_| anyhow::anyhow!("a sealed value does not open with this key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_row() {
        let sealer = Sealer::derived(b"a master secret of at least 32 bytes", b"label");
        let sealed = sealer.seal(b"whsec_x", b"row-1").unwrap();
        assert_eq!(sealer.open(&sealed, b"row-1").unwrap(), b"whsec_x");
        assert!(
            sealer.open(&sealed, b"row-2").is_err(),
            "moved to another row"
        );
        let other = Sealer::derived(b"a master secret of at least 32 bytes", b"other");
        assert!(other.open(&sealed, b"row-1").is_err(), "another key");
        assert_ne!(
            sealer.seal(b"whsec_x", b"row-1").unwrap(),
            sealed,
            "fresh nonce"
        );
    }
}
