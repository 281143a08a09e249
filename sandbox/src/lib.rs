//! A payment provider that behaves like a real one, run as its own process: the platform's
//! top-ups are its *charges* and withdrawals its *payouts*. It is an outside system, not one
//! of the platform's services: it has no access to the platform's database or broker, and the
//! platform talks to it only through its provider adapter, as it would to a real provider.
//!
//! HTTP API (every `/v1` call needs `Authorization: Bearer <SANDBOX_API_KEY>`):
//!
//! * `POST /v1/charges`, `POST /v1/payouts` with an `Idempotency-Key` header and
//!   `{"reference", "amount", "currency", "method", "callback_url"}`: creates the operation
//!   (`201`, usually `pending`); the same key with the same body answers the same operation
//!   (`200`), with another body `409 idempotency_key_reused`. The outcome comes later, as a
//!   signed callback ([`callbacks`]) and on the status endpoint.
//! * `GET /v1/operations/{id}`, `GET /v1/operations?kind=&reference=`: status by the
//!   provider's id or by the caller's reference (how a caller whose request timed out learns
//!   whether the provider took the money).
//! * `GET /v1/settlements/{date}`: the day's settlement report (every operation that
//!   succeeded that UTC day, with the adjustments a test injected).
//!
//! Scripting (`/_sandbox/…`, same key): `POST rules` (a [`script::Rule`]: approve, decline
//! with a code, never decide, answer late, answer an error with or without recording,
//! callback twice / lost / before the answer), `DELETE rules`, `POST down` (`{"down": true}`:
//! every `/v1` call answers 503 until `false`), `POST settlement-adjustments` (a
//! [`store::Adjustment`]), `POST operations/{id}/decide` (`{"outcome": "approve"|"decline"}`
//! for an operation left pending), `GET operations`.

pub mod callbacks;
pub mod script;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::script::{Callback, Outcome, Rule, Scenario, Script};
use crate::store::{Adjustment, KeyUse, Kind, Operation, Status, Store};

/// The provider's settings (`SANDBOX_*`).
#[derive(Clone, Debug)]
pub struct Config {
    /// Its name in logs (`SANDBOX_NAME`).
    pub name: String,
    /// `SANDBOX_LISTEN`, default `127.0.0.1:7070`; port 0 picks one (printed on stdout).
    pub listen: String,
    /// The key callers authenticate with (`SANDBOX_API_KEY`).
    pub api_key: String,
    /// The key callbacks are signed with (`SANDBOX_WEBHOOK_SECRET`).
    pub webhook_secret: String,
    /// `SANDBOX_STATE_FILE`: operations survive a restart when set.
    pub state_file: Option<PathBuf>,
    /// The behaviour without a matching rule (`SANDBOX_DECIDE_AFTER_MS`, default 200;
    /// `SANDBOX_OUTCOME`, `approve` by default).
    pub default: Scenario,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut default = Scenario {
            decide_after_ms: 200,
            ..Scenario::default()
        };
        if let Some(ms) = var("SANDBOX_DECIDE_AFTER_MS") {
            default.decide_after_ms = ms.parse().context("SANDBOX_DECIDE_AFTER_MS")?;
        }
        if let Some(outcome) = var("SANDBOX_OUTCOME") {
            default.outcome = serde_json::from_value(json!(outcome))
                .context("SANDBOX_OUTCOME: approve, decline or never")?;
        }
        let name = var("SANDBOX_NAME").unwrap_or_else(|| "sandbox".into());
        // Or the platform's names for them (`PROVIDER_<NAME>_API_KEY`, …), so one secrets
        // file serves both sides.
        let platform_name = |what: &str| format!("PROVIDER_{}_{what}", name.to_uppercase());
        let secret = |own: &str, what: &str| {
            var(own)
                .or_else(|| var(&platform_name(what)))
                .ok_or_else(|| anyhow::anyhow!("{own} (or {}) is required", platform_name(what)))
        };
        Ok(Self {
            listen: var("SANDBOX_LISTEN").unwrap_or_else(|| "127.0.0.1:7070".into()),
            api_key: secret("SANDBOX_API_KEY", "API_KEY")?,
            webhook_secret: secret("SANDBOX_WEBHOOK_SECRET", "WEBHOOK_SECRET")?,
            name,
            state_file: var("SANDBOX_STATE_FILE").map(PathBuf::from),
            default,
        })
    }
}

