//! Login lockout in Redis, keyed by account **and client**, counted before the password is
//! checked.
//!
//! * **Atomic.** [`Lockout::admit`] counts an attempt (a Lua script: lock check, `INCR`,
//!   expiry) *before* argon2 runs, so concurrent guesses cannot slip past the count: of any
//!   burst, at most `max_failures` reach the password check; the attempt that makes the
//!   `max_failures`-th failure locks, and everything after is refused unchecked.
//! * **No free denial of service.** The counters are per (account, client address), so an
//!   attacker's failures lock the attacker's address out of that account, not the owner
//!   logging in from elsewhere. A password reset bumps the account's generation, which
//!   clears every lock of the account at once (the owner's way back in).
//! * **Progressive.** Each lock of the same (account, client) within a day lasts twice as long
//!   as the previous one, up to `max_lock`.
//!
//! Keys hold SHA-256 digests of the email and the address, never the values themselves.

use std::time::Duration;

use anyhow::Context;
use deadpool_redis::redis;

use crate::crypto::key_digest;
use crate::error::UserError;

/// Counts the attempt unless locked. Returns `{0, ttl}` when locked, `{1, attempt}` otherwise.
const ADMIT: &str = r"
local generation = redis.call('GET', KEYS[1]) or '0'
local base = 'login:' .. ARGV[1] .. ':' .. generation .. ':' .. ARGV[2]
local ttl = redis.call('TTL', base .. ':lock')
if ttl > 0 then return {0, ttl} end
local n = redis.call('INCR', base .. ':attempts')
if n == 1 then redis.call('EXPIRE', base .. ':attempts', ARGV[3]) end
return {1, n}
";

/// Locks after a failure: the lock lasts `base * 2^(level-1)`, capped. Returns its seconds.
const LOCK: &str = r"
local generation = redis.call('GET', KEYS[1]) or '0'
local base = 'login:' .. ARGV[1] .. ':' .. generation .. ':' .. ARGV[2]
local level = redis.call('INCR', base .. ':level')
redis.call('EXPIRE', base .. ':level', 86400)
local seconds = math.min(tonumber(ARGV[3]) * 2 ^ (level - 1), tonumber(ARGV[4]))
redis.call('SET', base .. ':lock', 1, 'EX', seconds)
redis.call('DEL', base .. ':attempts')
return seconds
";

/// Clears the attempts and the lock level after a successful login.
const CLEAR: &str = r"
local generation = redis.call('GET', KEYS[1]) or '0'
local base = 'login:' .. ARGV[1] .. ':' .. generation .. ':' .. ARGV[2]
return redis.call('DEL', base .. ':attempts', base .. ':level', base .. ':lock')
";

/// Lockout policy and its Redis pool.
#[derive(Clone)]
pub struct Lockout {
    redis: deadpool_redis::Pool,
    /// Failed attempts (per account and client) that lock.
    pub max_failures: u32,
    /// Window in which attempts count.
    pub window: Duration,
    /// How long the first lock lasts; each further lock within a day doubles it.
    pub lock: Duration,
    /// The longest lock.
    pub max_lock: Duration,
}

/// One counted attempt; pass it back to [`Lockout::failed`] or [`Lockout::succeeded`].
#[derive(Debug)]
pub struct Attempt {
    account: String,
    client: String,
    number: u32,
}

fn generation_key(account: &str) -> String {
    format!("login:{account}:generation")
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
            max_failures: max_failures.max(1),
            window,
            lock,
            max_lock: (lock * 16).max(Duration::from_secs(3600)),
        }
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, UserError> {
        self.redis
            .get()
            .await
            .context("redis pool")
            .map_err(UserError::Internal)
    }

    /// Counts an attempt of `client` on `email`, or fails with `AccountLocked`.
    pub async fn admit(&self, email: &str, client: &str) -> Result<Attempt, UserError> {
        let account = key_digest(email);
        let client = key_digest(client);
        let mut conn = self.conn().await?;
        let (admitted, value): (i64, i64) = redis::Script::new(ADMIT)
            .key(generation_key(&account))
            .arg(&account)
            .arg(&client)
            .arg(self.window.as_secs().max(1))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| UserError::Internal(e.into()))?;
        if admitted == 0 {
            return Err(UserError::AccountLocked {
                retry_after_secs: u64::try_from(value).unwrap_or(1).max(1),
            });
        }
        let number = u32::try_from(value).unwrap_or(u32::MAX);
        if number > self.max_failures {
            // Beyond the count without a lock: attempts that were in flight when the lock
            // was set. They are refused unchecked, like everything while locked.
            return Err(UserError::AccountLocked {
                retry_after_secs: self.lock.as_secs().max(1),
            });
        }
        Ok(Attempt {
            account,
            client,
            number,
        })
    }

    /// A failed attempt: locks if it was the last one allowed. Returns the error to answer.
    pub async fn failed(&self, attempt: Attempt) -> UserError {
        if attempt.number < self.max_failures {
            return UserError::InvalidCredentials;
        }
        let locked: Result<u64, UserError> = async {
            let mut conn = self.conn().await?;
            redis::Script::new(LOCK)
                .key(generation_key(&attempt.account))
                .arg(&attempt.account)
                .arg(&attempt.client)
                .arg(self.lock.as_secs().max(1))
                .arg(self.max_lock.as_secs().max(1))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| UserError::Internal(e.into()))
        }
        .await;
        match locked {
            Ok(seconds) => {
                tracing::warn!(
                    seconds,
                    "login locked for this client after repeated failures"
                );
                metrics::counter!("user_login_locks_total").increment(1);
                UserError::AccountLocked {
                    retry_after_secs: seconds.max(1),
                }
            }
            Err(e) => e,
        }
    }

    /// A successful attempt: clears the client's attempts on the account.
    pub async fn succeeded(&self, attempt: Attempt) -> Result<(), UserError> {
        let mut conn = self.conn().await?;
        let _: i64 = redis::Script::new(CLEAR)
            .key(generation_key(&attempt.account))
            .arg(&attempt.account)
            .arg(&attempt.client)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| UserError::Internal(e.into()))?;
        Ok(())
    }

    /// Clears every lock and count of the account, from every client (password reset).
    pub async fn reset(&self, email: &str) -> Result<(), UserError> {
        let mut conn = self.conn().await?;
        let _: i64 = redis::cmd("INCR")
            .arg(generation_key(&key_digest(email)))
            .query_async(&mut conn)
            .await
            .map_err(|e| UserError::Internal(e.into()))?;
        Ok(())
    }
}
