//! Login lockout in Redis: after `max_failures` failed logins within `window`, the account is
//! locked for `lock`. Keys hold a hash of the email, never the address itself.

use std::time::Duration;

use anyhow::Context;
use deadpool_redis::redis;
use sha2::{Digest, Sha256};

use crate::error::UserError;

/// Lockout policy and its Redis pool.
#[derive(Clone)]
pub struct Lockout {
    redis: deadpool_redis::Pool,
    /// Failures that trigger a lock.
    pub max_failures: u32,
    /// Window in which failures count.
    pub window: Duration,
    /// How long the lock lasts.
    pub lock: Duration,
}

fn key(kind: &str, email: &str) -> String {
    format!(
        "login:{kind}:{}",
        hex::encode(Sha256::digest(email.as_bytes()))
    )
}

impl Lockout {
    pub fn new(
        redis: deadpool_redis::Pool,
        max_failures: u32,
        window: Duration,
        lock: Duration,
    ) -> Self {
        Self {
            redis,
            max_failures,
            window,
            lock,
        }
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, UserError> {
        self.redis
            .get()
            .await
            .context("redis pool")
            .map_err(UserError::Internal)
    }

    /// Fails with `AccountLocked` while the account is locked.
    pub async fn check(&self, email: &str) -> Result<(), UserError> {
        let mut conn = self.conn().await?;
        let ttl: i64 = redis::cmd("TTL")
            .arg(key("lock", email))
            .query_async(&mut conn)
            .await
            .map_err(|e| UserError::Internal(e.into()))?;
        if ttl > 0 {
            return Err(UserError::AccountLocked {
                retry_after_secs: u64::try_from(ttl).unwrap_or(1),
            });
        }
        Ok(())
    }

    /// Counts a failure; returns `AccountLocked` if this failure locked the account.
    pub async fn record_failure(&self, email: &str) -> Result<(), UserError> {
        let mut conn = self.conn().await?;
        let failures_key = key("failures", email);
        let (failures,): (u32,) = redis::pipe()
            .atomic()
            .incr(&failures_key, 1)
            .expire(
                &failures_key,
                i64::try_from(self.window.as_secs()).unwrap_or(900),
            )
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(|e| UserError::Internal(e.into()))?;
        if failures >= self.max_failures {
            let _: () = redis::pipe()
                .atomic()
                .set_ex(key("lock", email), 1, self.lock.as_secs())
                .ignore()
                .del(&failures_key)
                .ignore()
                .query_async(&mut conn)
                .await
                .map_err(|e| UserError::Internal(e.into()))?;
            tracing::warn!(failures, "account locked after repeated failed logins");
            return Err(UserError::AccountLocked {
                retry_after_secs: self.lock.as_secs(),
            });
        }
        Ok(())
    }

    /// Clears failures and any lock (successful login, password reset).
    pub async fn reset(&self, email: &str) -> Result<(), UserError> {
        let mut conn = self.conn().await?;
        let _: () = redis::cmd("DEL")
            .arg(key("failures", email))
            .arg(key("lock", email))
            .query_async(&mut conn)
            .await
            .map_err(|e| UserError::Internal(e.into()))?;
        Ok(())
    }
}
