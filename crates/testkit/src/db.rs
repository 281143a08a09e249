//! PostgreSQL: the server the test command started, and a fresh database per test.

use anyhow::Context;
use sqlx::Connection;

/// Admin URL of the PostgreSQL server used by tests.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Creates a fresh, empty database and returns its URL. Databases are named `pt_<uuid>`; the
/// test command drops leftovers before each run.
pub async fn fresh_database() -> anyhow::Result<String> {
    let admin = postgres_admin_url();
    let name = format!("pt_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .context("connecting to the test PostgreSQL server (TEST_DATABASE_URL)")?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let base = admin
        .rsplit_once('/')
        .map(|(base, _)| base.to_owned())
        .context("TEST_DATABASE_URL has no database path")?;
    Ok(format!("{base}/{name}"))
}
