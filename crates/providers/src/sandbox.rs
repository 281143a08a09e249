//! The adapter for providers speaking the sandbox provider's HTTP API (`sandbox/`):
//! `POST /v1/charges|payouts` with `Idempotency-Key`, `GET /v1/operations?kind=&reference=`,
//! `GET /v1/settlements/{date}`, callbacks signed `Sandbox-Signature: t=…,v1=…` (HMAC-SHA256
//! of `t.body` with the webhook secret). Pointing it at another deployment of that API (or a
//! real provider's compatible endpoint) is configuration: base URL, API key, webhook secret.
//!
//! Why one file of ~400 lines: the adapter, its error table and its signature check are one
//! provider's dialect, read together; a fifth of it is their unit tests.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::{
    CallbackError, CallbackEvent, ErrorClass, OperationKind, OperationRequest, Provider,
    ProviderConfig, ProviderError, ProviderOperation, ProviderStatus, SettlementLine,
};

/// The callback signature header.
pub const SIGNATURE_HEADER: &str = "sandbox-signature";

/// A provider with the sandbox's API.
pub struct SandboxProvider {
    config: ProviderConfig,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct WireOperation {
    id: String,
    kind: OperationKind,
    reference: String,
    amount: i64,
    currency: String,
    status: String,
    #[serde(default)]
    failure_code: Option<String>,
    #[serde(default)]
    failure_message: Option<String>,
}

#[derive(Deserialize)]
struct WireEvent {
    id: String,
    data: WireOperation,
}

#[derive(Deserialize)]
struct WireSettlement {
    lines: Vec<WireLine>,
}

#[derive(Deserialize)]
struct WireLine {
    operation_id: String,
    reference: String,
    kind: OperationKind,
    amount: i64,
    currency: String,
    settled_at: DateTime<Utc>,
}

impl SandboxProvider {
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

    fn operation(&self, wire: WireOperation) -> Result<ProviderOperation, ProviderError> {
        let status = match wire.status.as_str() {
            "pending" => ProviderStatus::Pending,
            "succeeded" => ProviderStatus::Succeeded,
            "failed" => ProviderStatus::Failed {
                code: wire.failure_code.unwrap_or_else(|| "failed".into()),
                message: wire.failure_message.unwrap_or_default(),
            },
            other => {
                return Err(ProviderError {
                    class: ErrorClass::Unknown,
                    message: format!("unknown status {other:?}"),
                });
            }
        };
        Ok(ProviderOperation {
            provider: self.config.name.clone(),
            provider_reference: wire.id,
            kind: wire.kind,
            reference: wire.reference,
            amount: wire.amount,
            currency: wire.currency,
            status,
        })
    }

    /// Sends a request; a `2xx` body as `T`, anything else classified by the error table.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Option<T>, ProviderError> {
        let answer = request
            .bearer_auth(&self.config.api_key)
            .send()
            .await
            .map_err(|e| crate::transport_error(&self.config.name, &e))?;
        let status = answer.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body = answer.bytes().await.map_err(|e| ProviderError {
            class: ErrorClass::Unknown,
            message: format!("{}: reading the answer: {e}", self.config.name),
        })?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| ProviderError {
                    class: ErrorClass::Unknown,
                    message: format!("{}: unreadable answer: {e}", self.config.name),
                });
        }
        let code = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_default();
        Err(ProviderError {
            class: classify(status.as_u16(), &code),
            message: format!("{}: HTTP {} {code}", self.config.name, status.as_u16()),
        })
    }
}

/// The error table: what an error answer means for the operation.
pub fn classify(status: u16, code: &str) -> ErrorClass {
    match (status, code) {
        // Rate limited, or down before looking at the request: not taken, try elsewhere.
        (429, _) | (503, "unavailable") => ErrorClass::NotTaken,
        // A wrong request, key or idempotency-key reuse: retrying cannot help.
        (400..=499, _) => ErrorClass::Final,
        // Failed somewhere after the request arrived: may or may not have been recorded.
        _ => ErrorClass::Unknown,
    }
}

/// The `Sandbox-Signature` value for `body` sent at `timestamp` (unix seconds): what the
/// provider sends, and what a test playing a forger or a replayer computes.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Reads `t=…,v1=…`: the timestamp and every `v1` signature (several during a key rotation).
fn parse_signature(header: &str) -> Option<(i64, Vec<Vec<u8>>)> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse().ok(),
            Some(("v1", v)) => signatures.push(hex::decode(v).ok()?),
            _ => {}
        }
    }
    Some((timestamp?, signatures))
}