struct Inner {
    config: Config,
    store: Mutex<Store>,
    script: Mutex<Script>,
    down: std::sync::atomic::AtomicBool,
    client: reqwest::Client,
}

/// The running provider.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

/// An error answer in the provider's own format.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

impl Sandbox {
    /// Opens its state and resumes deciding the operations a restart left pending.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let store = Store::open(config.state_file.clone())?;
        let pending: Vec<Operation> = store
            .operations
            .values()
            .filter(|op| op.status == Status::Pending)
            .cloned()
            .collect();
        let sandbox = Self {
            inner: Arc::new(Inner {
                store: Mutex::new(store),
                script: Mutex::new(Script::default()),
                down: false.into(),
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()?,
                config,
            }),
        };
        for op in pending {
            let scenario = sandbox.inner.config.default.clone();
            tokio::spawn(sandbox.clone().decide_later(op.id, scenario));
        }
        Ok(sandbox)
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/charges", post(create_charge))
            .route("/v1/payouts", post(create_payout))
            .route("/v1/operations", get(find_operation))
            .route("/v1/operations/{id}", get(get_operation))
            .route("/v1/settlements/{date}", get(settlement))
            .route("/_sandbox/rules", post(add_rule))
            .route("/_sandbox/rules", delete(clear_rules))
            .route("/_sandbox/down", post(set_down))
            .route("/_sandbox/settlement-adjustments", post(add_adjustment))
            .route("/_sandbox/operations", get(list_operations))
            .route("/_sandbox/operations/{id}/decide", post(decide_now))
            .route("/healthz", get(|| async { "ok" }))
            .with_state(self.clone())
    }

    /// The refusal of a call without the API key, if it has none.
    fn unauthorized(&self, headers: &HeaderMap) -> Option<Response> {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let expected = self.inner.config.api_key.as_bytes();
        // Constant time in the key's length.
        let ok = given.is_some_and(|g| {
            g.len() == expected.len()
                && g.bytes()
                    .zip(expected)
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
        (!ok).then(|| {
            error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid API key is required",
            )
        })
    }

    /// Refuses every `/v1` call while down, and unauthenticated ones.
    fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        if self.inner.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Some(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the provider is down",
            ));
        }
        self.unauthorized(headers)
    }

    /// Decides `id` after the scenario's delay, then sends its callback.
    async fn decide_later(self, id: String, scenario: Scenario) {
        tokio::time::sleep(Duration::from_millis(scenario.decide_after_ms)).await;
        if scenario.outcome == Outcome::Never {
            return;
        }
        if let Some(op) = self
            .decide(&id, scenario.outcome, &scenario.failure_code)
            .await
        {
            self.send_callback(&op, scenario.callback).await;
        }
    }

    /// Moves a pending operation to its outcome (once); the decided operation.
    async fn decide(&self, id: &str, outcome: Outcome, failure_code: &str) -> Option<Operation> {
        let mut store = self.inner.store.lock().await;
        let mut op = store.operations.get(id)?.clone();
        if op.status != Status::Pending {
            return None;
        }
        match outcome {
            Outcome::Approve => op.status = Status::Succeeded,
            Outcome::Decline => {
                op.status = Status::Failed;
                op.failure_code = Some(failure_code.to_owned());
                op.failure_message = Some(describe(failure_code).to_owned());
            }
            Outcome::Never => return None,
        }
        op.updated_at = Utc::now();
        store.save(op.clone());
        tracing::info!(provider = %self.inner.config.name, id, status = ?op.status, "operation decided");
        Some(op)
    }

    /// Sends the operation's outcome callback as the scenario says (in the background, except
    /// `before_response`, which is delivered before returning).
    async fn send_callback(&self, op: &Operation, mode: Callback) {
        let Some(url) = op.callback_url.clone() else {
            return;
        };
        let event = callbacks::Event::of(op);
        let deliver = |event: callbacks::Event| {
            callbacks::deliver(
                self.inner.client.clone(),
                self.inner.config.webhook_secret.clone(),
                url.clone(),
                event,
            )
        };
        match mode {
            Callback::Lost => {
                tracing::info!(event = %event.id, "callback lost (scripted)");
            }
            Callback::Once => {
                tokio::spawn(deliver(event));
            }
            Callback::Twice => {
                tokio::spawn(deliver(event.clone()));
                tokio::spawn(deliver(event));
            }
            Callback::BeforeResponse => deliver(event).await,
        }
    }
}

