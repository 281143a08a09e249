//! `/api/v1/admin/adjustments`: operator corrections of a card's balance (`saldo.adjust`),
//! each with a reason and an `Idempotency-Key`, posted by the ledger against its
//! `adjustments` system account and kept in an audit trail. Never a top-up: money from
//! outside enters only through a payment provider.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use proto::saldo::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views::rfc3339;
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Caller, IdempotencyKey};

/// An adjustment to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustBody {
    pub card_id: String,
    /// `credit` (onto the card) or `debit` (off it).
    pub direction: String,
    /// Minor units, in the card's currency.
    pub amount: i64,
    /// Why, for the audit trail: 10 to 500 characters.
    pub reason: String,
}

/// An adjustment in the audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdjustmentView {
    /// Also the ledger posting's id.
    pub id: String,
    pub card_id: String,
    pub direction: String,
    pub amount: i64,
    pub currency: String,
    pub reason: String,
    /// The operator's user id.
    pub requested_by: String,
    /// `posted`, `rejected`, or `requested` (the ledger has not answered; retry the key).
    pub status: String,
    /// Why the ledger refused it (`INSUFFICIENT_FUNDS`, `ACCOUNT_CLOSED`).
    pub rejection_reason: Option<String>,
    pub created_at: Option<String>,
}

impl From<pb::Adjustment> for AdjustmentView {
    fn from(a: pb::Adjustment) -> Self {
        Self {
            id: a.id,
            card_id: a.card_id,
            direction: a.direction,
            amount: a.amount,
            currency: a.currency,
            reason: a.reason,
            requested_by: a.requested_by,
            status: a.status,
            rejection_reason: (!a.rejection_reason.is_empty()).then_some(a.rejection_reason),
            created_at: rfc3339(a.created_at),
        }
    }
}

/// Which adjustments.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AdjustmentQuery {
    /// Only this card's.
    pub card_id: Option<String>,
}

/// The audit trail, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdjustmentList {
    pub items: Vec<AdjustmentView>,
}

#[utoipa::path(post, path = "/api/v1/admin/adjustments", tag = "saldo",
    params(("Idempotency-Key" = String, Header, description = "unique per adjustment")),
    request_body = AdjustBody,
    responses((status = 201, body = AdjustmentView, description = "posted"),
        (status = 422, body = AdjustmentView, description = "recorded, but the ledger refused it"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn adjust(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<AdjustBody>,
) -> Result<(StatusCode, Json<AdjustmentView>), ApiError> {
    let request = state.request(
        pb::AdjustRequest {
            card_id: body.card_id,
            direction: body.direction,
            amount: body.amount,
            reason: body.reason,
            idempotency_key: key,
        },
        Some(&caller),
    );
    let adjustment = state.saldo.clone().adjust(request).await?.into_inner();
    let status = if adjustment.status == "posted" {
        StatusCode::CREATED
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(adjustment.into())))
}

#[utoipa::path(get, path = "/api/v1/admin/adjustments", tag = "saldo", params(AdjustmentQuery),
    responses((status = 200, body = AdjustmentList), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AdjustmentQuery>,
) -> Result<Json<AdjustmentList>, ApiError> {
    let request = state.request(
        pb::ListAdjustmentsRequest {
            card_id: query.card_id.unwrap_or_default(),
        },
        Some(&caller),
    );
    let reply = state
        .saldo
        .clone()
        .list_adjustments(request)
        .await?
        .into_inner();
    Ok(Json(AdjustmentList {
        items: reply.adjustments.into_iter().map(Into::into).collect(),
    }))
}

/// This area's routes.
pub fn router() -> OpenApiRouter<AppState> {
    // /admin/adjustments
    OpenApiRouter::new().routes(routes!(adjust, list))
}