#[async_trait::async_trait]
impl Provider for SandboxProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    async fn create(&self, request: &OperationRequest) -> Result<ProviderOperation, ProviderError> {
        let path = match request.kind {
            OperationKind::Charge => "/v1/charges",
            OperationKind::Payout => "/v1/payouts",
        };
        let wire: Option<WireOperation> = self
            .call(
                self.http
                    .post(self.url(path))
                    .header("idempotency-key", request.idempotency_key())
                    .json(&serde_json::json!({
                        "reference": request.reference.to_string(),
                        "amount": request.amount,
                        "currency": request.currency,
                        "method": request.method,
                        "callback_url": request.callback_url,
                    })),
            )
            .await?;
        let wire = wire.ok_or_else(|| ProviderError {
            class: ErrorClass::Final,
            message: format!("{}: 404 on create", self.config.name),
        })?;
        self.operation(wire)
    }

    async fn status(
        &self,
        kind: OperationKind,
        reference: &str,
    ) -> Result<Option<ProviderOperation>, ProviderError> {
        let wire: Option<WireOperation> = self
            .call(
                self.http
                    .get(self.url("/v1/operations"))
                    .query(&[("kind", kind.as_str()), ("reference", reference)]),
            )
            .await?;
        wire.map(|w| self.operation(w)).transpose()
    }

    fn verify_callback(
        &self,
        headers: &HashMap<String, String>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<CallbackEvent, CallbackError> {
        let signature = headers
            .get(SIGNATURE_HEADER)
            .ok_or(CallbackError::BadSignature)?;
        let (timestamp, signatures) =
            parse_signature(signature).ok_or(CallbackError::BadSignature)?;
        let valid = signatures.iter().any(|given| {
            let Ok(mut mac) =
                <Hmac<Sha256> as Mac>::new_from_slice(self.config.webhook_secret.as_bytes())
            else {
                return false;
            };
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            mac.verify_slice(given).is_ok()
        });
        if !valid {
            return Err(CallbackError::BadSignature);
        }
        crate::fresh(timestamp, now, self.config.tolerance)?;
        let event: WireEvent =
            serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(e.to_string()))?;
        let operation = self
            .operation(event.data)
            .map_err(|e| CallbackError::Malformed(e.message))?;
        Ok(CallbackEvent {
            event_id: event.id,
            operation,
        })
    }

    async fn settlement(&self, date: NaiveDate) -> Result<Vec<SettlementLine>, ProviderError> {
        let report: Option<WireSettlement> = self
            .call(
                self.http
                    .get(self.url(&format!("/v1/settlements/{}", date.format("%Y-%m-%d")))),
            )
            .await?;
        Ok(report
            .map(|r| r.lines)
            .unwrap_or_default()
            .into_iter()
            .map(|l| SettlementLine {
                provider_reference: l.operation_id,
                reference: l.reference,
                kind: l.kind,
                amount: l.amount,
                currency: l.currency,
                settled_at: l.settled_at,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> SandboxProvider {
        SandboxProvider::new(ProviderConfig {
            name: "sandpay".into(),
            dialect: crate::Dialect::Sandbox,
            base_url: "http://127.0.0.1:1".into(),
            api_key: "k".into(),
            webhook_secret: "whsec_test".into(),
            tolerance: Duration::from_secs(300),
            timeout: Duration::from_secs(1),
        })
        .unwrap()
    }

    fn headers(signature: &str) -> HashMap<String, String> {
        HashMap::from([(SIGNATURE_HEADER.to_owned(), signature.to_owned())])
    }

    const BODY: &[u8] = br#"{"id":"evt_1","type":"charge.succeeded","created_at":"2026-12-02T00:00:00Z","data":{"id":"op_1","kind":"charge","reference":"r","amount":5,"currency":"IDR","method":"bca","status":"succeeded","created_at":"2026-12-02T00:00:00Z","updated_at":"2026-12-02T00:00:00Z"}}"#;

    #[test]
    fn a_signed_fresh_callback_is_read() {
        let now = Utc::now();
        let event = provider()
            .verify_callback(
                &headers(&sign("whsec_test", now.timestamp(), BODY)),
                BODY,
                now,
            )
            .unwrap();
        assert_eq!(event.event_id, "evt_1");
        assert_eq!(event.operation.status, ProviderStatus::Succeeded);
        assert_eq!(event.operation.amount, 5);
    }

    #[test]
    fn forged_tampered_and_stale_callbacks_are_refused() {
        let now = Utc::now();
        let p = provider();
        let forged = sign("not-the-secret", now.timestamp(), BODY);
        assert!(matches!(
            p.verify_callback(&headers(&forged), BODY, now),
            Err(CallbackError::BadSignature)
        ));
        let signed = sign("whsec_test", now.timestamp(), BODY);
        let tampered = String::from_utf8_lossy(BODY).replace("\"amount\":5", "\"amount\":500");
        assert!(matches!(
            p.verify_callback(&headers(&signed), tampered.as_bytes(), now),
            Err(CallbackError::BadSignature)
        ));
        let old = sign("whsec_test", now.timestamp() - 301, BODY);
        assert!(matches!(
            p.verify_callback(&headers(&old), BODY, now),
            Err(CallbackError::Stale)
        ));
        assert!(matches!(
            p.verify_callback(&HashMap::new(), BODY, now),
            Err(CallbackError::BadSignature)
        ));
    }

    #[test]
    fn the_error_table() {
        assert_eq!(classify(503, "unavailable"), ErrorClass::NotTaken);
        assert_eq!(classify(429, ""), ErrorClass::NotTaken);
        assert_eq!(classify(503, ""), ErrorClass::Unknown);
        assert_eq!(classify(500, "internal"), ErrorClass::Unknown);
        assert_eq!(classify(422, "invalid_amount"), ErrorClass::Final);
        assert_eq!(classify(409, "idempotency_key_reused"), ErrorClass::Final);
    }
}
