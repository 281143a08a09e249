//! PostgreSQL: one pool per service whose `search_path` is the service's own schema, and
//! per-schema migrations (each schema has its own `_sqlx_migrations` table).

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};

/// Opens a pool whose connections use `schema` as their search path.
pub async fn connect(url: &str, schema: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url)
        .context("DATABASE_URL is not a valid PostgreSQL URL")?
        .options([("search_path", schema)])
        .application_name(schema);
    PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .with_context(|| format!("connecting to PostgreSQL for schema {schema}"))
}

/// Creates `schema` if needed and applies the service's migrations. Safe to run from several
/// processes at once: an advisory lock serialises schema creation, and sqlx locks migrations.
pub async fn migrate(
    pool: &PgPool,
    schema: &str,
    migrator: &sqlx::migrate::Migrator,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        schema.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
        "schema names are lowercase identifiers"
    );
    let mut conn = pool.acquire().await?;
    // A service's own role owns its schema but may not create schemas (CREATE SCHEMA IF NOT
    // EXISTS checks that right even when the schema exists): only create what is missing.
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        conn.execute("SELECT pg_advisory_lock(7243001)").await?;
        let created = conn
            .execute(format!("CREATE SCHEMA IF NOT EXISTS {schema}").as_str())
            .await;
        conn.execute("SELECT pg_advisory_unlock(7243001)").await?;
        created.with_context(|| format!("creating schema {schema}"))?;
    }
    drop(conn);
    migrator
        .run(pool)
        .await
        .with_context(|| format!("migrating schema {schema}"))?;
    tracing::info!(schema, "migrations applied");
    Ok(())
}

/// The constraint name if `err` is a unique violation.
pub fn unique_violation(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
            Some(db.constraint().unwrap_or_default().to_owned())
        }
        _ => None,
    }
}

/// The constraint name if `err` is a check violation.
pub fn check_violation(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23514") => {
            Some(db.constraint().unwrap_or_default().to_owned())
        }
        _ => None,
    }
}

/// A cheap round trip, for readiness.
pub async fn ping(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

/// Escapes `%`, `_` and `\` so user input matches literally inside an `ILIKE` pattern.
pub fn like_pattern(search: &str) -> String {
    let mut escaped = String::with_capacity(search.len() + 2);
    escaped.push('%');
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}
