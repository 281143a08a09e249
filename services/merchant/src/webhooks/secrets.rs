//! Endpoint signing secrets: `whsec_` and 32 random bytes (base64url), shown once, stored
//! sealed under a key derived from `WEBHOOK_SECRETS_KEY` with the secret's id as associated
//! data.

use base64::Engine;
use platform::sealing::Sealer;
use rand::RngCore;
use uuid::Uuid;

const PREFIX: &str = "whsec_";

/// Seals and opens signing secrets.
#[derive(Clone, Debug)]
pub struct SecretBox(Sealer);

impl SecretBox {
    /// From the master secret (at least 32 characters).
    pub fn new(master: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            master.len() >= 32,
            "WEBHOOK_SECRETS_KEY must be at least 32 characters"
        );
        Ok(Self(Sealer::derived(
            master.as_bytes(),
            b"webhook-signing-secrets",
        )))
    }

    /// A fresh secret and its sealed form for the row `id`.
    pub fn generate(&self, id: Uuid) -> anyhow::Result<(String, Vec<u8>)> {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        let sealed = self.0.seal(secret.as_bytes(), id.as_bytes())?;
        Ok((secret, sealed))
    }

    /// The secret of the row `id`.
    pub fn open(&self, id: Uuid, sealed: &[u8]) -> anyhow::Result<String> {
        let plain = self.0.open(sealed, id.as_bytes())?;
        Ok(String::from_utf8(plain)?)
    }
}