/// A human message for a decline code.
fn describe(code: &str) -> &'static str {
    match code {
        "insufficient_funds" => "the payer's account has insufficient funds",
        "do_not_honor" => "the issuer declined the operation",
        "invalid_account" => "the destination account does not exist",
        "account_closed" => "the account is closed",
        "limit_exceeded" => "the amount exceeds the account's limit",
        "suspected_fraud" => "declined as suspected fraud",
        _ => "declined",
    }
}

/// The body of a create request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    reference: String,
    amount: i64,
    currency: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    callback_url: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

async fn create_charge(
    State(s): State<Sandbox>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    create(s, Kind::Charge, headers, body).await
}

async fn create_payout(
    State(s): State<Sandbox>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    create(s, Kind::Payout, headers, body).await
}

async fn create(s: Sandbox, kind: Kind, headers: HeaderMap, body: axum::body::Bytes) -> Response {
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
            .chain_update(&body)
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
                Some(op) => (StatusCode::OK, Json(op.clone())).into_response(),
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
    (StatusCode::CREATED, Json(answered)).into_response()
}

async fn get_operation(
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
struct FindQuery {
    reference: String,
    kind: Option<Kind>,
}

async fn find_operation(
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

/// A settlement report line.
#[derive(serde::Serialize)]
struct SettlementLine {
    operation_id: String,
    reference: String,
    kind: Kind,
    amount: i64,
    currency: String,
    settled_at: chrono::DateTime<Utc>,
}

async fn settlement(
    State(s): State<Sandbox>,
    headers: HeaderMap,
    Path(date): Path<String>,
) -> Response {
    if let Some(refused) = s.refusal(&headers) {
        return refused;
    }
    let Ok(date) = NaiveDate::parse_from_str(&date, "%Y-%m-%d") else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_date",
            "the date is YYYY-MM-DD",
        );
    };
    let store = s.inner.store.lock().await;
    let mut lines: Vec<SettlementLine> = store
        .operations
        .values()
        .filter(|op| op.status == Status::Succeeded && op.updated_at.date_naive() == date)
        .map(|op| SettlementLine {
            operation_id: op.id.clone(),
            reference: op.reference.clone(),
            kind: op.kind,
            amount: op.amount,
            currency: op.currency.clone(),
            settled_at: op.updated_at,
        })
        .collect();
    for adjustment in &store.adjustments {
        match adjustment {
            Adjustment::Drop { reference } => lines.retain(|l| &l.reference != reference),
            Adjustment::Amount { reference, amount } => lines
                .iter_mut()
                .filter(|l| &l.reference == reference)
                .for_each(|l| l.amount = *amount),
            Adjustment::Currency {
                reference,
                currency,
            } => lines
                .iter_mut()
                .filter(|l| &l.reference == reference)
                .for_each(|l| l.currency = currency.clone()),
            Adjustment::Duplicate { reference } => {
                let copies: Vec<SettlementLine> = lines
                    .iter()
                    .filter(|l| &l.reference == reference)
                    .map(|l| SettlementLine {
                        operation_id: l.operation_id.clone(),
                        reference: l.reference.clone(),
                        kind: l.kind,
                        amount: l.amount,
                        currency: l.currency.clone(),
                        settled_at: l.settled_at,
                    })
                    .collect();
                lines.extend(copies);
            }
            Adjustment::Extra {
                reference,
                kind,
                amount,
                currency,
                date: on,
            } if *on == date => lines.push(SettlementLine {
                operation_id: format!("op_extra_{reference}"),
                reference: reference.clone(),
                kind: *kind,
                amount: *amount,
                currency: currency.clone(),
                settled_at: on
                    .and_hms_opt(12, 0, 0)
                    .map_or_else(Utc::now, |t| t.and_utc()),
            }),
            Adjustment::Extra { .. } => {}
        }
    }
    lines.sort_by(|a, b| {
        a.settled_at
            .cmp(&b.settled_at)
            .then(a.reference.cmp(&b.reference))
    });
    Json(json!({
        "provider": s.inner.config.name,
        "date": date.to_string(),
        "lines": lines,
    }))
    .into_response()
}

