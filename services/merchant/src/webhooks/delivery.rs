//! The delivery worker: sends due deliveries to their endpoints.
//!
//! Every replica runs one. A delivery is claimed in a short transaction (`FOR UPDATE SKIP
//! LOCKED`) that counts the attempt and pushes `next_attempt_at` past the send's deadline (a
//! lease): another replica skips it, and if this one dies mid-send the delivery is due again
//! when the lease ends. A delivery is only due when no earlier delivery of the same endpoint
//! and ordering key (a payment, a settlement account) is still pending, so one endpoint sees
//! a payment's events in order even while an earlier one is being retried.
//!
//! A 2xx answer completes the delivery; anything else (another status, a timeout, a refused
//! connection, an address that is not public) is recorded and retried after the next delay of
//! the schedule — a failed first attempt too — until the schedule is used up (`failed`).
//! Failures in a row disable the endpoint after `disable_after_failures` attempts over at
//! least `disable_after`; `merchant.webhook_endpoint_disabled` then tells the owner.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use events::payloads::merchant as merchant_ev;
use events::{Envelope, topics};
use sqlx::PgPool;
use uuid::Uuid;

use super::secrets::SecretBox;
use super::{WebhookConfig, signing};
use crate::service::SOURCE;

/// Deliveries claimed per round.
const BATCH: i64 = 16;
/// Events older than this are purged (with their deliveries and attempts).
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// A claimed delivery with what its request needs.
#[derive(Debug, sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    attempts: i32,
    endpoint_id: Uuid,
    url: String,
    event_id: Uuid,
    event_type: String,
    api_version: String,
    data: serde_json::Value,
    created_at: DateTime<Utc>,
}

/// What one attempt came to.
#[derive(Debug)]
struct Attempt {
    status_code: Option<i32>,
    latency_ms: i32,
    error: Option<String>,
}

impl Attempt {
    fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

/// The worker.
#[derive(Clone)]
pub struct Deliverer {
    pool: PgPool,
    client: reqwest::Client,
    secrets: SecretBox,
    config: Arc<WebhookConfig>,
}

impl Deliverer {
    pub fn new(pool: PgPool, secrets: SecretBox, config: WebhookConfig) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            // a receiver's redirect could point anywhere, the platform's own network included
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent("payments-webhooks/1")
            .dns_resolver(Arc::new(PublicOnly {
                allow: Arc::new(config.allow_hosts.clone()),
            }))
            .build()?;
        Ok(Self {
            pool,
            client,
            secrets,
            config: Arc::new(config),
        })
    }

