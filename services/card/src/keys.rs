//! The card service's keys, and what it does with card data at rest. The platform issues the
//! cards, so it is held to an issuer's standard:
//!
//! * **PANs are encrypted** (envelope encryption): each card's number is sealed with a fresh
//!   data key (AES-256-GCM, the card id as associated data, so ciphertexts cannot be swapped
//!   between rows), and the data key is stored wrapped by the key-encryption key. Only this
//!   service holds the master secret (`CARD_PAN_KEY`); the database alone reveals no number.
//! * **Lookups by number** use a keyed hash (HMAC-SHA256 of the number), never the number.
//! * **CVVs are not stored at all**: like an issuer, the service derives a card's CVV from a
//!   key (`CARD_CVV_KEY`), its number and the expiry period it was issued for, whenever it
//!   has to check one (or show it to the card's owner).
//!
//! Both master secrets are at least 32 bytes; the key-encryption and lookup keys are derived
//! from `CARD_PAN_KEY` with HMAC and distinct labels.

use platform::sealing::{Sealer, hmac_sha256 as hmac};
use rand::RngCore;
use uuid::Uuid;

/// A card number as stored: the ciphertext and its wrapped data key (each `nonce ‖ sealed`).
#[derive(Clone, Debug)]
pub struct SealedPan {
    pub ciphertext: Vec<u8>,
    pub wrapped_key: Vec<u8>,
}

/// The keys of the card service.
#[derive(Clone)]
pub struct CardKeys {
    kek: Sealer,
    lookup: [u8; 32],
    cvv: Vec<u8>,
}

impl std::fmt::Debug for CardKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardKeys([REDACTED])")
    }
}

impl CardKeys {
    /// Keys from the master secrets (`CARD_PAN_KEY`, `CARD_CVV_KEY`), each ≥ 32 bytes.
    pub fn new(pan_secret: &str, cvv_secret: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            pan_secret.len() >= 32,
            "CARD_PAN_KEY must be at least 32 bytes"
        );
        anyhow::ensure!(
            cvv_secret.len() >= 32,
            "CARD_CVV_KEY must be at least 32 bytes"
        );
        Ok(Self {
            kek: Sealer::derived(pan_secret.as_bytes(), b"pan-key-encryption"),
            lookup: hmac(pan_secret.as_bytes(), &[b"pan-lookup"]),
            cvv: cvv_secret.as_bytes().to_vec(),
        })
    }

    /// The keyed hash a card is found by.
    pub fn lookup_hash(&self, pan: &str) -> Vec<u8> {
        hmac(&self.lookup, &[pan.as_bytes()]).to_vec()
    }

    /// Seals the number of card `card_id` under a fresh data key.
    pub fn seal(&self, card_id: Uuid, pan: &str) -> anyhow::Result<SealedPan> {
        let mut data_key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut data_key);
        let cipher = Sealer::new(&data_key);
        Ok(SealedPan {
            ciphertext: cipher.seal(pan.as_bytes(), card_id.as_bytes())?,
            wrapped_key: self.kek.seal(&data_key, card_id.as_bytes())?,
        })
    }

    /// The number of card `card_id`.
    pub fn open(&self, card_id: Uuid, sealed: &SealedPan) -> anyhow::Result<String> {
        let data_key: [u8; 32] = self
            .kek
            .open(&sealed.wrapped_key, card_id.as_bytes())
            .map_err(|_| anyhow::anyhow!("a stored card number does not decrypt with this key"))?
            .try_into()
            .map_err(|_| anyhow::anyhow!("a stored data key has the wrong length"))?;
        let pan = Sealer::new(&data_key)
            .open(&sealed.ciphertext, card_id.as_bytes())
            .map_err(|_| anyhow::anyhow!("a stored card number does not decrypt with this key"))?;
        String::from_utf8(pan).map_err(|_| anyhow::anyhow!("a stored card number is not text"))
    }

    /// The CVV of the card with `pan` issued for expiry `period` (`YYYYMM`).
    pub fn cvv(&self, pan: &str, period: i32) -> String {
        let tag = hmac(
            &self.cvv,
            &[b"cvv:", pan.as_bytes(), b":", &period.to_be_bytes()],
        );
        let value = u32::from_be_bytes([tag[0], tag[1], tag[2], tag[3]]) % 1000;
        format!("{value:03}")
    }
}

/// Compares two short secrets in constant time (for equal lengths).
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> CardKeys {
        CardKeys::new(&"p".repeat(32), &"c".repeat(32)).unwrap()
    }

    #[test]
    fn numbers_seal_and_open_only_for_their_card() {
        let keys = keys();
        let id = Uuid::now_v7();
        let sealed = keys.seal(id, "4111111111111111").unwrap();
        assert!(
            !sealed
                .ciphertext
                .windows(16)
                .any(|w| w == b"4111111111111111")
        );
        assert_eq!(keys.open(id, &sealed).unwrap(), "4111111111111111");
        assert!(
            keys.open(Uuid::now_v7(), &sealed).is_err(),
            "bound to its card"
        );
        let other = CardKeys::new(&"q".repeat(32), &"c".repeat(32)).unwrap();
        assert!(other.open(id, &sealed).is_err(), "only with the key");
        // Fresh data keys and nonces: the same number seals differently every time.
        assert_ne!(
            keys.seal(id, "4111111111111111").unwrap().ciphertext,
            sealed.ciphertext
        );
    }

    #[test]
    fn lookups_and_cvvs_are_keyed_and_stable() {
        let keys = keys();
        assert_eq!(
            keys.lookup_hash("4111111111111111"),
            keys.lookup_hash("4111111111111111")
        );
        assert_ne!(
            keys.lookup_hash("4111111111111111"),
            keys.lookup_hash("4111111111111112")
        );
        let cvv = keys.cvv("4111111111111111", 203_012);
        assert_eq!(cvv.len(), 3);
        assert!(cvv.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(cvv, keys.cvv("4111111111111111", 203_012));
        let other = CardKeys::new(&"p".repeat(32), &"d".repeat(32)).unwrap();
        let differing = (0..20)
            .filter(|i| {
                let pan = format!("41111111111111{i:02}");
                keys.cvv(&pan, 203_012) != other.cvv(&pan, 203_012)
            })
            .count();
        assert!(differing >= 15, "the CVV depends on the key");
        assert!(same("123", "123") && !same("123", "124") && !same("12", "123"));
        assert!(CardKeys::new("short", &"c".repeat(32)).is_err());
    }
}
