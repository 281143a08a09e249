//! Schema migration against real PostgreSQL: shared tables are applied before a service's
//! migrations, and a migration rewritten after release (its shared tables moved out) is
//! accepted on a database that applied the released text, and only then.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use platform::db::Schema;
use sha2::{Digest, Sha384};
use sqlx::migrate::Migrator;

const RELEASED: &str =
    "CREATE TABLE things (id INT PRIMARY KEY);\nCREATE TABLE outbox_like (id INT);\n";
const CURRENT: &str = "CREATE TABLE things (id INT PRIMARY KEY);\n";
const SHARED: &str = "CREATE TABLE IF NOT EXISTS outbox_like (id INT);";

/// A migrator whose version 1 is `text`.
async fn migrator(text: &str) -> &'static Migrator {
    let dir = std::env::temp_dir().join(testkit::unique("migrations"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("0001_init.sql"), text).unwrap();
    Box::leak(Box::new(Migrator::new(dir).await.unwrap()))
}

/// The SHA-384 of `text` in hex, as a rewritten migration declares its released text.
fn released_as(text: &[u8]) -> &'static [(i64, &'static str)] {
    let checksum: &'static str = Box::leak(hex::encode(Sha384::digest(text)).into_boxed_str());
    Box::leak(Box::new([(1, checksum)]))
}

fn schema(
    migrator: &'static Migrator,
    shared: &'static [&'static str],
    rewritten: &'static [(i64, &'static str)],
) -> Schema {
    Schema {
        name: "things_svc",
        migrator,
        shared,
        rewritten,
    }
}

async fn pool() -> sqlx::PgPool {
    let url = testkit::fresh_database().await.unwrap();
    platform::db::connect(&url, "things_svc", 2).await.unwrap()
}

async fn tables(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'things_svc'
         AND tablename <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_database_that_applied_the_released_text_accepts_the_rewritten_one() {
    let pool = pool().await;
    // Released: the migration creates the shared table itself.
    platform::db::migrate(&pool, &schema(migrator(RELEASED).await, &[], &[]))
        .await
        .unwrap();
    // Rewritten: the table moved to the shared DDL; the released checksum is declared.
    let current = migrator(CURRENT).await;
    let rewritten = released_as(RELEASED.as_bytes());
    platform::db::migrate(&pool, &schema(current, &[SHARED], rewritten))
        .await
        .unwrap();
    assert_eq!(tables(&pool).await, ["outbox_like", "things"]);
    let recorded: Vec<u8> =
        sqlx::query_scalar("SELECT checksum FROM _sqlx_migrations WHERE version = 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(recorded, current.iter().next().unwrap().checksum.as_ref());
    // And again: nothing left to record, nothing fails.
    platform::db::migrate(&pool, &schema(current, &[SHARED], rewritten))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_fresh_database_gets_the_shared_tables_and_the_current_migrations() {
    let pool = pool().await;
    platform::db::migrate(&pool, &schema(migrator(CURRENT).await, &[SHARED], &[]))
        .await
        .unwrap();
    assert_eq!(tables(&pool).await, ["outbox_like", "things"]);
}

#[tokio::test]
async fn a_migration_changed_in_any_other_way_still_stops_the_start() {
    let pool = pool().await;
    platform::db::migrate(&pool, &schema(migrator(RELEASED).await, &[], &[]))
        .await
        .unwrap();
    // Declared as rewritten from another text than the one this database applied.
    let rewritten = released_as(b"something else");
    let error = platform::db::migrate(
        &pool,
        &schema(migrator(CURRENT).await, &[SHARED], rewritten),
    )
    .await
    .unwrap_err();
    assert!(
        format!("{error:#}").contains("previously applied but has been modified"),
        "{error:#}"
    );
}
