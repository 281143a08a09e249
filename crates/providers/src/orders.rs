//! The adapter for providers with an order-based API (the sandbox's `orders` dialect,
//! `sandbox/src/orders.rs`, documents the contract): `POST /v2/orders` with HTTP Basic auth,
//! amounts as decimal strings, the order id (our top-up / withdrawal id) as the only
//! idempotency key — a second create answers `409`, after which the order's status says what
//! the provider holds; `GET /v2/orders/{order_id}/status`; notifications signed
//! `X-Orders-Signature: sha512=<HMAC-SHA512 of "timestamp\nbody">` with `X-Orders-Timestamp`;
//! a CSV settlement report.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha512;

use crate::ProviderConfig;
use crate::{
    CallbackError, CallbackEvent, ErrorClass, OperationKind, OperationRequest, Provider,
    ProviderError, ProviderOperation, ProviderStatus, SettlementLine,
};

/// The notification's timestamp header.
pub const TIMESTAMP_HEADER: &str = "x-orders-timestamp";
/// The notification's signature header.
pub const SIGNATURE_HEADER: &str = "x-orders-signature";

/// A provider with an order-based API; configured like the sandbox adapter (name, base URL,
/// API key, webhook secret, tolerance, timeout).
pub struct OrdersProvider {
    config: ProviderConfig,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct WireOrder {
    transaction_id: String,
    order_id: String,
    #[serde(rename = "type")]
    kind: OperationKind,
    transaction_status: String,
    #[serde(default)]
    status_reason: Option<String>,
    gross_amount: String,
    currency: String,
}

#[derive(Deserialize)]
struct WireNotification {
    notification_id: String,
    #[serde(flatten)]
    order: WireOrder,
}

/// `12000` → `"120.00"` (every currency the platform takes has two decimals).
pub fn gross_amount(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", (minor / 100).abs(), (minor % 100).abs())
}

/// `"120.00"` → `12000`; `None` unless it has exactly two decimals.
pub fn minor_units(gross: &str) -> Option<i64> {
    let (whole, cents) = gross.split_once('.')?;
    if cents.len() != 2 || whole.is_empty() || !cents.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(cents.parse().ok()?)
}

/// The signature header's value for `body` sent at `timestamp`: what the provider sends, and
/// what a test playing a forger computes.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b"\n");
    mac.update(body);
    format!("sha512={}", hex::encode(mac.finalize().into_bytes()))
}

/// The error table of this API: only the status code carries meaning.
pub fn classify(status: u16) -> ErrorClass {
    match status {
        429 | 503 => ErrorClass::NotTaken,
        400..=499 => ErrorClass::Final,
        _ => ErrorClass::Unknown,
    }
}

impl OrdersProvider {
    pub fn new(config: ProviderConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self { config, http })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }

    fn failed(&self, class: ErrorClass, message: impl std::fmt::Display) -> ProviderError {
        ProviderError {
            class,
            message: format!("{}: {message}", self.config.name),
        }
    }

    fn operation(&self, wire: WireOrder) -> Result<ProviderOperation, ProviderError> {
        let status = match wire.transaction_status.as_str() {
            "pending" => ProviderStatus::Pending,
            "settlement" => ProviderStatus::Succeeded,
            "deny" | "expire" | "cancel" => ProviderStatus::Failed {
                code: wire
                    .status_reason
                    .unwrap_or_else(|| wire.transaction_status.clone()),
                message: String::new(),
            },
            other => {
                return Err(self.failed(ErrorClass::Unknown, format!("unknown status {other:?}")));
            }
        };
        let amount = minor_units(&wire.gross_amount).ok_or_else(|| {
            self.failed(
                ErrorClass::Unknown,
                format!("unreadable gross_amount {:?}", wire.gross_amount),
            )
        })?;
        Ok(ProviderOperation {
            provider: self.config.name.clone(),
            provider_reference: wire.transaction_id,
            kind: wire.kind,
            reference: wire.order_id,
            amount,
            currency: wire.currency,
            status,
        })
    }

    /// Sends a request with the API key: the status and body of any answer.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), ProviderError> {
        let answer = request
            .basic_auth(&self.config.api_key, Some(""))
            .send()
            .await
            .map_err(|e| crate::transport_error(&self.config.name, &e))?;
        let status = answer.status().as_u16();
        let body = answer
            .bytes()
            .await
            .map_err(|e| self.failed(ErrorClass::Unknown, format!("reading the answer: {e}")))?;
        Ok((status, body.to_vec()))
    }

    fn order(&self, body: &[u8]) -> Result<ProviderOperation, ProviderError> {
        let wire: WireOrder = serde_json::from_slice(body)
            .map_err(|e| self.failed(ErrorClass::Unknown, format!("unreadable answer: {e}")))?;
        self.operation(wire)
    }

    fn refused(&self, status: u16, body: &[u8]) -> ProviderError {
        let message = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["status_message"].as_str().map(str::to_owned))
            .unwrap_or_default();
        self.failed(classify(status), format!("HTTP {status} {message}"))
    }
}

