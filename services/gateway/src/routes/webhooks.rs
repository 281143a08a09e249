//! `/api/v1/merchants/{id}/webhook-endpoints/*` and `/api/v1/merchants/{id}/events/*`: a
//! merchant's webhook endpoints (signing secret shown once, rotatable) and its events API
//! (30 days: list, read, delivery attempts, re-send).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use proto::merchant::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views::rfc3339;
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Caller, OptionalApiJson};

/// A webhook endpoint (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEndpointView {
    pub id: String,
    pub merchant_id: String,
    pub url: String,
    pub description: String,
    /// The event types it receives; `*` = all.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Why it is disabled.
    pub disabled_reason: Option<String>,
    /// Failed attempts since its last success.
    pub consecutive_failures: i32,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    /// During a rotation's overlap: when the previous secret stops signing.
    pub previous_secret_expires_at: Option<String>,
}

impl From<pb::WebhookEndpoint> for WebhookEndpointView {
    fn from(e: pb::WebhookEndpoint) -> Self {
        Self {
            id: e.id,
            merchant_id: e.merchant_id,
            url: e.url,
            description: e.description,
            event_types: e.event_types,
            enabled: e.enabled,
            disabled_reason: (!e.disabled_reason.is_empty()).then_some(e.disabled_reason),
            consecutive_failures: e.consecutive_failures,
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
            previous_secret_expires_at: rfc3339(e.previous_secret_expires_at),
        }
    }
}

/// An endpoint with its signing secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhookEndpointView {
    pub endpoint: Option<WebhookEndpointView>,
    /// `whsec_…`: verify the `Payments-Signature` header with it. Never shown again.
    pub secret: String,
}

