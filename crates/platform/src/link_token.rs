//! One-time link tokens (email verification, password reset) that never travel in events.
//!
//! The user service stores only a token's SHA-256; the email service needs the token itself to
//! put it into a link. Instead of carrying it through the outbox, Kafka and the dead-letter
//! topic (where anyone with read access could take over any account), an event carries the
//! token's id and both services derive the token from it with a key only they hold
//! (`ONE_TIME_TOKEN_KEY`):
//!
//! ```text
//! token = <id> "." base64url(HMAC-SHA256(key, purpose ":" id))
//! ```
//!
//! An id without the key is worthless, and a token cannot be forged for an id the user service
//! did not issue, because only issued tokens' hashes are stored.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::Secret;

/// Purpose of email-verification tokens.
pub const VERIFY_EMAIL: &str = "verify_email";
/// Purpose of password-reset tokens.
pub const RESET_PASSWORD: &str = "reset_password";

/// The environment variable holding the key.
pub const KEY_ENV: &str = "ONE_TIME_TOKEN_KEY";

/// The key shared by the user and email services.
#[derive(Clone, Debug)]
pub struct LinkTokenKey(Secret<Vec<u8>>);

impl LinkTokenKey {
    /// A key of at least 32 bytes.
    pub fn new(key: impl Into<Vec<u8>>) -> anyhow::Result<Self> {
        let key = key.into();
        anyhow::ensure!(
            key.len() >= 32,
            "{KEY_ENV} must be at least 32 bytes (it is {})",
            key.len()
        );
        Ok(Self(Secret::new(key)))
    }

    /// The key from `ONE_TIME_TOKEN_KEY`.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::new(crate::config::required(KEY_ENV)?.into_bytes())
    }

    /// The token of `id` for `purpose` (e.g. `verify_email`).
    pub fn token(&self, purpose: &str, id: Uuid) -> String {
        // HMAC accepts keys of any length; new_from_slice cannot fail for it.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(purpose.as_bytes());
        mac.update(b":");
        mac.update(id.as_bytes());
        let tag =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{}.{tag}", id.simple())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_depend_on_key_purpose_and_id() {
        let key = LinkTokenKey::new(vec![7u8; 32]).unwrap();
        let other = LinkTokenKey::new(vec![8u8; 32]).unwrap();
        let id = Uuid::now_v7();
        let token = key.token("verify_email", id);
        assert!(token.starts_with(&id.simple().to_string()));
        assert_eq!(token, key.token("verify_email", id));
        assert_ne!(token, key.token("reset_password", id));
        assert_ne!(token, key.token("verify_email", Uuid::now_v7()));
        assert_ne!(token, other.token("verify_email", id));
        assert!(LinkTokenKey::new(vec![1u8; 31]).is_err());
        assert!(!format!("{key:?}").contains('7'));
    }
}
