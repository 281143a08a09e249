//! `/api/v1/merchants/{id}/api-keys/*`: a merchant's API keys, created and rotated (shown
//! once), listed and revoked.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use proto::merchant::v1 as pb;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::merchant_views::{ApiKeyList, ApiKeyView, CreatedApiKeyView};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, OptionalApiJson};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// How long the old key keeps working (default 86400, at most 604800; 0 = now).
    pub overlap_seconds: Option<u32>,
}

#[utoipa::path(post, path = "/api/v1/merchants/{id}/api-keys", tag = "merchants", params(("id" = String, Path)),
    responses((status = 201, body = CreatedApiKeyView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(merchant_id): Path<String>,
) -> Result<(StatusCode, Json<CreatedApiKeyView>), ApiError> {
    let request = state.request(pb::CreateApiKeyRequest { merchant_id }, Some(&caller));
    let created = state.merchants.clone().create_api_key(request).await?;
    Ok((StatusCode::CREATED, Json(created.into_inner().into())))
}

#[utoipa::path(get, path = "/api/v1/merchants/{id}/api-keys", tag = "merchants", params(("id" = String, Path)),
    responses((status = 200, body = ApiKeyList), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ApiKeyList>, ApiError> {
    let request = state.request(pb::MerchantIdRequest { id }, Some(&caller));
    let reply = state
        .merchants
        .clone()
        .list_api_keys(request)
        .await?
        .into_inner();
    Ok(Json(ApiKeyList {
        items: reply.keys.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/merchants/{id}/api-keys/{key_id}/rotate", tag = "merchants",
    params(("id" = String, Path), ("key_id" = String, Path)), request_body = RotateBody,
    responses((status = 201, body = CreatedApiKeyView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((merchant_id, key_id)): Path<(String, String)>,
    OptionalApiJson(body): OptionalApiJson<RotateBody>,
) -> Result<(StatusCode, Json<CreatedApiKeyView>), ApiError> {
    let request = state.request(
        pb::RotateApiKeyRequest {
            merchant_id,
            key_id,
            overlap_seconds: body.overlap_seconds,
        },
        Some(&caller),
    );
    let created = state.merchants.clone().rotate_api_key(request).await?;
    Ok((StatusCode::CREATED, Json(created.into_inner().into())))
}

#[utoipa::path(delete, path = "/api/v1/merchants/{id}/api-keys/{key_id}", tag = "merchants",
    params(("id" = String, Path), ("key_id" = String, Path)),
    responses((status = 200, body = ApiKeyView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((merchant_id, key_id)): Path<(String, String)>,
) -> Result<Json<ApiKeyView>, ApiError> {
    let request = state.request(
        pb::ApiKeyIdRequest {
            merchant_id,
            key_id,
        },
        Some(&caller),
    );
    Ok(Json(
        state
            .merchants
            .clone()
            .revoke_api_key(request)
            .await?
            .into_inner()
            .into(),
    ))
}

/// This area's routes, each registered with its OpenAPI operation (its `#[utoipa::path]`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // /merchants/{id}/api-keys
        .routes(routes!(list_keys, create_key))
        // /merchants/{id}/api-keys/{key_id}
        .routes(routes!(revoke_key))
        // /merchants/{id}/api-keys/{key_id}/rotate
        .routes(routes!(rotate_key))
}
