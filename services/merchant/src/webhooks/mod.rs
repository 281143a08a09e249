//! Webhooks: how a merchant learns what happened without polling.
//!
//! * [`endpoints`]: a merchant's HTTPS endpoints (each with the event types it wants and a
//!   signing secret shown once, rotatable with an overlap window), and the events API (list,
//!   read, delivery attempts, re-send).
//! * [`intake`]: a Kafka consumer (group `merchant-service.webhooks`) turning every
//!   merchant-relevant platform event into an event object (id = the platform event's id)
//!   and one delivery per matching endpoint, in the consumer's transaction: a redelivered
//!   Kafka message makes nothing twice.
//! * [`delivery`]: the worker sending due deliveries (`FOR UPDATE SKIP LOCKED` and a lease, so
//!   replicas never send one twice), in order per endpoint and payment, signed, with
//!   exponential retries over about three days; every attempt is recorded; a long run of
//!   failures disables the endpoint and tells the owner.
//! * [`signing`]: `Payments-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>`, one
//!   `v1` per live secret.

pub mod delivery;
pub mod endpoints;
pub mod grpc;
pub mod intake;
pub mod secrets;
pub mod signing;

use std::time::Duration;

use platform::Secret;

/// The version of the event objects' shape (`api_version` in every event).
pub const API_VERSION: &str = "2026-12-01";

/// The event types a merchant can subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "payment.succeeded",
    "payment.failed",
    "payment.authorized",
    "payment.captured",
    "payment.voided",
    "refund.succeeded",
    "refund.failed",
    "settlement.balance_changed",
    "merchant.status_changed",
    "merchant.api_key_created",
    "merchant.api_key_revoked",
];

/// Settings of the webhooks.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Consumer group of the intake (`WEBHOOK_EVENTS_GROUP`).
    pub group: String,
    /// Master secret sealing the endpoints' signing secrets (`WEBHOOK_SECRETS_KEY`, at least
    /// 32 characters).
    pub secrets_key: Secret<String>,
    /// Delays before the 2nd, 3rd, … attempt (`WEBHOOK_RETRY_SCHEDULE`, seconds, comma
    /// separated); a delivery fails for good after the last.
    pub retry_schedule: Vec<Duration>,
    /// An endpoint is disabled after this many failed attempts in a row
    /// (`WEBHOOK_DISABLE_AFTER_FAILURES`) …
    pub disable_after_failures: u32,
    /// … failing for at least this long (`WEBHOOK_DISABLE_AFTER_SECONDS`).
    pub disable_after: Duration,
    /// Hosts exempt from the HTTPS and public-address rules (`WEBHOOK_ALLOW_HOSTS`), for a
    /// receiver on a developer's machine or in tests. Empty in production.
    pub allow_hosts: Vec<String>,
    /// Time a receiver has to answer (`WEBHOOK_TIMEOUT_SECONDS`).
    pub timeout: Duration,
    /// How often the worker looks for due deliveries (`WEBHOOK_POLL_MILLIS`).
    pub poll_interval: Duration,
}

/// Default retry delays: 1 min, 5 min, 30 min, 1 h, 2 h, 4 h, 8 h, then 12 h four times:
/// about 2.6 days from the first attempt to the last of twelve.
pub const DEFAULT_RETRY_SCHEDULE: &str =
    "60,300,1800,3600,7200,14400,28800,43200,43200,43200,43200";

impl WebhookConfig {
    /// Reads the settings from the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        let secrets_key = platform::config::required("WEBHOOK_SECRETS_KEY")?;
        Ok(Self {
            group: platform::config::optional(
                "WEBHOOK_EVENTS_GROUP",
                events::topics::groups::MERCHANT_WEBHOOKS,
            ),
            secrets_key: Secret::new(secrets_key),
            retry_schedule: parse_schedule(&platform::config::optional(
                "WEBHOOK_RETRY_SCHEDULE",
                DEFAULT_RETRY_SCHEDULE,
            ))?,
            disable_after_failures: platform::config::parsed("WEBHOOK_DISABLE_AFTER_FAILURES", 20)?,
            disable_after: platform::config::seconds("WEBHOOK_DISABLE_AFTER_SECONDS", 3 * 86_400)?,
            allow_hosts: platform::config::list("WEBHOOK_ALLOW_HOSTS", ""),
            timeout: platform::config::seconds("WEBHOOK_TIMEOUT_SECONDS", 10)?,
            poll_interval: Duration::from_millis(platform::config::parsed(
                "WEBHOOK_POLL_MILLIS",
                500,
            )?),
        })
    }
}

/// `"60,300"` → [60 s, 300 s].
pub fn parse_schedule(raw: &str) -> anyhow::Result<Vec<Duration>> {
    let schedule = platform::config::split_list(raw)
        .iter()
        .map(|s| {
            s.parse::<f64>()
                .ok()
                .filter(|secs| secs.is_finite() && *secs >= 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| anyhow::anyhow!("WEBHOOK_RETRY_SCHEDULE: {s:?} is not seconds"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(
        !schedule.is_empty(),
        "WEBHOOK_RETRY_SCHEDULE needs at least one delay (a failed first attempt is always retried)"
    );
    Ok(schedule)
}
