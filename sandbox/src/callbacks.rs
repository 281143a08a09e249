//! Outcome callbacks: a JSON event POSTed to the operation's `callback_url`, signed with the
//! webhook secret (`Sandbox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 over "t.body">`),
//! retried with exponential backoff until the receiver answers 2xx.

use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::Dialect;
use crate::store::{Operation, Status};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "sandbox-signature";

/// Attempts per callback (the first and its retries: 0.5 s, 1 s, 2 s, … apart).
const ATTEMPTS: u32 = 8;

/// The event a callback carries.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Unique per event; a callback delivered twice carries the same id.
    pub id: String,
    /// `charge.succeeded`, `charge.failed`, `payout.succeeded`, `payout.failed`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub created_at: chrono::DateTime<Utc>,
    pub data: Operation,
}

impl Event {
    pub fn of(op: &Operation) -> Self {
        let outcome = match op.status {
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Pending => "pending",
        };
        Self {
            id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
            event_type: format!("{}.{outcome}", op.kind.as_str()),
            created_at: Utc::now(),
            data: op.clone(),
        }
    }
}

/// `t=…,v1=…` for `body` signed at `timestamp`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
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

/// Delivers `event` to `url` in `dialect`'s format until it is accepted or the attempts run
/// out.
pub async fn deliver(
    client: reqwest::Client,
    dialect: Dialect,
    secret: String,
    url: String,
    event: Event,
) {
    let body = match dialect {
        Dialect::Sandbox => serde_json::to_vec(&event),
        Dialect::Orders => {
            let mut notification = crate::orders::view(&event.data);
            notification["notification_id"] = event.id.clone().into();
            serde_json::to_vec(&notification)
        }
    };
    let body = match body {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize a callback");
            return;
        }
    };
    let mut backoff = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        // Signed at each attempt: a receiver's tolerance window counts from the sending.
        let now = Utc::now().timestamp();
        let request = client.post(&url).header("content-type", "application/json");
        let request = match dialect {
            Dialect::Sandbox => request.header(SIGNATURE_HEADER, signature(&secret, now, &body)),
            Dialect::Orders => request
                .header(crate::orders::TIMESTAMP_HEADER, now.to_string())
                .header(
                    crate::orders::SIGNATURE_HEADER,
                    crate::orders::signature(&secret, now, &body),
                ),
        };
        let sent = request.body(body.clone()).send().await;
        match sent {
            Ok(r) if r.status().is_success() => {
                tracing::info!(event = %event.id, r#type = %event.event_type, %url, attempt, "callback delivered");
                return;
            }
            Ok(r) => {
                tracing::warn!(event = %event.id, %url, attempt, status = r.status().as_u16(), "callback refused")
            }
            Err(e) => {
                tracing::warn!(event = %event.id, %url, attempt, error = %e, "callback failed")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
    tracing::error!(event = %event.id, %url, "callback given up");
}
