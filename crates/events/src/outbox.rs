//! The transactional outbox.
//!
//! [`enqueue`] inserts an event into the service schema's `outbox` table inside the caller's
//! transaction and notifies the relay. [`OutboxRelay`] publishes unsent rows in id order with
//! an idempotent producer (`acks=all`, key = aggregate id) and then marks them sent.
//!
//! Ordering with several replicas: each batch runs under a transaction-scoped advisory lock
//! per schema, so only one relay publishes at a time and rows leave in commit order.
//! Delivery is at least once: a crash between publishing and marking republishes the batch,
//! which consumers deduplicate by event id.
//!
//! The tables (`outbox`, and `processed_events` for consumers) are [`crate::schema`]'s.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use platform::shutdown::Shutdown;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::Envelope;

/// How long the relay lets a burst of commits gather after a notification.
const COALESCE: Duration = Duration::from_millis(10);

/// Adds `event` to the outbox of the current schema, to be published to `topic` with the
/// event's subject as key. Call inside the transaction that makes the change. An event whose
/// id is already there is not added again, so an event with an id derived from its subject
/// (announced from a request that may be retried, or from several replicas) is sent once.
pub async fn enqueue(
    conn: &mut PgConnection,
    topic: &str,
    event: &Envelope,
) -> Result<(), sqlx::Error> {
    let headers = platform::telemetry::current_context_headers();
    let payload = serde_json::to_value(event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let headers = serde_json::to_value(headers).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "WITH inserted AS (
             INSERT INTO outbox (event_id, topic, partition_key, event_type, payload, headers)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (event_id) DO NOTHING
             RETURNING 1)
         SELECT pg_notify('outbox_' || current_schema(), '') FROM inserted",
    )
    .bind(event.id)
    .bind(topic)
    .bind(&event.subject)
    .bind(&event.event_type)
    .bind(payload)
    .bind(headers)
    .execute(conn)
    .await?;
    Ok(())
}

/// The `payload` and `headers` columns of an outbox row for `event`, for callers that write
/// the row inside a larger statement (a CTE next to the change it announces) instead of
/// calling [`enqueue`]. Such a statement must also `pg_notify('outbox_' || current_schema(), '')`.
pub fn encode(event: &Envelope) -> serde_json::Result<(serde_json::Value, serde_json::Value)> {
    let headers = platform::telemetry::current_context_headers();
    Ok((serde_json::to_value(event)?, serde_json::to_value(headers)?))
}

/// A Kafka producer configured for the outbox: idempotent, `acks=all`.
pub fn producer(brokers: &str) -> anyhow::Result<FutureProducer> {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .context("creating Kafka producer")
}

/// The broker did not acknowledge a message (timed out, refused, or the producer gave up).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Undelivered(String);

/// One unsent outbox row.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OutboxRow {
    /// Row id (commit order).
    pub id: i64,
    /// Destination topic.
    pub topic: String,
    /// Kafka key.
    pub partition_key: String,
    /// Event type, also sent as a header.
    pub event_type: String,
    /// The envelope.
    pub payload: serde_json::Value,
    /// Trace-context headers captured at enqueue time.
    pub headers: serde_json::Value,
    /// When the event was committed.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Publishes outbox rows of one schema.
#[derive(Clone)]
pub struct OutboxRelay {
    pool: PgPool,
    brokers: String,
    producer: FutureProducer,
    schema: String,
    batch_size: i64,
    poll_interval: Duration,
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRelay")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl OutboxRelay {
    /// A relay for the outbox in `schema` (the pool's search path), publishing to `brokers`.
    pub fn new(pool: PgPool, brokers: &str, schema: &str) -> anyhow::Result<Self> {
        Ok(Self {
            pool,
            brokers: brokers.to_owned(),
            producer: producer(brokers)?,
            schema: schema.to_owned(),
            batch_size: 200,
            poll_interval: Duration::from_secs(1),
        })
    }

