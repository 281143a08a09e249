//! A merchant's webhook endpoints and its events API. The merchant's owner manages them; an
//! admin with `merchants.write` (changes) or `merchants.read` (reads) may too.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use platform::FieldViolation;
use platform::auth::Principal;
use sqlx::PgConnection;
use uuid::Uuid;

use super::secrets::SecretBox;
use super::{EVENT_TYPES, intake::RETENTION_DAYS};
use crate::error::MerchantError;
use crate::service::{MERCHANTS_READ, MERCHANTS_WRITE, Merchants};

/// Endpoints a merchant may have.
const MAX_ENDPOINTS: i64 = 16;

/// An endpoint as stored (never its secret).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EndpointRow {
    pub id: Uuid,
    pub merchant_id: Uuid,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub consecutive_failures: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

const ENDPOINT_COLUMNS: &str = "w.id, w.merchant_id, w.url, w.description, w.event_types,
    w.enabled, w.disabled_reason, w.consecutive_failures, w.created_at, w.updated_at,
    (SELECT max(s.expires_at) FROM webhook_secrets s
     WHERE s.endpoint_id = w.id AND s.expires_at > now()) AS previous_secret_expires_at";

/// A webhook event as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct EventRow {
    pub id: Uuid,
    pub merchant_id: Uuid,
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub api_version: String,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// A delivery with its attempts.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub event_id: Uuid,
    pub endpoint_id: Uuid,
    pub status: String,
    pub manual: bool,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    #[sqlx(skip)]
    pub attempt_log: Vec<AttemptRow>,
}

/// One attempt of a delivery.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AttemptRow {
    pub delivery_id: Uuid,
    pub attempted_at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
    pub succeeded: bool,
}

/// What an update changes (`None`: unchanged).
#[derive(Debug, Default)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

/// Filters of the events list.
#[derive(Debug, Default)]
pub struct EventFilter {
    pub event_type: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub cursor: Option<String>,
    pub limit: i64,
}