impl From<pb::CreatedWebhookEndpoint> for CreatedWebhookEndpointView {
    fn from(c: pb::CreatedWebhookEndpoint) -> Self {
        Self {
            endpoint: c.endpoint.map(Into::into),
            secret: c.secret,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEndpointList {
    pub items: Vec<WebhookEndpointView>,
}

/// An event as merchants receive it (the body of a webhook).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: String,
    /// Always `event`.
    pub object: &'static str,
    #[serde(rename = "type")]
    pub event_type: String,
    pub api_version: String,
    pub created: Option<String>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<pb::WebhookEvent> for EventView {
    fn from(e: pb::WebhookEvent) -> Self {
        Self {
            id: e.id,
            object: "event",
            event_type: e.r#type,
            api_version: e.api_version,
            created: rfc3339(e.created_at),
            data: serde_json::from_str(&e.data_json).unwrap_or(serde_json::Value::Null),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempted_at: Option<String>,
    /// The endpoint's HTTP status; absent when it could not be reached.
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
    pub succeeded: bool,
}

/// A delivery of an event to one endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub event_id: String,
    pub endpoint_id: String,
    /// `pending`, `succeeded` or `failed` (every retry used).
    pub status: String,
    /// A re-send the merchant asked for.
    pub manual: bool,
    pub attempts: i32,
    pub next_attempt_at: Option<String>,
    pub created_at: Option<String>,
    pub completed_at: Option<String>,
    pub attempt_log: Vec<AttemptView>,
}

impl From<pb::WebhookDelivery> for DeliveryView {
    fn from(d: pb::WebhookDelivery) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            endpoint_id: d.endpoint_id,
            next_attempt_at: (d.status == "pending")
                .then(|| rfc3339(d.next_attempt_at))
                .flatten(),
            status: d.status,
            manual: d.manual,
            attempts: d.attempts,
            created_at: rfc3339(d.created_at),
            completed_at: rfc3339(d.completed_at),
            attempt_log: d
                .attempt_log
                .into_iter()
                .map(|a| AttemptView {
                    attempted_at: rfc3339(a.attempted_at),
                    status_code: a.status_code,
                    latency_ms: a.latency_ms,
                    error: (!a.error.is_empty()).then_some(a.error),
                    succeeded: a.succeeded,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<DeliveryView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointBody {
    /// HTTPS URL on a public host.
    pub url: String,
    /// Event types to receive (`*` = all).
    pub event_types: Vec<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpointBody {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    /// false disables it; true enables it again (and clears its run of failures).
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretBody {
    /// How long the old secret keeps signing (default 86400, at most 604800; 0 = now).
    pub overlap_seconds: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendBody {
    /// The endpoint to send the event to.
    pub endpoint_id: String,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only this event type.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// RFC 3339; at most 30 days back.
    pub created_from: Option<String>,
    /// RFC 3339.
    pub created_to: Option<String>,
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1-100 (default 20).
    pub limit: Option<i32>,
}

fn timestamp(field: &str, raw: Option<String>) -> Result<Option<prost_types::Timestamp>, ApiError> {
    raw.map(|raw| {
        chrono::DateTime::parse_from_rfc3339(&raw)
            .map(|t| platform::time::to_proto(t.to_utc()))
            .map_err(|_| ApiError::invalid_field(field, "must be an RFC 3339 time"))
    })
    .transpose()
}

#[utoipa::path(post, path = "/api/v1/merchants/{id}/webhook-endpoints", tag = "webhooks",
    params(("id" = String, Path)), request_body = EndpointBody,
    responses((status = 201, body = CreatedWebhookEndpointView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Path(merchant_id): Path<String>,
    ApiJson(body): ApiJson<EndpointBody>,
) -> Result<(StatusCode, Json<CreatedWebhookEndpointView>), ApiError> {
    let request = state.request(
        pb::CreateWebhookEndpointRequest {
            merchant_id,
            url: body.url,
            event_types: body.event_types,
            description: body.description,
        },
        Some(&caller),
    );
    let created = state
        .webhooks
        .clone()
        .create_webhook_endpoint(request)
        .await?;
    Ok((StatusCode::CREATED, Json(created.into_inner().into())))
}

#[utoipa::path(get, path = "/api/v1/merchants/{id}/webhook-endpoints", tag = "webhooks",
    params(("id" = String, Path)),
    responses((status = 200, body = WebhookEndpointList), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_endpoints(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookEndpointList>, ApiError> {
    let request = state.request(pb::MerchantIdRequest { id }, Some(&caller));
    let reply = state
        .webhooks
        .clone()
        .list_webhook_endpoints(request)
        .await?;
    Ok(Json(WebhookEndpointList {
        items: reply
            .into_inner()
            .endpoints
            .into_iter()
            .map(Into::into)
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/merchants/{id}/webhook-endpoints/{endpoint_id}", tag = "webhooks",
    params(("id" = String, Path), ("endpoint_id" = String, Path)),
    responses((status = 200, body = WebhookEndpointView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Path((merchant_id, endpoint_id)): Path<(String, String)>,
) -> Result<Json<WebhookEndpointView>, ApiError> {
    let request = state.request(
        pb::WebhookEndpointIdRequest {
            merchant_id,
            endpoint_id,
        },
        Some(&caller),
    );
    let reply = state.webhooks.clone().get_webhook_endpoint(request).await?;
    Ok(Json(reply.into_inner().into()))
}

#[utoipa::path(patch, path = "/api/v1/merchants/{id}/webhook-endpoints/{endpoint_id}", tag = "webhooks",
    params(("id" = String, Path), ("endpoint_id" = String, Path)), request_body = UpdateEndpointBody,
    responses((status = 200, body = WebhookEndpointView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Path((merchant_id, endpoint_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateEndpointBody>,
) -> Result<Json<WebhookEndpointView>, ApiError> {
    let request = state.request(
        pb::UpdateWebhookEndpointRequest {
            merchant_id,
            endpoint_id,
            url: body.url,
            set_event_types: body.event_types.is_some(),
            event_types: body.event_types.unwrap_or_default(),
            description: body.description,
            enabled: body.enabled,
        },
        Some(&caller),
    );
    let reply = state
        .webhooks
        .clone()
        .update_webhook_endpoint(request)
        .await?;
    Ok(Json(reply.into_inner().into()))
}

#[utoipa::path(delete, path = "/api/v1/merchants/{id}/webhook-endpoints/{endpoint_id}", tag = "webhooks",
    params(("id" = String, Path), ("endpoint_id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Path((merchant_id, endpoint_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let request = state.request(
        pb::WebhookEndpointIdRequest {
            merchant_id,
            endpoint_id,
        },
        Some(&caller),
    );
    state
        .webhooks
        .clone()
        .delete_webhook_endpoint(request)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/merchants/{id}/webhook-endpoints/{endpoint_id}/rotate-secret",
    tag = "webhooks", params(("id" = String, Path), ("endpoint_id" = String, Path)),
    request_body = RotateSecretBody,
    responses((status = 201, body = CreatedWebhookEndpointView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((merchant_id, endpoint_id)): Path<(String, String)>,
    OptionalApiJson(body): OptionalApiJson<RotateSecretBody>,
) -> Result<(StatusCode, Json<CreatedWebhookEndpointView>), ApiError> {
    let request = state.request(
        pb::RotateWebhookSecretRequest {
            merchant_id,
            endpoint_id,
            overlap_seconds: body.overlap_seconds,
        },
        Some(&caller),
    );
    let created = state
        .webhooks
        .clone()
        .rotate_webhook_secret(request)
        .await?;
    Ok((StatusCode::CREATED, Json(created.into_inner().into())))
}

#[utoipa::path(get, path = "/api/v1/merchants/{id}/events", tag = "webhooks",
    params(("id" = String, Path), EventQuery),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(merchant_id): Path<String>,
    ApiQuery(query): ApiQuery<EventQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let request = state.request(
        pb::ListEventsRequest {
            merchant_id,
            r#type: query.event_type.unwrap_or_default(),
            created_from: timestamp("created_from", query.created_from)?,
            created_to: timestamp("created_to", query.created_to)?,
            cursor: query.cursor.unwrap_or_default(),
            limit: match query.limit {
                Some(n) if n > 0 => n,
                Some(_) => return Err(ApiError::invalid_field("limit", "must be 1-100")),
                None => 20,
            },
        },
        Some(&caller),
    );
    let reply = state
        .webhooks
        .clone()
        .list_events(request)
        .await?
        .into_inner();
    Ok(Json(EventPage {
        items: reply.events.into_iter().map(Into::into).collect(),
        next_cursor: (!reply.next_cursor.is_empty()).then_some(reply.next_cursor),
    }))
}

#[utoipa::path(get, path = "/api/v1/merchants/{id}/events/{event_id}", tag = "webhooks",
    params(("id" = String, Path), ("event_id" = String, Path)),
    responses((status = 200, body = EventView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_event(
    State(state): State<AppState>,
    caller: Caller,
    Path((merchant_id, event_id)): Path<(String, String)>,
) -> Result<Json<EventView>, ApiError> {
    let request = state.request(
        pb::EventIdRequest {
            merchant_id,
            event_id,
        },
        Some(&caller),
    );
    let reply = state.webhooks.clone().get_event(request).await?;
    Ok(Json(reply.into_inner().into()))
}

#[utoipa::path(get, path = "/api/v1/merchants/{id}/events/{event_id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), ("event_id" = String, Path)),
    responses((status = 200, body = DeliveryList), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path((merchant_id, event_id)): Path<(String, String)>,
) -> Result<Json<DeliveryList>, ApiError> {
    let request = state.request(
        pb::EventIdRequest {
            merchant_id,
            event_id,
        },
        Some(&caller),
    );
    let reply = state.webhooks.clone().list_deliveries(request).await?;
    Ok(Json(DeliveryList {
        items: reply
            .into_inner()
            .deliveries
            .into_iter()
            .map(Into::into)
            .collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/merchants/{id}/events/{event_id}/resend", tag = "webhooks",
    params(("id" = String, Path), ("event_id" = String, Path)), request_body = ResendBody,
    responses((status = 202, body = DeliveryView), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn resend_event(
    State(state): State<AppState>,
    caller: Caller,
    Path((merchant_id, event_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ResendBody>,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    let request = state.request(
        pb::ResendEventRequest {
            merchant_id,
            event_id,
            endpoint_id: body.endpoint_id,
        },
        Some(&caller),
    );
    let reply = state.webhooks.clone().resend_event(request).await?;
    Ok((StatusCode::ACCEPTED, Json(reply.into_inner().into())))
}

/// This area's routes, each registered with its OpenAPI operation.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_endpoints, create_endpoint))
        .routes(routes!(get_endpoint, update_endpoint, delete_endpoint))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_events))
        .routes(routes!(get_event))
        .routes(routes!(list_deliveries))
        .routes(routes!(resend_event))
}