    /// Publishes until `shutdown` fires: immediately when notified, otherwise every second.
    pub async fn run(mut self, shutdown: Shutdown) {
        let mut listener = match PgListener::connect_with(&self.pool).await {
            Ok(mut listener) => match listener.listen(&format!("outbox_{}", self.schema)).await {
                Ok(()) => Some(listener),
                Err(e) => {
                    tracing::warn!(error = %e, "outbox LISTEN failed; polling only");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "outbox listener connection failed; polling only");
                None
            }
        };
        let mut failures = 0u32;
        let mut last_cleanup = std::time::Instant::now();
        while !shutdown.is_triggered() {
            // A batch waits for the broker's acknowledgements (up to `message.timeout.ms` when
            // it is unreachable); stopping abandons it: its transaction rolls back and the rows
            // are sent by the next relay (at least once, as always).
            let relayed = tokio::select! {
                relayed = self.relay_once() => relayed,
                _ = shutdown.wait() => break,
            };
            match relayed {
                Ok(sent) => {
                    failures = 0;
                    if sent as i64 == self.batch_size {
                        continue;
                    }
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = format!("{e:#}"), failures, "outbox relay failed");
                    if e.is::<Undelivered>() {
                        self.renew_producer();
                    }
                    let backoff = Duration::from_millis(200 * 2u64.pow(failures.min(6)));
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.wait() => {}
                    }
                    continue;
                }
            }
            if last_cleanup.elapsed() > Duration::from_secs(600) {
                last_cleanup = std::time::Instant::now();
                if let Err(e) = self.cleanup(chrono::Duration::days(7)).await {
                    tracing::warn!(error = %e, "outbox cleanup failed");
                }
            }
            match listener.as_mut() {
                Some(l) => tokio::select! {
                    n = l.recv() => {
                        if n.is_err() {
                            tokio::time::sleep(self.poll_interval).await;
                        } else {
                            // Every committed event notifies; under load that is hundreds of
                            // wake-ups a second. Let a burst gather, then drop the buffered
                            // notifications: the next batch picks up all their rows at once.
                            tokio::time::sleep(COALESCE).await;
                            while l.next_buffered().is_some() {}
                        }
                    }
                    _ = tokio::time::sleep(self.poll_interval) => {}
                    _ = shutdown.wait() => {}
                },
                None => tokio::select! {
                    _ = tokio::time::sleep(self.poll_interval) => {}
                    _ = shutdown.wait() => {}
                },
            }
        }
    }

    /// Replaces the producer after a batch the broker did not acknowledge. An idempotent
    /// producer whose messages timed out in flight must drain those requests and bump its
    /// epoch before it sends again; after a broker froze past `message.timeout.ms`, the old
    /// producer went on timing out every batch for more than a minute after the broker
    /// answered again (seen once in four test runs). A new one starts with a fresh producer id
    /// and no requests in flight; the batch is sent again either way (at least once, which
    /// consumers deduplicate).
    fn renew_producer(&mut self) {
        match producer(&self.brokers) {
            Ok(fresh) => {
                let old = std::mem::replace(&mut self.producer, fresh);
                // Dropping a producer purges and briefly flushes it: not on a runtime thread.
                tokio::task::spawn_blocking(move || drop(old));
                metrics::counter!("outbox_producer_renewals_total", "schema" => self.schema.clone())
                    .increment(1);
            }
            Err(e) => tracing::warn!(error = %e, "a new Kafka producer could not be created"),
        }
    }

    /// One batch: claim, publish, mark sent, commit. Returns how many rows were sent.
    pub async fn relay_once(&self) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        let rows = self.claim(&mut tx).await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        self.publish(&rows).await?;
        mark_sent(&mut tx, &rows).await?;
        tx.commit().await?;
        if let Some(oldest) = rows.first() {
            // Lag of the oldest row of this batch: how far behind the relay is.
            let lag = (chrono::Utc::now() - oldest.created_at)
                .num_milliseconds()
                .max(0);
            metrics::gauge!("outbox_lag_seconds", "schema" => self.schema.clone())
                .set(lag as f64 / 1000.0);
        }
        metrics::counter!("outbox_relayed_batches_total", "schema" => self.schema.clone())
            .increment(1);
        Ok(rows.len())
    }

    /// Takes the per-schema relay lock and reads the next unsent rows in commit order. Returns
    /// nothing if another relay holds the lock.
    pub async fn claim(
        &self,
        tx: &mut Transaction<'_, Postgres>,
    ) -> anyhow::Result<Vec<OutboxRow>> {
        let locked: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_xact_lock(hashtext('outbox_' || current_schema()))",
        )
        .fetch_one(&mut **tx)
        .await?;
        if !locked {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_as::<_, OutboxRow>(
            "SELECT id, topic, partition_key, event_type, payload, headers, created_at
             FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(self.batch_size)
        .fetch_all(&mut **tx)
        .await?)
    }

    /// Sends rows to Kafka and waits until the broker has acknowledged all of them.
    pub async fn publish(&self, rows: &[OutboxRow]) -> anyhow::Result<()> {
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in rows {
            let payload = serde_json::to_vec(&row.payload)?;
            let trace: HashMap<String, String> =
                serde_json::from_value(row.headers.clone()).unwrap_or_default();
            let mut headers = OwnedHeaders::new()
                .insert(Header {
                    key: "event-type",
                    value: Some(row.event_type.as_bytes()),
                })
                .insert(Header {
                    key: "content-type",
                    value: Some("application/json".as_bytes()),
                });
            for (key, value) in &trace {
                headers = headers.insert(Header {
                    key: key.as_str(),
                    value: Some(value.as_bytes()),
                });
            }
            let topic = crate::topics::physical(&row.topic);
            let record = FutureRecord::to(&topic)
                .key(&row.partition_key)
                .payload(&payload)
                .headers(headers);
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push((row, delivery)),
                Err((e, _)) => anyhow::bail!("enqueueing event {} for Kafka: {e}", row.id),
            }
        }
        for (row, delivery) in deliveries {
            let failure = match delivery.await {
                Ok(Ok(_)) => {
                    metrics::counter!("outbox_published_total", "topic" => row.topic.clone(), "type" => row.event_type.clone())
                        .increment(1);
                    continue;
                }
                Ok(Err((e, _))) => e.to_string(),
                Err(_) => "delivery cancelled".to_owned(),
            };
            return Err(anyhow::Error::new(Undelivered(failure)))
                .context(format!("publishing outbox row {}", row.id));
        }
        Ok(())
    }

    /// Deletes rows sent longer than `older_than` ago.
    pub async fn cleanup(&self, older_than: chrono::Duration) -> anyhow::Result<u64> {
        let result = sqlx::query("DELETE FROM outbox WHERE sent_at < now() - $1::interval")
            .bind(format!("{} seconds", older_than.num_seconds()))
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }
}

/// Marks rows sent (inside the claiming transaction).
pub async fn mark_sent(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[OutboxRow],
) -> anyhow::Result<()> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    sqlx::query("UPDATE outbox SET sent_at = now() WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
