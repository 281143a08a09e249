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

/// A service's schema: its name, its own migrations, and the tables shared crates own.
pub struct Schema {
    /// `user_svc`, `topup_svc`, …
    pub name: &'static str,
    /// The service's migrations (its own tables).
    pub migrator: &'static sqlx::migrate::Migrator,
    /// Idempotent DDL of the tables shared crates' code relies on (the outbox, processed
    /// events, the statistics rollup), owned by those crates and applied before the
    /// migrations on every start.
    pub shared: &'static [&'static str],
    /// Migrations whose text changed after they were released without changing what they
    /// leave behind (the shared tables moved out of them): `(version, SHA-384 of the text
    /// first released, hex)`. A database that applied that text is recorded as having applied
    /// the current one; any other mismatch still stops the migration.
    pub rewritten: &'static [(i64, &'static str)],
}

/// Creates the schema if needed, applies its shared tables, records rewritten migrations
/// and applies its migrations. Safe to run from several processes at once: an advisory lock
/// serialises the schema's creation and its shared DDL, and sqlx locks migrations.
pub async fn migrate(pool: &PgPool, schema: &Schema) -> anyhow::Result<()> {
    let name = schema.name;
    anyhow::ensure!(
        name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
        "schema names are lowercase identifiers"
    );
    let mut conn = pool.acquire().await?;
    conn.execute("SELECT pg_advisory_lock(7243001)").await?;
    let prepared = prepare(&mut conn, schema).await;
    conn.execute("SELECT pg_advisory_unlock(7243001)").await?;
    prepared.with_context(|| format!("preparing schema {name}"))?;
    drop(conn);
    schema
        .migrator
        .run(pool)
        .await
        .with_context(|| format!("migrating schema {name}"))?;
    tracing::info!(schema = name, "migrations applied");
    Ok(())
}

/// The part of [`migrate`] that runs under its lock.
async fn prepare(conn: &mut sqlx::PgConnection, schema: &Schema) -> anyhow::Result<()> {
    // A service's own role owns its schema but may not create schemas (CREATE SCHEMA IF NOT
    // EXISTS checks that right even when the schema exists): only create what is missing.
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema.name)
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        conn.execute(format!("CREATE SCHEMA {}", schema.name).as_str())
            .await?;
    }
    for ddl in schema.shared {
        sqlx::raw_sql(ddl).execute(&mut *conn).await?;
    }
    let recorded: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_tables
                        WHERE schemaname = $1 AND tablename = '_sqlx_migrations')",
    )
    .bind(schema.name)
    .fetch_one(&mut *conn)
    .await?;
    if !recorded {
        return Ok(());
    }
    for (version, released) in schema.rewritten {
        let current = schema
            .migrator
            .iter()
            .find(|m| m.version == *version)
            .with_context(|| format!("rewritten migration {version} does not exist"))?;
        let released = hex::decode(released)
            .with_context(|| format!("checksum of rewritten migration {version}"))?;
        let updated = sqlx::query(
            "UPDATE _sqlx_migrations SET checksum = $3 WHERE version = $1 AND checksum = $2",
        )
        .bind(version)
        .bind(released)
        .bind(current.checksum.as_ref())
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if updated > 0 {
            tracing::info!(
                schema = schema.name,
                version,
                "rewritten migration recorded"
            );
        }
    }
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
