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
//! With `SANDBOX_DIALECT=orders` it speaks another provider's API instead ([`orders`]): other
//! paths, authentication, amount format, status names, idempotency rule, signature scheme
//! and a CSV settlement report — what the platform's second adapter is written against.
//!
//! Scripting (`/_sandbox/…`, same key): `POST rules` (a [`script::Rule`]: approve, decline
//! with a code, never decide, answer late, answer an error with or without recording,
//! callback twice / lost / before the answer), `DELETE rules`, `POST down` (`{"down": true}`:
//! every `/v1` call answers 503 until `false`), `POST settlement-adjustments` (a
//! [`store::Adjustment`]), `POST operations/{id}/decide` (`{"outcome": "approve"|"decline"}`
//! for an operation left pending), `GET operations`.

mod api;
pub mod callbacks;
mod control;
pub mod orders;
pub mod script;
mod settlement;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::json;
use tokio::sync::Mutex;

use crate::script::{Callback, Outcome, Scenario, Script};
use crate::store::{Operation, Status, Store};

/// Which provider API the sandbox speaks (`SANDBOX_DIALECT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `sandbox` (the default): `/v1`, bearer key, `Idempotency-Key`, JSON everywhere.
    Sandbox,
    /// `orders`: `/v2/orders`, basic auth, order id as the key, CSV settlements ([`orders`]).
    Orders,
}

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
    /// `SANDBOX_DIALECT`: `sandbox` (default) or `orders`.
    pub dialect: Dialect,
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
            dialect: match var("SANDBOX_DIALECT").as_deref() {
                None | Some("sandbox") => Dialect::Sandbox,
                Some("orders") => Dialect::Orders,
                Some(other) => anyhow::bail!("SANDBOX_DIALECT {other:?}: sandbox or orders"),
            },
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
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
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
        let api = match self.inner.config.dialect {
            Dialect::Sandbox => Router::new()
                .route("/v1/charges", post(api::create_charge))
                .route("/v1/payouts", post(api::create_payout))
                .route("/v1/operations", get(api::find_operation))
                .route("/v1/operations/{id}", get(api::get_operation))
                .route("/v1/settlements/{date}", get(settlement::settlement)),
            Dialect::Orders => Router::new()
                .route("/v2/orders", post(orders::create_order))
                .route("/v2/orders/{order_id}/status", get(orders::order_status))
                .route("/v2/settlements", get(orders::settlements)),
        };
        api.route("/_sandbox/rules", post(control::add_rule))
            .route("/_sandbox/rules", delete(control::clear_rules))
            .route("/_sandbox/down", post(control::set_down))
            .route(
                "/_sandbox/settlement-adjustments",
                post(control::add_adjustment),
            )
            .route("/_sandbox/operations", get(control::list_operations))
            .route(
                "/_sandbox/operations/{id}/decide",
                post(control::decide_now),
            )
            .route("/healthz", get(|| async { "ok" }))
            .with_state(self.clone())
    }

    /// The refusal of a call without the API key, if it has none.
    pub(crate) fn unauthorized(&self, headers: &HeaderMap) -> Option<Response> {
        self.unauthorized_in(self.inner.config.dialect, headers)
    }

    /// The refusal of a scripting call (`/_sandbox/…`, bearer key in every dialect) without
    /// the API key.
    pub(crate) fn control_unauthorized(&self, headers: &HeaderMap) -> Option<Response> {
        self.unauthorized_in(Dialect::Sandbox, headers)
    }

    fn unauthorized_in(&self, dialect: Dialect, headers: &HeaderMap) -> Option<Response> {
        use base64::Engine;
        let header = headers.get("authorization").and_then(|v| v.to_str().ok());
        let expected = match dialect {
            Dialect::Sandbox => self.inner.config.api_key.clone(),
            Dialect::Orders => base64::engine::general_purpose::STANDARD
                .encode(format!("{}:", self.inner.config.api_key)),
        };
        let given = header.and_then(|v| match dialect {
            Dialect::Sandbox => v.strip_prefix("Bearer "),
            Dialect::Orders => v.strip_prefix("Basic "),
        });
        let expected = expected.as_bytes();
        // Constant time in the key's length.
        let ok = given.is_some_and(|g| {
            g.len() == expected.len()
                && g.bytes()
                    .zip(expected)
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
        (!ok).then(|| {
            self.error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid API key is required",
            )
        })
    }

    /// An error answer in the dialect's format.
    pub(crate) fn error(&self, status: StatusCode, code: &str, message: &str) -> Response {
        match self.inner.config.dialect {
            Dialect::Sandbox => error(status, code, message),
            Dialect::Orders => orders::error(status, message),
        }
    }

    /// Refuses every `/v1` call while down, and unauthenticated ones.
    pub(crate) fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        if self.inner.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Some(self.error(
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
    pub(crate) async fn decide(
        &self,
        id: &str,
        outcome: Outcome,
        failure_code: &str,
    ) -> Option<Operation> {
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
    pub(crate) async fn send_callback(&self, op: &Operation, mode: Callback) {
        let Some(url) = op.callback_url.clone() else {
            return;
        };
        let event = callbacks::Event::of(op);
        let deliver = |event: callbacks::Event| {
            callbacks::deliver(
                self.inner.client.clone(),
                self.inner.config.dialect,
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