async fn add_rule(
    State(s): State<Sandbox>,
    headers: HeaderMap,
    Json(rule): Json<Rule>,
) -> Response {
    if let Some(refused) = s.unauthorized(&headers) {
        return refused;
    }
    s.inner.script.lock().await.add(rule);
    StatusCode::CREATED.into_response()
}

async fn clear_rules(State(s): State<Sandbox>, headers: HeaderMap) -> Response {
    if let Some(refused) = s.unauthorized(&headers) {
        return refused;
    }
    s.inner.script.lock().await.clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct Down {
    down: bool,
}

async fn set_down(State(s): State<Sandbox>, headers: HeaderMap, Json(d): Json<Down>) -> Response {
    if let Some(refused) = s.unauthorized(&headers) {
        return refused;
    }
    s.inner
        .down
        .store(d.down, std::sync::atomic::Ordering::SeqCst);
    tracing::warn!(provider = %s.inner.config.name, down = d.down, "availability changed (scripted)");
    StatusCode::NO_CONTENT.into_response()
}

async fn add_adjustment(
    State(s): State<Sandbox>,
    headers: HeaderMap,
    Json(a): Json<Adjustment>,
) -> Response {
    if let Some(refused) = s.unauthorized(&headers) {
        return refused;
    }
    s.inner.store.lock().await.save_adjustment(a);
    StatusCode::CREATED.into_response()
}

async fn list_operations(State(s): State<Sandbox>, headers: HeaderMap) -> Response {
    if let Some(refused) = s.unauthorized(&headers) {
        return refused;
    }
    let store = s.inner.store.lock().await;
    let mut ops: Vec<&Operation> = store.operations.values().collect();
    ops.sort_by_key(|op| op.created_at);
    Json(json!({ "operations": ops })).into_response()
}

#[derive(Deserialize)]
struct Decide {
    outcome: Outcome,
    #[serde(default)]
    failure_code: Option<String>,
    #[serde(default)]
    callback: Callback,
}

async fn decide_now(
    State(s): State<Sandbox>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(d): Json<Decide>,
) -> Response {
    if let Some(refused) = s.unauthorized(&headers) {
        return refused;
    }
    let code = d.failure_code.unwrap_or_else(|| "do_not_honor".into());
    match s.decide(&id, d.outcome, &code).await {
        Some(op) => {
            s.send_callback(&op, d.callback).await;
            Json(op).into_response()
        }
        None => error(
            StatusCode::CONFLICT,
            "not_pending",
            "no pending operation with this id",
        ),
    }
}
