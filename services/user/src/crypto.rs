//! Password hashing (argon2id, OWASP parameters) and opaque tokens (256 random bits,
//! base64url; only their SHA-256 is stored).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::UserError;

fn argon2() -> Result<Argon2<'static>, UserError> {
    let params = Params::new(19_456, 2, 1, None)
        .map_err(|e| UserError::Internal(anyhow::anyhow!("argon2 params: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password on the blocking pool (argon2 is deliberately slow).
pub async fn hash_password(password: String) -> Result<String, UserError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        argon2()?
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| UserError::Internal(anyhow::anyhow!("hashing password: {e}")))
    })
    .await
    .map_err(|e| UserError::Internal(e.into()))?
}

/// Checks a password against a stored PHC hash on the blocking pool.
pub async fn verify_password(password: String, hash: String) -> Result<bool, UserError> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash)
            .map_err(|e| UserError::Internal(anyhow::anyhow!("stored hash unreadable: {e}")))?;
        Ok(argon2()?
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|e| UserError::Internal(e.into()))?
}

/// A new opaque token with an optional prefix, e.g. `rt_…`.
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let hash = hash_password("Correct-Horse-42".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password("Correct-Horse-42".into(), hash.clone())
                .await
                .unwrap()
        );
        assert!(!verify_password("wrong".into(), hash).await.unwrap());
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = new_token("rt_");
        assert!(a.starts_with("rt_") && a.len() > 40);
        assert_ne!(a, new_token("rt_"));
        assert_eq!(token_hash(&a).len(), 32);
    }
}
