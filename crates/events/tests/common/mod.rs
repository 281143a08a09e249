//! What the events crate's tests share: a fresh database with the outbox tables and an
//! `effects` table, a topic, a handler that records what it applies, and a relay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use events::{Consumer, ConsumerConfig, Envelope, EventHandler, HandlerError, OutboxRelay};
use sqlx::{PgConnection, PgPool};

pub const SCHEMA: &str = "evtest";

/// A fresh database with the outbox tables, and a new topic of three partitions on `brokers`.
pub async fn setup(brokers: &str) -> (PgPool, String) {
    let url = testkit::fresh_database().await.unwrap();
    let pool = platform::db::connect(&url, SCHEMA, 5).await.unwrap();
    sqlx::raw_sql("CREATE SCHEMA evtest;")
        .execute(&pool)
        .await
        .unwrap();
    for ddl in [
        events::schema::OUTBOX,
        events::schema::PROCESSED_EVENTS,
        "CREATE TABLE effects (n BIGSERIAL, event_id UUID NOT NULL, seq INT NOT NULL);",
    ] {
        sqlx::raw_sql(ddl).execute(&pool).await.unwrap();
    }
    let topic = testkit::unique("evtest");
    events::topics::ensure_named(brokers, &topic, 3)
        .await
        .unwrap();
    (pool, topic)
}

/// Records each event it sees, after `delay`; while `open` is false it fails (retryably).
#[derive(Clone)]
pub struct Recorder {
    pub delay: Duration,
    pub open: Arc<AtomicBool>,
}

impl Recorder {
    pub fn new(delay: Duration) -> Self {
        Self {
            delay,
            open: Arc::new(AtomicBool::new(true)),
        }
    }
}

impl EventHandler for Recorder {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        tokio::time::sleep(self.delay).await;
        if !self.open.load(Ordering::SeqCst) {
            return Err(HandlerError::Retryable(anyhow::anyhow!(
                "the gate is closed"
            )));
        }
        let seq = event.data["seq"].as_i64().unwrap_or(-1) as i32;
        sqlx::query("INSERT INTO effects (event_id, seq) VALUES ($1, $2)")
            .bind(event.id)
            .bind(seq)
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// Commits `count` events for `topic` to the outbox.
pub async fn enqueue(pool: &PgPool, topic: &str, count: i32) {
    let mut tx = pool.begin().await.unwrap();
    for seq in 0..count {
        let event = Envelope::new(
            "test",
            "thing.happened",
            format!("thing-{}", seq % 5),
            &serde_json::json!({"seq": seq}),
        )
        .unwrap();
        events::outbox::enqueue(&mut tx, topic, &event)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// (effects applied, distinct events applied).
pub async fn effect_counts(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(DISTINCT event_id) FROM effects")
        .fetch_one(pool)
        .await
        .unwrap()
}

pub fn relay(pool: &PgPool, brokers: &str) -> OutboxRelay {
    OutboxRelay::new(pool.clone(), brokers, SCHEMA).unwrap()
}

pub fn consumer(
    pool: &PgPool,
    brokers: &str,
    topic: &str,
    group: &str,
    handler: Recorder,
) -> Consumer<Recorder> {
    Consumer::new(config(brokers, topic, group), pool.clone(), handler).unwrap()
}

/// A consumer's settings with quick retries.
pub fn config(brokers: &str, topic: &str, group: &str) -> ConsumerConfig {
    let mut config = ConsumerConfig::new(brokers, group, &[topic]);
    config.initial_backoff = Duration::from_millis(20);
    config
}

/// The sequence numbers applied for each subject (`thing-<seq % 5>`), in the order applied.
pub async fn applied_per_subject(pool: &PgPool) -> Vec<Vec<i32>> {
    let rows: Vec<(i32,)> = sqlx::query_as("SELECT seq FROM effects ORDER BY n")
        .fetch_all(pool)
        .await
        .unwrap();
    let mut per_subject = vec![Vec::new(); 5];
    for (seq,) in rows {
        per_subject[(seq % 5) as usize].push(seq);
    }
    per_subject
}
