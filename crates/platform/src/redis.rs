//! Redis connection pool (deadpool-redis).

use anyhow::Context;
use deadpool_redis::{Config, Pool, Runtime};

/// Creates a pool; connections are opened lazily.
pub fn pool(url: &str) -> anyhow::Result<Pool> {
    Config::from_url(url)
        .create_pool(Some(Runtime::Tokio1))
        .context("creating Redis pool")
}

/// A round trip, for readiness.
pub async fn ping(pool: &Pool) -> anyhow::Result<()> {
    let mut conn = pool.get().await.context("redis pool")?;
    let _: String = deadpool_redis::redis::cmd("PING")
        .query_async(&mut conn)
        .await?;
    Ok(())
}
