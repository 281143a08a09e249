//! Scripting (`/_sandbox/…`): rules, downtime, settlement adjustments, deciding a pending
//! operation now, listing every operation.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::script::{Callback, Outcome, Rule};
use crate::store::{Adjustment, Operation};
use crate::{Sandbox, error};

pub(crate) async fn add_rule(
    State(s): State<Sandbox>,
    headers: HeaderMap,
    Json(rule): Json<Rule>,
) -> Response {
    if let Some(refused) = s.control_unauthorized(&headers) {
        return refused;
    }
    s.inner.script.lock().await.add(rule);
    StatusCode::CREATED.into_response()
}

pub(crate) async fn clear_rules(State(s): State<Sandbox>, headers: HeaderMap) -> Response {
    if let Some(refused) = s.control_unauthorized(&headers) {
        return refused;
    }
    s.inner.script.lock().await.clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
pub(crate) struct Down {
    down: bool,
}

pub(crate) async fn set_down(
    State(s): State<Sandbox>,
    headers: HeaderMap,
    Json(d): Json<Down>,
) -> Response {
    if let Some(refused) = s.control_unauthorized(&headers) {
        return refused;
    }
    s.inner
        .down
        .store(d.down, std::sync::atomic::Ordering::SeqCst);
    tracing::warn!(provider = %s.inner.config.name, down = d.down, "availability changed (scripted)");
    StatusCode::NO_CONTENT.into_response()
}

pub(crate) async fn add_adjustment(
    State(s): State<Sandbox>,
    headers: HeaderMap,
    Json(a): Json<Adjustment>,
) -> Response {
    if let Some(refused) = s.control_unauthorized(&headers) {
        return refused;
    }
    s.inner.store.lock().await.save_adjustment(a);
    StatusCode::CREATED.into_response()
}

pub(crate) async fn list_operations(State(s): State<Sandbox>, headers: HeaderMap) -> Response {
    if let Some(refused) = s.control_unauthorized(&headers) {
        return refused;
    }
    let store = s.inner.store.lock().await;
    let mut ops: Vec<&Operation> = store.operations.values().collect();
    ops.sort_by_key(|op| op.created_at);
    Json(json!({ "operations": ops })).into_response()
}

#[derive(Deserialize)]
pub(crate) struct Decide {
    outcome: Outcome,
    #[serde(default)]
    failure_code: Option<String>,
    #[serde(default)]
    callback: Callback,
}

pub(crate) async fn decide_now(
    State(s): State<Sandbox>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(d): Json<Decide>,
) -> Response {
    if let Some(refused) = s.control_unauthorized(&headers) {
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
