//! Password hashing (argon2id, OWASP parameters) and opaque tokens (256 random bits,
//! base64url; only their SHA-256 is stored).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::error::UserError;

fn argon2() -> Result<Argon2<'static>, UserError> {
    let params = Params::new(19_456, 2, 1, None)
        .map_err(|e| UserError::Internal(anyhow::anyhow!("argon2 params: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password on the blocking pool (argon2 is deliberately slow).
fn hash_blocking(password: &str) -> Result<String, UserError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Internal(anyhow::anyhow!("hashing password: {e}")))
}

fn verify_blocking(password: &str, hash: &str) -> Result<bool, UserError> {
    let parsed = PasswordHash::new(hash)
        .map_err(|e| UserError::Internal(anyhow::anyhow!("stored hash unreadable: {e}")))?;
    Ok(argon2()?
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// Runs argon2 with bounded concurrency. Each hash takes ~19 MiB for its duration, and
/// login, registration and reset are reachable without authentication: unbounded, a burst of
/// them grows the process by gigabytes. At most `concurrency` run at once, at most `queue`
/// more wait (each for at most `wait`); anything beyond is refused at once with
/// [`UserError::Busy`] (503 with `Retry-After`), so memory stays bounded whatever arrives.
#[derive(Clone, Debug)]
pub struct PasswordHasher {
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
    wait: Duration,
}

impl PasswordHasher {
    pub fn new(concurrency: usize, queue: usize, wait: Duration) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            running: Arc::new(Semaphore::new(concurrency)),
            admitted: Arc::new(Semaphore::new(concurrency + queue)),
            wait,
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, UserError> + Send + 'static,
    ) -> Result<T, UserError> {
        let busy = || {
            metrics::counter!("user_password_hash_refused_total").increment(1);
            UserError::Busy {
                retry_after_secs: 1,
            }
        };
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| busy())?;
        let running = tokio::time::timeout(self.wait, self.running.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|e| UserError::Internal(e.into()))?;
        let in_flight = metrics::gauge!("user_password_hashes_in_flight");
        in_flight.increment(1.0);
        let result = tokio::task::spawn_blocking(work).await;
        in_flight.decrement(1.0);
        drop((running, admitted));
        result.map_err(|e| UserError::Internal(e.into()))?
    }

    /// A PHC argon2id hash of `password`.
    pub async fn hash(&self, password: String) -> Result<String, UserError> {
        self.run(move || hash_blocking(&password)).await
    }

    /// Whether `password` matches the stored PHC `hash`.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, UserError> {
        self.run(move || verify_blocking(&password, &hash)).await
    }
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

/// A short keyless digest naming an email or address in Redis keys (never the value itself).
pub fn key_digest(value: &str) -> String {
    hex::encode(&Sha256::digest(value.as_bytes())[..16])
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
        let hasher = PasswordHasher::new(2, 2, Duration::from_secs(5));
        let hash = hasher.hash("Correct-Horse-42".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            hasher
                .verify("Correct-Horse-42".into(), hash.clone())
                .await
                .unwrap()
        );
        assert!(!hasher.verify("wrong".into(), hash).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_beyond_the_bound_is_refused_not_queued_without_limit() {
        let hasher = PasswordHasher::new(1, 2, Duration::from_millis(50));
        let attempts: Vec<_> = (0..12)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash("Correct-Horse-42".into()).await })
            })
            .collect();
        let mut refused = 0;
        for attempt in attempts {
            match attempt.await.unwrap() {
                Ok(_) => {}
                Err(UserError::Busy { retry_after_secs }) => {
                    assert!(retry_after_secs >= 1);
                    refused += 1;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        // At most one runs and two wait: of twelve at once, at least nine are refused.
        assert!(refused >= 9, "refused {refused}");
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = new_token("rt_");
        assert!(a.starts_with("rt_") && a.len() > 40);
        assert_ne!(a, new_token("rt_"));
        assert_eq!(token_hash(&a).len(), 32);
    }
}