    /// Sends due deliveries until `shutdown` fires.
    pub async fn run(self, shutdown: platform::shutdown::Shutdown) {
        let mut purged_at: Option<Instant> = None;
        loop {
            let sent = match self.deliver_due().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "webhook deliveries could not be claimed"
                    );
                    0
                }
            };
            if purged_at.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                if let Err(e) = self.purge().await {
                    tracing::warn!(error = %e, "old webhook events could not be purged");
                }
                purged_at = Some(Instant::now());
            }
            if shutdown.is_triggered() {
                return;
            }
            if sent == 0 {
                tokio::select! {
                    () = shutdown.wait() => return,
                    () = tokio::time::sleep(self.config.poll_interval) => {}
                }
            }
        }
    }

    /// Claims and sends one batch of due deliveries, all at once; how many it sent.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        let lease = self.config.timeout + Duration::from_secs(30);
        let claimed: Vec<Claimed> = sqlx::query_as(
            "WITH due AS (
                 SELECT d.id FROM webhook_deliveries d
                 JOIN webhook_endpoints w ON w.id = d.endpoint_id
                 WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND w.enabled
                   AND NOT EXISTS (
                       SELECT 1 FROM webhook_deliveries e
                       WHERE e.endpoint_id = d.endpoint_id AND e.ordering_key = d.ordering_key
                         AND e.status = 'pending' AND e.seq < d.seq)
                 ORDER BY d.next_attempt_at LIMIT $1
                 FOR UPDATE OF d SKIP LOCKED),
             claimed AS (
                 UPDATE webhook_deliveries d
                 SET attempts = d.attempts + 1,
                     next_attempt_at = now() + make_interval(secs => $2)
                 FROM due WHERE d.id = due.id
                 RETURNING d.id, d.attempts, d.endpoint_id, d.event_id)
             SELECT c.id, c.attempts, c.endpoint_id, w.url, c.event_id,
                    e.type AS event_type, e.api_version, e.data, e.created_at
             FROM claimed c
             JOIN webhook_endpoints w ON w.id = c.endpoint_id
             JOIN webhook_events e ON e.id = c.event_id",
        )
        .bind(BATCH)
        .bind(lease.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        let count = claimed.len();
        futures::future::join_all(claimed.into_iter().map(|c| async move {
            let id = c.id;
            if let Err(e) = self.deliver(c).await {
                tracing::warn!(delivery_id = %id, error = format!("{e:#}"),
                    "webhook attempt not recorded; it is due again after its lease");
            }
        }))
        .await;
        Ok(count)
    }

    /// Sends one claimed delivery and records the attempt.
    async fn deliver(&self, delivery: Claimed) -> anyhow::Result<()> {
        let body = serde_json::to_vec(&serde_json::json!({
            "id": delivery.event_id,
            "object": "event",
            "type": delivery.event_type,
            "api_version": delivery.api_version,
            "created": delivery.created_at,
            "data": delivery.data,
        }))?;
        let secrets = self.live_secrets(delivery.endpoint_id).await?;
        let started = Instant::now();
        let outcome = self.send(&delivery, &body, &secrets).await;
        let latency_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let attempt = match outcome {
            Ok(status) if (200..300).contains(&status) => Attempt {
                status_code: Some(i32::from(status)),
                latency_ms,
                error: None,
            },
            Ok(status) => Attempt {
                status_code: Some(i32::from(status)),
                latency_ms,
                error: Some(format!("the endpoint answered HTTP {status}")),
            },
            Err(error) => Attempt {
                status_code: None,
                latency_ms,
                error: Some(error),
            },
        };
        metrics::counter!("webhook_attempts_total",
            "outcome" => if attempt.succeeded() { "succeeded" } else { "failed" })
        .increment(1);
        metrics::histogram!("webhook_attempt_seconds").record(started.elapsed().as_secs_f64());
        self.record(&delivery, &attempt).await
    }

    /// The endpoint's secrets that still sign, newest first.
    async fn live_secrets(&self, endpoint_id: Uuid) -> anyhow::Result<Vec<String>> {
        let rows: Vec<(Uuid, Vec<u8>)> = sqlx::query_as(
            "SELECT id, sealed FROM webhook_secrets
             WHERE endpoint_id = $1 AND (expires_at IS NULL OR expires_at > now())
             ORDER BY created_at DESC",
        )
        .bind(endpoint_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, sealed)| self.secrets.open(id, &sealed))
            .collect()
    }

    /// The HTTP status the endpoint answered, or why there was none.
    async fn send(
        &self,
        delivery: &Claimed,
        body: &[u8],
        secrets: &[String],
    ) -> Result<u16, String> {
        super::endpoints::check_url(&delivery.url, &self.config.allow_hosts)
            .map_err(|v| format!("the URL is not allowed: {}", v.description))?;
        let signature = signing::header_value(Utc::now().timestamp(), body, secrets);
        let response = self
            .client
            .post(&delivery.url)
            .header("content-type", "application/json")
            .header(signing::HEADER, signature)
            .header("Payments-Event-Id", delivery.event_id.to_string())
            .header("Payments-Event-Type", &delivery.event_type)
            .header("Payments-Delivery-Id", delivery.id.to_string())
            .header("Payments-Delivery-Attempt", delivery.attempts.to_string())
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| describe(&e))?;
        Ok(response.status().as_u16())
    }

    /// Records `attempt`: completes the delivery or schedules its next attempt, and keeps the
    /// endpoint's run of failures (disabling it after a long one).
    async fn record(&self, delivery: &Claimed, attempt: &Attempt) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, status_code, latency_ms, error, succeeded)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(delivery.id)
        .bind(attempt.status_code)
        .bind(attempt.latency_ms)
        .bind(&attempt.error)
        .bind(attempt.succeeded())
        .execute(&mut *tx)
        .await?;
        if attempt.succeeded() {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'succeeded', completed_at = now()
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(delivery.id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE webhook_endpoints SET consecutive_failures = 0, failing_since = NULL
                 WHERE id = $1 AND consecutive_failures > 0",
            )
            .bind(delivery.endpoint_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(());
        }
        // The n-th attempt failed: the next waits schedule[n-1]; past the schedule it is over.
        let next = usize::try_from(delivery.attempts - 1)
            .ok()
            .and_then(|i| self.config.retry_schedule.get(i));
        match next {
            Some(delay) => {
                sqlx::query(
                    "UPDATE webhook_deliveries
                     SET next_attempt_at = now() + make_interval(secs => $2)
                     WHERE id = $1 AND status = 'pending'",
                )
                .bind(delivery.id)
                .bind(delay.as_secs_f64())
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = 'failed', completed_at = now()
                     WHERE id = $1 AND status = 'pending'",
                )
                .bind(delivery.id)
                .execute(&mut *tx)
                .await?;
                metrics::counter!("webhook_deliveries_failed_total").increment(1);
                tracing::warn!(delivery_id = %delivery.id, endpoint_id = %delivery.endpoint_id,
                    attempts = delivery.attempts, "webhook delivery failed for good");
            }
        }
        // The run of failures, then (a second statement: one statement cannot update a row
        // twice) the endpoint disabled when the run is long enough.
        let (failures, failing_for): (i32, f64) = sqlx::query_as(
            "UPDATE webhook_endpoints
             SET consecutive_failures = consecutive_failures + 1,
                 failing_since = coalesce(failing_since, now())
             WHERE id = $1
             RETURNING consecutive_failures,
                 extract(epoch FROM now() - failing_since)::float8",
        )
        .bind(delivery.endpoint_id)
        .fetch_one(&mut *tx)
        .await?;
        let long_run = u32::try_from(failures).unwrap_or(0) >= self.config.disable_after_failures
            && failing_for >= self.config.disable_after.as_secs_f64();
        let disabled: Option<(Uuid, Uuid, String)> = if long_run {
            sqlx::query_as(
                "UPDATE webhook_endpoints
                 SET enabled = false, updated_at = now(),
                     disabled_reason = format('disabled after %s failed attempts in a row since %s',
                         consecutive_failures, to_char(failing_since AT TIME ZONE 'UTC',
                         'YYYY-MM-DD HH24:MI \"UTC\"'))
                 WHERE id = $1 AND enabled
                 RETURNING id, merchant_id, url",
            )
            .bind(delivery.endpoint_id)
            .fetch_optional(&mut *tx)
            .await?
        } else {
            None
        };
        if let Some((endpoint_id, merchant_id, url)) = disabled {
            let owner: (Uuid, String) =
                sqlx::query_as("SELECT user_id, name FROM merchants WHERE id = $1")
                    .bind(merchant_id)
                    .fetch_one(&mut *tx)
                    .await?;
            let data = merchant_ev::WebhookEndpointDisabled {
                merchant_id,
                user_id: owner.0,
                merchant_name: owner.1,
                endpoint_id,
                url,
                failures,
                last_error: attempt.error.clone().unwrap_or_default(),
            };
            let event = Envelope::new(
                SOURCE,
                merchant_ev::WEBHOOK_ENDPOINT_DISABLED,
                merchant_id,
                &data,
            )?;
            events::outbox::enqueue(&mut tx, topics::MERCHANT_EVENTS, &event).await?;
            metrics::counter!("webhook_endpoints_disabled_total").increment(1);
            tracing::warn!(%endpoint_id, %merchant_id, failures, "webhook endpoint disabled");
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes events past the retention (their deliveries and attempts go with them).
    async fn purge(&self) -> anyhow::Result<()> {
        let purged = sqlx::query(
            "DELETE FROM webhook_events WHERE created_at < now() - make_interval(days => $1)",
        )
        .bind(i32::try_from(super::intake::RETENTION_DAYS).unwrap_or(30))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if purged > 0 {
            tracing::info!(purged, "webhook events past their retention purged");
        }
        Ok(())
    }
}

/// A reqwest error as the merchant should read it (no internal detail).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "the endpoint did not answer in time".to_owned()
    } else if error.is_connect() {
        let chain = platform::error::DisplayChain(error).to_string();
        if chain.contains("no public address") {
            "the endpoint's host resolves to no public address".to_owned()
        } else {
            "the endpoint could not be reached".to_owned()
        }
    } else {
        "the request to the endpoint failed".to_owned()
    }
}

/// Whether `ip` is on the public internet: not loopback, private, link-local (cloud metadata),
/// shared, multicast, unspecified or reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// Resolves names to public addresses only (unless the host is allowed): a webhook URL cannot
/// reach the platform's own network, whatever its DNS says at delivery time.
struct PublicOnly {
    allow: Arc<Vec<String>>,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let allowed = self.allow.iter().any(|h| h.eq_ignore_ascii_case(&host));
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allowed || is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