/// Whether `url` may receive webhooks: HTTPS, no credentials, a public host (not an address
/// in a private, loopback or link-local range, not `localhost` or a single-label name). Hosts
/// in `allow_hosts` may use plain HTTP and any address (a receiver on a developer machine).
pub fn check_url(url: &str, allow_hosts: &[String]) -> Result<(), FieldViolation> {
    let bad = |why: &str| FieldViolation::new("url", why);
    if url.len() > 2048 {
        return Err(bad("must be at most 2048 characters"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| bad("must be an absolute https URL"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    let host = match parsed.host() {
        Some(host) => host,
        None => return Err(bad("must name a host")),
    };
    let host_text = host
        .to_string()
        .trim_matches(['[', ']'])
        .to_ascii_lowercase();
    let allowed = allow_hosts
        .iter()
        .any(|h| h.trim_matches(['[', ']']).eq_ignore_ascii_case(&host_text));
    match parsed.scheme() {
        "https" => {}
        "http" if allowed => {}
        _ => return Err(bad("must be an https URL")),
    }
    if allowed {
        return Ok(());
    }
    match host {
        url::Host::Ipv4(ip) if !super::delivery::is_public(ip.into()) => Err(bad(
            "must not point to a private, loopback or link-local address",
        )),
        url::Host::Ipv6(ip) if !super::delivery::is_public(ip.into()) => Err(bad(
            "must not point to a private, loopback or link-local address",
        )),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let internal = !name.contains('.')
                || [".localhost", ".local", ".internal", ".cluster.local"]
                    .iter()
                    .any(|suffix| name.ends_with(suffix));
            if internal {
                Err(bad("must be a public host name"))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// The event types as given, checked and without duplicates.
fn check_event_types(types: &[String]) -> Result<Vec<String>, FieldViolation> {
    if types.is_empty() {
        return Err(FieldViolation::new(
            "event_types",
            "must name at least one event type (or \"*\" for all)",
        ));
    }
    let mut checked: Vec<String> = Vec::new();
    for t in types {
        if t != "*" && !EVENT_TYPES.contains(&t.as_str()) {
            return Err(FieldViolation::new(
                "event_types",
                format!(
                    "unknown event type {t:?}; known: {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        if !checked.contains(t) {
            checked.push(t.clone());
        }
    }
    Ok(checked)
}

fn check_description(description: &str) -> Result<(), FieldViolation> {
    if description.chars().count() > 500 {
        return Err(FieldViolation::new(
            "description",
            "must be at most 500 characters",
        ));
    }
    Ok(())
}

/// `created_at` and id of the last event of a page, as the next page's cursor.
fn cursor_of(event: &EventRow) -> String {
    format!("{}_{}", event.created_at.timestamp_micros(), event.id)
}

fn parse_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), FieldViolation> {
    let bad = || FieldViolation::new("cursor", "is not a cursor this API returned");
    let (micros, id) = cursor.split_once('_').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}

/// The webhooks' use cases.
#[derive(Clone)]
pub struct Webhooks {
    merchants: Merchants,
    secrets: SecretBox,
    allow_hosts: Arc<Vec<String>>,
}

impl Webhooks {
    pub fn new(merchants: Merchants, secrets: SecretBox, allow_hosts: Vec<String>) -> Self {
        Self {
            merchants,
            secrets,
            allow_hosts: Arc::new(allow_hosts),
        }
    }

    /// The merchant, if `caller` may see (`merchants.read`) or change (`merchants.write`) it.
    async fn merchant(
        &self,
        conn: &mut PgConnection,
        caller: &Principal,
        merchant_id: Uuid,
        permission: &str,
    ) -> Result<(), MerchantError> {
        self.merchants
            .owned_for_change(conn, caller, merchant_id, permission)
            .await
            .map(|_| ())
    }

    async fn endpoint(
        conn: &mut PgConnection,
        merchant_id: Uuid,
        endpoint_id: Uuid,
    ) -> Result<EndpointRow, MerchantError> {
        sqlx::query_as(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints w
             WHERE w.id = $1 AND w.merchant_id = $2"
        ))
        .bind(endpoint_id)
        .bind(merchant_id)
        .fetch_optional(conn)
        .await?
        .ok_or(MerchantError::EndpointNotFound)
    }

    async fn add_secret(
        &self,
        conn: &mut PgConnection,
        endpoint_id: Uuid,
    ) -> Result<String, MerchantError> {
        let id = Uuid::now_v7();
        let (secret, sealed) = self.secrets.generate(id).map_err(MerchantError::Internal)?;
        sqlx::query("INSERT INTO webhook_secrets (id, endpoint_id, sealed) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(endpoint_id)
            .bind(sealed)
            .execute(conn)
            .await?;
        Ok(secret)
    }

    /// Registers an endpoint; its signing secret is returned once.
    pub async fn create(
        &self,
        caller: &Principal,
        merchant_id: Uuid,
        url: &str,
        event_types: &[String],
        description: &str,
    ) -> Result<(EndpointRow, String), MerchantError> {
        let mut violations = Vec::new();
        let url = url.trim();
        if let Err(v) = check_url(url, &self.allow_hosts) {
            violations.push(v);
        }
        let types = check_event_types(event_types)
            .map_err(|v| violations.push(v))
            .ok();
        if let Err(v) = check_description(description) {
            violations.push(v);
        }
        if !violations.is_empty() {
            return Err(MerchantError::Invalid(violations));
        }
        let mut tx = self.merchants.pool.begin().await?;
        self.merchant(&mut tx, caller, merchant_id, MERCHANTS_WRITE)
            .await?;
        // Counted under the merchant's row lock: two concurrent creates cannot pass the limit.
        sqlx::query("SELECT 1 FROM merchants WHERE id = $1 FOR UPDATE")
            .bind(merchant_id)
            .execute(&mut *tx)
            .await?;
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM webhook_endpoints WHERE merchant_id = $1")
                .bind(merchant_id)
                .fetch_one(&mut *tx)
                .await?;
        if count >= MAX_ENDPOINTS {
            return Err(MerchantError::TooManyEndpoints(MAX_ENDPOINTS));
        }
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, merchant_id, url, description, event_types)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(merchant_id)
        .bind(url)
        .bind(description)
        .bind(types.unwrap_or_default())
        .execute(&mut *tx)
        .await?;
        let secret = self.add_secret(&mut tx, id).await?;
        let endpoint = Self::endpoint(&mut tx, merchant_id, id).await?;
        tx.commit().await?;
        tracing::info!(%merchant_id, endpoint_id = %id, "webhook endpoint registered");
        Ok((endpoint, secret))
    }

    pub async fn list(
        &self,
        caller: &Principal,
        merchant_id: Uuid,
    ) -> Result<Vec<EndpointRow>, MerchantError> {
        let mut conn = self.merchants.pool.acquire().await?;
        self.merchant(&mut conn, caller, merchant_id, MERCHANTS_READ)
            .await?;
        Ok(sqlx::query_as(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints w
             WHERE w.merchant_id = $1 ORDER BY w.created_at"
        ))
        .bind(merchant_id)
        .fetch_all(&mut *conn)
        .await?)
    }

    pub async fn get(
        &self,
        caller: &Principal,
        merchant_id: Uuid,
        endpoint_id: Uuid,
    ) -> Result<EndpointRow, MerchantError> {
        let mut conn = self.merchants.pool.acquire().await?;
        self.merchant(&mut conn, caller, merchant_id, MERCHANTS_READ)
            .await?;
        Self::endpoint(&mut conn, merchant_id, endpoint_id).await
    }

    /// Changes an endpoint. Enabling it again clears its run of failures.
    pub async fn update(
        &self,
        caller: &Principal,
        merchant_id: Uuid,
        endpoint_id: Uuid,
        change: EndpointChange,
    ) -> Result<EndpointRow, MerchantError> {
        let mut violations = Vec::new();
        if let Some(url) = &change.url
            && let Err(v) = check_url(url.trim(), &self.allow_hosts)
        {
            violations.push(v);
        }
        let types = match &change.event_types {
            Some(types) => check_event_types(types)
                .map_err(|v| violations.push(v))
                .ok(),
            None => None,
        };
        if let Some(description) = &change.description
            && let Err(v) = check_description(description)
        {
            violations.push(v);
        }
        if !violations.is_empty() {
            return Err(MerchantError::Invalid(violations));
        }
        let mut tx = self.merchants.pool.begin().await?;
        self.merchant(&mut tx, caller, merchant_id, MERCHANTS_WRITE)
            .await?;
        let updated = sqlx::query(
            "UPDATE webhook_endpoints SET
                 url = coalesce($3, url),
                 event_types = coalesce($4, event_types),
                 description = coalesce($5, description),
                 enabled = coalesce($6, enabled),
                 disabled_reason = CASE
                     WHEN $6 IS NULL THEN disabled_reason
                     WHEN $6 THEN NULL
                     ELSE coalesce(disabled_reason, 'disabled by the merchant') END,
                 consecutive_failures = CASE WHEN $6 THEN 0 ELSE consecutive_failures END,
                 failing_since = CASE WHEN $6 THEN NULL ELSE failing_since END,
                 updated_at = now()
             WHERE id = $1 AND merchant_id = $2",
        )
        .bind(endpoint_id)
        .bind(merchant_id)
        .bind(change.url.as_deref().map(str::trim))
        .bind(types)
        .bind(change.description)
        .bind(change.enabled)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(MerchantError::EndpointNotFound);
        }
        let endpoint = Self::endpoint(&mut tx, merchant_id, endpoint_id).await?;
        tx.commit().await?;
        Ok(endpoint)
    }

    /// A new signing secret; the current ones keep signing for `overlap` seconds.
    pub async fn rotate(
        &self,
        caller: &Principal,
        merchant_id: Uuid,
        endpoint_id: Uuid,
        overlap: Option<u32>,
    ) -> Result<(EndpointRow, String), MerchantError> {
        let overlap = crate::service::overlap_seconds(overlap)?;
        let mut tx = self.merchants.pool.begin().await?;
        self.merchant(&mut tx, caller, merchant_id, MERCHANTS_WRITE)
            .await?;
        sqlx::query(
            "SELECT 1 FROM webhook_endpoints WHERE id = $1 AND merchant_id = $2 FOR UPDATE",
        )
        .bind(endpoint_id)
        .bind(merchant_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(MerchantError::EndpointNotFound)?;
        sqlx::query(
            "UPDATE webhook_secrets
             SET expires_at = least(coalesce(expires_at, 'infinity'),
                                    now() + make_interval(secs => $2))
             WHERE endpoint_id = $1 AND (expires_at IS NULL OR expires_at > now())",
        )
        .bind(endpoint_id)
        .bind(f64::from(overlap))
        .execute(&mut *tx)
        .await?;
        let secret = self.add_secret(&mut tx, endpoint_id).await?;
        let endpoint = Self::endpoint(&mut tx, merchant_id, endpoint_id).await?;
        tx.commit().await?;
        tracing::info!(%merchant_id, %endpoint_id, overlap, "webhook secret rotated");
        Ok((endpoint, secret))
    }

    /// Deletes an endpoint with its deliveries (the events stay listed).
    pub async fn delete(
        &self,
        caller: &Principal,
        merchant_id: Uuid,
        endpoint_id: Uuid,
    ) -> Result<(), MerchantError> {
        let mut tx = self.merchants.pool.begin().await?;
        self.merchant(&mut tx, caller, merchant_id, MERCHANTS_WRITE)
            .await?;
        let deleted =
            sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1 AND merchant_id = $2")
                .bind(endpoint_id)
                .bind(merchant_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if deleted == 0 {
            return Err(MerchantError::EndpointNotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    /// The merchant's events of the last 30 days, newest first, a page at a time.
    pub async fn list_events(
        &self,
        caller: &Principal,
        merchant_id: Uuid,
        filter: EventFilter,
    ) -> Result<(Vec<EventRow>, Option<String>), MerchantError> {
        let mut violations = Vec::new();
        if !(1..=100).contains(&filter.limit) {
            violations.push(FieldViolation::new("limit", "must be 1-100"));
        }
        if let Some(t) = &filter.event_type
            && !EVENT_TYPES.contains(&t.as_str())
        {
            violations.push(FieldViolation::new(
                "type",
                format!(
                    "unknown event type {t:?}; known: {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        let after = match filter.cursor.as_deref() {
            Some(c) => parse_cursor(c).map_err(|v| violations.push(v)).ok(),
            None => None,
        };
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from > to
        {
            violations.push(FieldViolation::new(
                "created_from",
                "must not be after created_to",
            ));
        }
        if !violations.is_empty() {
            return Err(MerchantError::Invalid(violations));
        }
        let mut conn = self.merchants.pool.acquire().await?;
        self.merchant(&mut conn, caller, merchant_id, MERCHANTS_READ)
            .await?;
        let oldest = Utc::now() - chrono::Duration::days(RETENTION_DAYS);
        let from = filter.from.map_or(oldest, |f| f.max(oldest));
        let mut rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, merchant_id, type, api_version, data, created_at FROM webhook_events
             WHERE merchant_id = $1 AND created_at >= $2
               AND ($3::timestamptz IS NULL OR created_at <= $3)
               AND ($4::text IS NULL OR type = $4)
               AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6))
             ORDER BY created_at DESC, id DESC LIMIT $7",
        )
        .bind(merchant_id)
        .bind(from)
        .bind(filter.to)
        .bind(filter.event_type)
        .bind(after.map(|(at, _)| at))
        .bind(after.map(|(_, id)| id))
        .bind(filter.limit + 1)
        .fetch_all(&mut *conn)
        .await?;
        let more = rows.len() > usize::try_from(filter.limit).unwrap_or(usize::MAX);
        rows.truncate(usize::try_from(filter.limit).unwrap_or(0));
        let next = if more {
            rows.last().map(cursor_of)
        } else {
            None
        };
        Ok((rows, next))
    }

    async fn event(
        conn: &mut PgConnection,
        merchant_id: Uuid,
        event_id: Uuid,
    ) -> Result<EventRow, MerchantError> {
        sqlx::query_as(
            "SELECT id, merchant_id, type, api_version, data, created_at FROM webhook_events
             WHERE id = $1 AND merchant_id = $2",
        )
        .bind(event_id)
        .bind(merchant_id)
        .fetch_optional(conn)
        .await?
        .ok_or(MerchantError::EventNotFound)
    }

    pub async fn get_event(
        &self,
        caller: &Principal,
        merchant_id: Uuid,
        event_id: Uuid,
    ) -> Result<EventRow, MerchantError> {
        let mut conn = self.merchants.pool.acquire().await?;
        self.merchant(&mut conn, caller, merchant_id, MERCHANTS_READ)
            .await?;
        Self::event(&mut conn, merchant_id, event_id).await
    }

    /// Every delivery of an event, oldest first, each with its attempts.
    pub async fn deliveries(
        &self,
        caller: &Principal,
        merchant_id: Uuid,
        event_id: Uuid,
    ) -> Result<Vec<DeliveryRow>, MerchantError> {
        let mut conn = self.merchants.pool.acquire().await?;
        self.merchant(&mut conn, caller, merchant_id, MERCHANTS_READ)
            .await?;
        Self::event(&mut conn, merchant_id, event_id).await?;
        let mut deliveries: Vec<DeliveryRow> = sqlx::query_as(
            "SELECT id, event_id, endpoint_id, status, manual, attempts, next_attempt_at,
                 created_at, completed_at
             FROM webhook_deliveries WHERE event_id = $1 ORDER BY seq",
        )
        .bind(event_id)
        .fetch_all(&mut *conn)
        .await?;
        let ids: Vec<Uuid> = deliveries.iter().map(|d| d.id).collect();
        let attempts: Vec<AttemptRow> = sqlx::query_as(
            "SELECT delivery_id, attempted_at, status_code, latency_ms, error, succeeded
             FROM webhook_attempts WHERE delivery_id = ANY($1) ORDER BY id",
        )
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        for attempt in attempts {
            if let Some(d) = deliveries.iter_mut().find(|d| d.id == attempt.delivery_id) {
                d.attempt_log.push(attempt);
            }
        }
        Ok(deliveries)
    }

    /// Sends an event to one of the merchant's endpoints again: a new delivery, due now
    /// (after any earlier pending delivery of the same payment to that endpoint).
    pub async fn resend(
        &self,
        caller: &Principal,
        merchant_id: Uuid,
        event_id: Uuid,
        endpoint_id: Uuid,
    ) -> Result<DeliveryRow, MerchantError> {
        let mut tx = self.merchants.pool.begin().await?;
        self.merchant(&mut tx, caller, merchant_id, MERCHANTS_WRITE)
            .await?;
        let event: (String,) = sqlx::query_as(
            "SELECT ordering_key FROM webhook_events WHERE id = $1 AND merchant_id = $2",
        )
        .bind(event_id)
        .bind(merchant_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(MerchantError::EventNotFound)?;
        let endpoint = Self::endpoint(&mut tx, merchant_id, endpoint_id).await?;
        if !endpoint.enabled {
            return Err(MerchantError::EndpointDisabled);
        }
        let delivery: DeliveryRow = sqlx::query_as(
            "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, ordering_key, manual)
             VALUES ($1, $2, $3, $4, true)
             RETURNING id, event_id, endpoint_id, status, manual, attempts, next_attempt_at,
                 created_at, completed_at",
        )
        .bind(Uuid::now_v7())
        .bind(event_id)
        .bind(endpoint_id)
        .bind(event.0)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(%merchant_id, %event_id, %endpoint_id, "webhook event re-sent");
        Ok(delivery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_https_urls_receive_webhooks() {
        let none: Vec<String> = Vec::new();
        assert!(check_url("https://shop.example.com/hooks", &none).is_ok());
        for url in [
            "http://shop.example.com/hooks",
            "https://user:pw@shop.example.com/",
            "https://127.0.0.1/hooks",
            "https://10.0.0.8/hooks",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/hooks",
            "https://localhost/hooks",
            "https://saldo-service/hooks",
            "https://postgres.payments.svc.cluster.local/",
            "ftp://shop.example.com/",
            "not a url",
        ] {
            assert!(check_url(url, &none).is_err(), "{url}");
        }
        let local = vec!["127.0.0.1".to_owned()];
        assert!(check_url("http://127.0.0.1:9000/hooks", &local).is_ok());
        assert!(check_url("http://localhost:9000/hooks", &local).is_err());
    }

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let event = EventRow {
            id: Uuid::now_v7(),
            merchant_id: Uuid::now_v7(),
            event_type: "payment.succeeded".into(),
            api_version: super::super::API_VERSION.into(),
            data: serde_json::json!({}),
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
        };
        assert_eq!(
            parse_cursor(&cursor_of(&event)).unwrap(),
            (event.created_at, event.id)
        );
        assert!(parse_cursor("x_y").is_err());
    }
}
