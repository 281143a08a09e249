//! `POST /api/v1/provider-callbacks/{provider}/{topups|withdraws}`: where payment providers
//! deliver their outcomes. No bearer token: the provider's signature over the exact body is
//! the authentication, verified by the service that owns the operation with that provider's
//! webhook secret (the gateway holds no provider secret). Answers as providers expect: 200
//! for an applied, duplicate or ignored event (so they stop retrying), 401 for a bad
//! signature, 400 for a stale one.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use proto::provider::v1 as pb;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// The receipt of a callback.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallbackReceipt {
    /// `applied`, `duplicate` or `ignored`.
    pub outcome: String,
}

/// Where every provider callback route starts (the rate limiter gives them their own bucket).
pub const PATH_PREFIX: &str = "/api/v1/provider-callbacks/";

/// Headers never passed on (they authenticate nothing here and may carry secrets).
const DROPPED: &[&str] = &["authorization", "cookie", "x-api-key"];

#[utoipa::path(post, path = "/api/v1/provider-callbacks/{provider}/{operations}",
    tag = "providers",
    params(("provider" = String, Path, description = "our name of the provider"),
           ("operations" = String, Path, description = "`topups` or `withdraws`")),
    request_body(content = String, content_type = "application/json",
        description = "the provider's event, signed (the sandbox: `Sandbox-Signature: t=…,v1=…`)"),
    responses((status = 200, body = CallbackReceipt), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn receive(
    State(state): State<AppState>,
    Path((provider, operations)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CallbackReceipt>, ApiError> {
    let headers: HashMap<String, String> = headers
        .iter()
        .filter(|(name, _)| !DROPPED.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let request = pb::ProviderCallback {
        provider,
        headers,
        body: body.to_vec(),
    };
    let receipt = match operations.as_str() {
        "topups" => state.topup_callbacks.clone().receive(request).await?,
        "withdraws" => state.withdraw_callbacks.clone().receive(request).await?,
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "NOT_FOUND",
                "no such callback endpoint: operations are `topups` or `withdraws`",
            ));
        }
    };
    Ok(Json(CallbackReceipt {
        outcome: receipt.into_inner().outcome,
    }))
}

/// This area's routes, each registered with its OpenAPI operation.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(receive))
}
