//! `/api/v1/admin/dead-letters`: the dead-letter topic for operators (`events.manage`), the
//! same operations as the `dlq` command (`events::dead_letter`): list, replay, purge.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use events::dead_letter::{DeadLetter, DeadLetters, Filter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Caller};

/// The permission of every route here.
pub const PERMISSION: &str = "events.manage";

/// Which dead letters (all optional).
#[derive(Debug, Default, Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterFilter {
    /// Also messages already purged (still on the topic until retention).
    pub all: Option<bool>,
    /// Only this offset.
    pub offset: Option<i64>,
    /// Only messages of this consumer group.
    pub group: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
}

impl From<DeadLetterFilter> for Filter {
    fn from(f: DeadLetterFilter) -> Self {
        Self {
            include_handled: f.all.unwrap_or(false),
            offset: f.offset,
            group: f.group,
            event_type: f.event_type,
        }
    }
}

/// One dead-lettered message.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterView {
    pub offset: i64,
    /// When it was dead-lettered (RFC 3339).
    pub dead_lettered_at: Option<String>,
    pub group: String,
    pub source_topic: String,
    pub event_type: String,
    pub event_id: String,
    pub reason: String,
    /// The payload: JSON when it is JSON, else the text.
    pub payload: serde_json::Value,
}

impl From<&DeadLetter> for DeadLetterView {
    fn from(l: &DeadLetter) -> Self {
        let text = String::from_utf8_lossy(l.payload.as_deref().unwrap_or_default());
        Self {
            offset: l.offset,
            dead_lettered_at: l
                .timestamp_ms
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.to_rfc3339()),
            group: l.group().to_owned(),
            source_topic: l.source_topic().to_owned(),
            event_type: l.event_type(),
            event_id: l.event_id(),
            reason: l.reason().to_owned(),
            payload: serde_json::from_str(&text)
                .unwrap_or_else(|_| serde_json::Value::String(text.into_owned())),
        }
    }
}

/// The open messages (or those the filter selects) and how many are open.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterList {
    /// Messages after the operator cursor.
    pub open: i64,
    pub messages: Vec<DeadLetterView>,
}

/// What a replay or purge did.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterOutcome {
    /// Messages replayed or marked handled.
    pub count: i64,
}

/// Which messages to replay: `open: true` for every open one, or a filter.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    pub open: Option<bool>,
    pub offset: Option<i64>,
    pub group: Option<String>,
    #[serde(rename = "type")]
    pub event_type: Option<String>,
}

/// Mark open messages handled: all, or up to and including `through`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    pub through: Option<i64>,
}

/// Runs a (blocking) dead-letter operation for an operator.
async fn operate<T: Send + 'static>(
    state: &AppState,
    caller: &Caller,
    operation: impl FnOnce(&DeadLetters) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    caller
        .principal
        .require(PERMISSION)
        .map_err(|e| ApiError::from(tonic::Status::from(e)))?;
    let brokers = state.config.kafka_brokers.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        DeadLetters::new(&brokers, events::topics::DEAD_LETTER).and_then(|d| operation(&d))
    })
    .await;
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            tracing::warn!(error = format!("{e:#}"), "dead-letter operation failed");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "BROKER_UNAVAILABLE",
                "the event broker did not answer; try again",
            ))
        }
        Err(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "INTERNAL",
            "the dead-letter operation failed",
        )),
    }
}

#[utoipa::path(get, path = "/api/v1/admin/dead-letters", tag = "events", params(DeadLetterFilter),
    responses((status = 200, body = DeadLetterList), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<DeadLetterFilter>,
) -> Result<Json<DeadLetterList>, ApiError> {
    let filter = Filter::from(filter);
    let (open, letters) =
        operate(&state, &caller, move |d| Ok((d.depth()?, d.list(&filter)?))).await?;
    Ok(Json(DeadLetterList {
        open,
        messages: letters.iter().map(DeadLetterView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/admin/dead-letters/replay", tag = "events", request_body = ReplayRequest,
    responses((status = 200, body = DeadLetterOutcome), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<ReplayRequest>,
) -> Result<Json<DeadLetterOutcome>, ApiError> {
    let selective =
        request.offset.is_some() || request.group.is_some() || request.event_type.is_some();
    if !selective && request.open != Some(true) {
        return Err(ApiError::invalid_field(
            "open",
            "must be true to replay every open message, or give offset, group or type",
        ));
    }
    let filter = Filter {
        include_handled: false,
        offset: request.offset,
        group: request.group,
        event_type: request.event_type,
    };
    let count = operate(&state, &caller, move |d| d.replay(&filter)).await?;
    Ok(Json(DeadLetterOutcome {
        count: count as i64,
    }))
}

#[utoipa::path(post, path = "/api/v1/admin/dead-letters/purge", tag = "events", request_body = PurgeRequest,
    responses((status = 200, body = DeadLetterOutcome), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn purge(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<PurgeRequest>,
) -> Result<Json<DeadLetterOutcome>, ApiError> {
    if request.through.is_some_and(|t| t < 0) {
        return Err(ApiError::invalid_field(
            "through",
            "must be an offset (≥ 0)",
        ));
    }
    let count = operate(&state, &caller, move |d| d.purge(request.through)).await?;
    Ok(Json(DeadLetterOutcome { count }))
}

/// This area's routes, each registered with its OpenAPI operation (its `#[utoipa::path]`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // /admin/dead-letters
        .routes(routes!(list))
        // /admin/dead-letters/replay
        .routes(routes!(replay))
        // /admin/dead-letters/purge
        .routes(routes!(purge))
}