#[async_trait::async_trait]
impl Provider for OrdersProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn create(&self, request: &OperationRequest) -> Result<ProviderOperation, ProviderError> {
        let (status, body) = self
            .send(
                self.http
                    .post(self.url("/v2/orders"))
                    .json(&serde_json::json!({
                        "order_id": request.reference.to_string(),
                        "type": request.kind,
                        "gross_amount": gross_amount(request.amount),
                        "currency": request.currency,
                        "channel": request.method,
                        "notification_url": request.callback_url,
                    })),
            )
            .await?;
        match status {
            200..=299 => self.order(&body),
            // The order id is the idempotency key: a retry after a lost answer lands here,
            // and the order as the provider holds it is the answer.
            409 => self
                .status(request.kind, &request.reference.to_string())
                .await?
                .ok_or_else(|| self.failed(ErrorClass::Unknown, "409 for an order it cannot find")),
            _ => Err(self.refused(status, &body)),
        }
    }

    async fn status(
        &self,
        kind: OperationKind,
        reference: &str,
    ) -> Result<Option<ProviderOperation>, ProviderError> {
        let (status, body) = self
            .send(
                self.http
                    .get(self.url(&format!("/v2/orders/{reference}/status")))
                    .query(&[("type", kind.as_str())]),
            )
            .await?;
        match status {
            200..=299 => self.order(&body).map(Some),
            404 => Ok(None),
            _ => Err(self.refused(status, &body)),
        }
    }

    fn verify_callback(
        &self,
        headers: &HashMap<String, String>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<CallbackEvent, CallbackError> {
        let timestamp: i64 = headers
            .get(TIMESTAMP_HEADER)
            .and_then(|t| t.trim().parse().ok())
            .ok_or(CallbackError::BadSignature)?;
        let given = headers
            .get(SIGNATURE_HEADER)
            .and_then(|s| s.trim().strip_prefix("sha512="))
            .and_then(|s| hex::decode(s).ok())
            .ok_or(CallbackError::BadSignature)?;
        let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(self.config.webhook_secret.as_bytes())
            .map_err(|_| CallbackError::BadSignature)?;
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b"\n");
        mac.update(body);
        mac.verify_slice(&given)
            .map_err(|_| CallbackError::BadSignature)?;
        crate::fresh(timestamp, now, self.config.tolerance)?;
        let notification: WireNotification =
            serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(e.to_string()))?;
        let operation = self
            .operation(notification.order)
            .map_err(|e| CallbackError::Malformed(e.message))?;
        Ok(CallbackEvent {
            event_id: notification.notification_id,
            operation,
        })
    }

    async fn settlement(&self, date: NaiveDate) -> Result<Vec<SettlementLine>, ProviderError> {
        let (status, body) = self
            .send(
                self.http
                    .get(self.url("/v2/settlements"))
                    .query(&[("date", date.format("%Y-%m-%d").to_string())]),
            )
            .await?;
        if !(200..=299).contains(&status) {
            return Err(self.refused(status, &body));
        }
        let text = String::from_utf8_lossy(&body);
        let mut rows = text.lines();
        let header = rows.next().unwrap_or_default();
        if header.trim() != "transaction_id,order_id,type,gross_amount,currency,settlement_time" {
            return Err(self.failed(
                ErrorClass::Unknown,
                format!("unexpected settlement columns {header:?}"),
            ));
        }
        rows.filter(|row| !row.trim().is_empty())
            .map(|row| {
                let unreadable = || self.failed(ErrorClass::Unknown, format!("bad row {row:?}"));
                let fields: Vec<&str> = row.split(',').map(str::trim).collect();
                let [id, order, kind, gross, currency, at] = fields[..] else {
                    return Err(unreadable());
                };
                Ok(SettlementLine {
                    provider_reference: id.to_owned(),
                    reference: order.to_owned(),
                    kind: serde_json::from_value(serde_json::json!(kind))
                        .map_err(|_| unreadable())?,
                    amount: minor_units(gross).ok_or_else(unreadable)?,
                    currency: currency.to_owned(),
                    settled_at: DateTime::parse_from_rfc3339(at)
                        .map_err(|_| unreadable())?
                        .with_timezone(&Utc),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> OrdersProvider {
        OrdersProvider::new(ProviderConfig {
            name: "kilat".into(),
            dialect: crate::Dialect::Orders,
            base_url: "http://127.0.0.1:9".into(),
            api_key: "key".into(),
            webhook_secret: "whsec".into(),
            tolerance: Duration::from_secs(300),
            timeout: Duration::from_secs(1),
        })
        .unwrap()
    }

    fn notification(status: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "notification_id": "ntf_1", "status_code": "200", "transaction_id": "op_1",
            "order_id": "0193-ref", "type": "charge", "transaction_status": status,
            "status_reason": null, "gross_amount": "120.50", "currency": "IDR", "channel": "bca"
        }))
        .unwrap()
    }

    fn headers(timestamp: i64, signature: String) -> HashMap<String, String> {
        HashMap::from([
            (TIMESTAMP_HEADER.to_owned(), timestamp.to_string()),
            (SIGNATURE_HEADER.to_owned(), signature),
        ])
    }

    #[test]
    fn a_signed_notification_reads_as_the_operation_in_minor_units() {
        let body = notification("settlement");
        let now = Utc::now();
        let event = provider()
            .verify_callback(
                &headers(now.timestamp(), sign("whsec", now.timestamp(), &body)),
                &body,
                now,
            )
            .unwrap();
        assert_eq!(event.event_id, "ntf_1");
        assert_eq!(event.operation.amount, 12_050);
        assert_eq!(event.operation.status, ProviderStatus::Succeeded);
        assert_eq!(event.operation.reference, "0193-ref");
    }

    #[test]
    fn forged_altered_and_stale_notifications_are_refused() {
        let body = notification("settlement");
        let now = Utc::now();
        let t = now.timestamp();
        let p = provider();
        let forged = p.verify_callback(&headers(t, sign("not-the-secret", t, &body)), &body, now);
        assert!(matches!(forged, Err(CallbackError::BadSignature)));
        let altered = notification("deny");
        let moved = p.verify_callback(&headers(t, sign("whsec", t, &body)), &altered, now);
        assert!(matches!(moved, Err(CallbackError::BadSignature)));
        let old = t - 3_600;
        let stale = p.verify_callback(&headers(old, sign("whsec", old, &body)), &body, now);
        assert!(matches!(stale, Err(CallbackError::Stale)));
        let unsigned = p.verify_callback(&HashMap::new(), &body, now);
        assert!(matches!(unsigned, Err(CallbackError::BadSignature)));
    }

    #[test]
    fn amounts_are_exact_and_the_error_table_reads_status_codes() {
        for minor in [1, 99, 100, 12_345, 1_000_000_000] {
            assert_eq!(minor_units(&gross_amount(minor)), Some(minor));
        }
        for bad in ["120", "120.0", "120.000", ".50", "12,00"] {
            assert_eq!(minor_units(bad), None, "{bad}");
        }
        assert_eq!(classify(503), ErrorClass::NotTaken);
        assert_eq!(classify(409), ErrorClass::Final);
        assert_eq!(classify(500), ErrorClass::Unknown);
    }
}
