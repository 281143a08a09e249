//! The `orders` dialect: the same provider behind another provider's API, so the platform's
//! second adapter (`providers::orders`) talks to a real process with a different contract.
//! Chosen with `SANDBOX_DIALECT=orders`; it differs from the default dialect in every way
//! real providers differ from one another:
//!
//! * authentication: HTTP Basic, the API key as user name and an empty password;
//! * `POST /v2/orders` `{"order_id", "type": "charge"|"payout", "gross_amount": "120.00",
//!   "currency", "channel", "notification_url"}`: amounts are decimal strings in major units
//!   (two decimals); there is no idempotency header — the `order_id` is the key, and any
//!   second request with a used `order_id` answers `409` (the caller asks the status);
//! * `GET /v2/orders/{order_id}/status[?type=]`: `{"status_code", "transaction_id",
//!   "order_id", "type", "transaction_status": "pending"|"settlement"|"deny", "status_reason",
//!   "gross_amount", "currency"}`, `404` when unknown;
//! * notifications: that object plus `notification_id`, POSTed with `X-Orders-Timestamp:
//!   <unix seconds>` and `X-Orders-Signature: sha512=<hex HMAC-SHA512 over "timestamp\nbody">`;
//! * `GET /v2/settlements?date=YYYY-MM-DD`: the report as CSV
//!   (`transaction_id,order_id,type,gross_amount,currency,settlement_time`);
//! * errors: `{"status_code": "409", "status_message": "…"}`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha512;

use crate::Sandbox;
use crate::api::{CreateRequest, create_operation};
use crate::store::{Kind, Operation, Status};

/// The timestamp header of a notification.
pub const TIMESTAMP_HEADER: &str = "x-orders-timestamp";
/// The signature header of a notification.
pub const SIGNATURE_HEADER: &str = "x-orders-signature";

/// An error answer in this dialect.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"status_code": status.as_u16().to_string(), "status_message": message.into()})),
    )
        .into_response()
}

/// Minor units as this dialect writes amounts: `12000` → `"120.00"`.
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

/// An operation as this dialect shows it.
pub(crate) fn view(op: &Operation) -> Value {
    json!({
        "status_code": "200",
        "transaction_id": op.id,
        "order_id": op.reference,
        "type": op.kind,
        "transaction_status": match op.status {
            Status::Pending => "pending",
            Status::Succeeded => "settlement",
            Status::Failed => "deny",
        },
        "status_reason": op.failure_code,
        "gross_amount": gross_amount(op.amount),
        "currency": op.currency,
        "channel": op.method,
    })
}

/// The `X-Orders-Signature` value of `body` sent at `timestamp`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b"\n");
    mac.update(body);
    format!("sha512={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrderRequest {
    order_id: String,
    #[serde(rename = "type")]
    kind: Kind,
    gross_amount: String,
    currency: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    notification_url: Option<String>,
}

pub(crate) async fn create_order(
    State(s): State<Sandbox>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = s.refusal(&headers) {
        return refused;
    }
    let order: OrderRequest = match serde_json::from_slice(&body) {
        Ok(o) => o,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let Some(amount) = minor_units(&order.gross_amount) else {
        return error(
            StatusCode::BAD_REQUEST,
            "gross_amount must be a decimal string with two decimals, e.g. \"120.00\"",
        );
    };
    if s.inner
        .store
        .lock()
        .await
        .by_reference(None, order.order_id.trim())
        .is_some()
    {
        return error(StatusCode::CONFLICT, "order_id has already been taken");
    }
    let key = format!("order:{}", order.order_id.trim());
    let request = CreateRequest {
        reference: order.order_id,
        amount,
        currency: order.currency,
        method: order.channel,
        callback_url: order.notification_url,
        description: None,
    };
    match create_operation(&s, order.kind, &key, &body, request).await {
        Ok((_, op)) => {
            let mut answer = view(&op);
            answer["status_code"] = json!("201");
            (StatusCode::CREATED, Json(answer)).into_response()
        }
        Err(refused) => in_dialect(*refused).await,
    }
}

/// A default-dialect error answer rewritten in this dialect's format.
async fn in_dialect(refused: Response) -> Response {
    let status = refused.status();
    let body = axum::body::to_bytes(refused.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "the provider failed".to_owned());
    error(status, message)
}

#[derive(Deserialize)]
pub(crate) struct StatusQuery {
    #[serde(rename = "type")]
    kind: Option<Kind>,
}

pub(crate) async fn order_status(
    State(s): State<Sandbox>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
    Query(q): Query<StatusQuery>,
) -> Response {
    if let Some(refused) = s.refusal(&headers) {
        return refused;
    }
    match s.inner.store.lock().await.by_reference(q.kind, &order_id) {
        Some(op) => Json(view(op)).into_response(),
        None => error(StatusCode::NOT_FOUND, "order not found"),
    }
}

#[derive(Deserialize)]
pub(crate) struct SettlementQuery {
    date: String,
}

pub(crate) async fn settlements(
    State(s): State<Sandbox>,
    headers: HeaderMap,
    Query(q): Query<SettlementQuery>,
) -> Response {
    if let Some(refused) = s.refusal(&headers) {
        return refused;
    }
    let Ok(date) = NaiveDate::parse_from_str(&q.date, "%Y-%m-%d") else {
        return error(StatusCode::BAD_REQUEST, "date must be YYYY-MM-DD");
    };
    let mut csv =
        String::from("transaction_id,order_id,type,gross_amount,currency,settlement_time\n");
    for line in crate::settlement::report(&s, date).await {
        csv.push_str(&format!(
            "{},{},{},{},{},{}\n",
            line.operation_id,
            line.reference,
            line.kind.as_str(),
            gross_amount(line.amount),
            line.currency,
            line.settled_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ));
    }
    ([("content-type", "text/csv")], csv).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip_through_decimal_strings() {
        for minor in [1, 99, 100, 12_345, 1_000_000_000] {
            assert_eq!(minor_units(&gross_amount(minor)), Some(minor));
        }
        assert_eq!(gross_amount(12_000), "120.00");
        for bad in ["120", "120.0", "120.000", ".50", "1e3.00", "12,00"] {
            assert_eq!(minor_units(bad), None, "{bad}");
        }
    }
}
