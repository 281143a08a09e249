//! The provider's API (`/v1`): creating charges and payouts (idempotent, scripted), and their
//! status by the provider's id or the caller's reference.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::script::{Callback, Outcome};
use crate::store::{KeyUse, Kind, Operation, Status};
use crate::{Sandbox, error};

/// The body of a create request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRequest {
    pub(crate) reference: String,
    pub(crate) amount: i64,
    pub(crate) currency: String,
    #[serde(default)]
    pub(crate) method: String,
    #[serde(default)]
    pub(crate) callback_url: Option<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
}

pub(crate) async fn create_charge(
    State(s): State<Sandbox>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    create(s, Kind::Charge, headers, body).await
}

pub(crate) async fn create_payout(
    State(s): State<Sandbox>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    create(s, Kind::Payout, headers, body).await
}

pub(crate) async fn create(
    s: Sandbox,
    kind: Kind,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = s.refusal(&headers) {
        return refused;
    }
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "idempotency_key_required",
            "the Idempotency-Key header is required (1-255 characters)",
        );
    };
    let request: CreateRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
    };
    match create_operation(&s, kind, key, &body, request).await {
        Ok((status, op)) => (status, Json(op)).into_response(),
        Err(refused) => *refused,
    }
}

/// Validates, records and (as scripted) decides an operation: what every dialect's create
/// endpoint does once it has read its request. The key's first use creates (`201`), a replay
/// of the same request answers the same operation (`200`); an error is the answer to send
/// (boxed: a response is large).
pub(crate) async fn create_operation(
    s: &Sandbox,
    kind: Kind,
    key: &str,
    body: &[u8],
    request: CreateRequest,
) -> Result<(StatusCode, Operation), Box<Response>> {
    let error =
        |status, code, message: &str| Err(Box::new(error(status, code, message.to_owned())));
    if request.amount <= 0 {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_amount",
            "amount must be a positive integer of minor units",
        );
    }
    if request.currency.len() != 3 || !request.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_currency",
            "currency must be an ISO 4217 code",
        );
    }
    if request.reference.trim().is_empty() || request.reference.len() > 255 {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_reference",
            "reference is required (1-255 characters)",
        );
    }
    let _ = &request.description;
    let request_hash = hex::encode(
        Sha256::new_with_prefix(kind.as_str())
            .chain_update(body)
            .finalize(),
    );

    let (op, scenario) = {
        let mut store = s.inner.store.lock().await;
        if let Some(used) = store.keys.get(key) {
            if used.request_hash != request_hash {
                return error(
                    StatusCode::CONFLICT,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with another request",
                );
            }
            return match store.operations.get(&used.operation_id) {
                Some(op) => Ok((StatusCode::OK, op.clone())),
                None => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "lost operation",
                ),
            };
        }
        let scenario = s.inner.script.lock().await.pick(
            &s.inner.config.default,
            kind,
            &request.reference,
            request.amount,
        );
        if let (Some(status), false) = (scenario.http_status, scenario.record) {
            drop(store);
            tokio::time::sleep(Duration::from_millis(scenario.respond_after_ms)).await;
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return error(
                status,
                "internal",
                "the provider failed (scripted); nothing recorded",
            );
        }
        let now = Utc::now();
        let op = Operation {
            id: format!("op_{}", uuid::Uuid::now_v7().simple()),
            kind,
            reference: request.reference.trim().to_owned(),
            amount: request.amount,
            currency: request.currency,
            method: request.method,
            status: Status::Pending,
            failure_code: None,
            failure_message: None,
            created_at: now,
            updated_at: now,
            callback_url: request.callback_url,
        };
        store.save(op.clone());
        store.save_key(KeyUse {
            key: key.to_owned(),
            request_hash,
            operation_id: op.id.clone(),
        });
        (op, scenario)
    };
    tracing::info!(provider = %s.inner.config.name, id = %op.id, kind = kind.as_str(), reference = %op.reference, amount = op.amount, "operation created");

    let mut answered = op.clone();
    if scenario.callback == Callback::BeforeResponse && scenario.outcome != Outcome::Never {
        if let Some(decided) = s
            .decide(&op.id, scenario.outcome, &scenario.failure_code)
            .await
        {
            s.send_callback(&decided, Callback::BeforeResponse).await;
            answered = decided;
        }
    } else {
        tokio::spawn(s.clone().decide_later(op.id.clone(), scenario.clone()));
    }
    tokio::time::sleep(Duration::from_millis(scenario.respond_after_ms)).await;
    if let Some(status) = scenario.http_status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return error(
            status,
            "internal",
            "the provider failed (scripted) after recording",
        );
    }
    Ok((StatusCode::CREATED, answered))
}

pub(crate) async fn get_operation(
    State(s): State<Sandbox>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = s.refusal(&headers) {
        return refused;
    }
    match s.inner.store.lock().await.operations.get(&id) {
        Some(op) => Json(op.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", "no such operation"),
    }
}

#[derive(Deserialize)]
pub(crate) struct FindQuery {
    reference: String,
    kind: Option<Kind>,
}

pub(crate) async fn find_operation(
    State(s): State<Sandbox>,
    headers: HeaderMap,
    Query(q): Query<FindQuery>,
) -> Response {
    if let Some(refused) = s.refusal(&headers) {
        return refused;
    }
    match s
        .inner
        .store
        .lock()
        .await
        .by_reference(q.kind, &q.reference)
    {
        Some(op) => Json(op.clone()).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no operation with this reference",
        ),
    }
}
