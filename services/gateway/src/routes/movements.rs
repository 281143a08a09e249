//! `/api/v1/topups`, `/api/v1/withdraws`, `/api/v1/transfers` and the per-card views of them.
//! Creating one needs an `Idempotency-Key` header: the same key with the same body returns
//! the original response, with a different body 422, while the first is running 409.
//! Completed movements are immutable, so there is no update or delete route.
//!
//! Why one file of ~420 lines: the three movement kinds share every handler shape (create with
//! `Idempotency-Key`, get, list, per-card list); one generic set serves all three.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::money_views::{CardMovementPage, CardMovementView, TransferPage, TransferView};
use super::page_request;
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Caller, IdempotencyKey, timestamp_param};

pub(crate) fn status_filter(value: Option<&str>) -> Result<i32, ApiError> {
    use proto::common::v1::MovementStatus;
    Ok(match value {
        None => MovementStatus::Unspecified,
        Some("pending") => MovementStatus::Pending,
        Some("succeeded") => MovementStatus::Succeeded,
        Some("failed") => MovementStatus::Failed,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "status",
                "must be pending, succeeded or failed",
            ));
        }
    } as i32)
}

/// Body of a top-up or withdraw.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardMovementBody {
    /// The 16-digit card number.
    pub card_number: String,
    /// Minor units (e.g. cents), positive and within the configured limits.
    pub amount: i64,
    /// A known method, e.g. bca, mandiri, gopay, ovo, visa.
    pub method: String,
}

/// Body of a transfer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// Your card.
    pub from_card_number: String,
    /// The receiving card (any user's, same currency).
    pub to_card_number: String,
    /// Minor units, positive and within the configured limits.
    pub amount: i64,
}

/// Query of top-up and withdraw lists.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CardMovementQuery {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    /// pending, succeeded or failed.
    pub status: Option<String>,
    /// RFC 3339, inclusive.
    pub from: Option<String>,
    /// RFC 3339, exclusive.
    pub to: Option<String>,
    pub card_id: Option<String>,
    /// Admins: one user's.
    pub user_id: Option<String>,
    pub method: Option<String>,
}

/// Query of transfer lists.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TransferQuery {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    /// pending, succeeded or failed.
    pub status: Option<String>,
    /// RFC 3339, inclusive.
    pub from: Option<String>,
    /// RFC 3339, exclusive.
    pub to: Option<String>,
    pub card_id: Option<String>,
    /// Admins: one user's.
    pub user_id: Option<String>,
    /// With card_id: `outgoing` or `incoming` (default both).
    pub direction: Option<String>,
}

/// A provider-backed movement still waiting for its provider is accepted (202); one it
/// decided at once is created (201).
fn created_status(status: i32) -> StatusCode {
    if status == proto::common::v1::MovementStatus::Pending as i32 {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    }
}

fn direction(value: Option<&str>) -> Result<i32, ApiError> {
    use proto::transfer::v1::Direction;
    Ok(match value {
        None => Direction::Unspecified,
        Some("outgoing") => Direction::Outgoing,
        Some("incoming") => Direction::Incoming,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "direction",
                "must be outgoing or incoming",
            ));
        }
    } as i32)
}

/// A top-up is a charge at the payment provider of the method's route: `202` with status
/// `pending` until the provider confirms (then `succeeded`, booked) or declines (`failed`,
/// `PROVIDER_DECLINED` with the provider's code); `201` if it decided at once. `503
/// PROVIDER_UNAVAILABLE` (with `Retry-After`) when no provider can take it: nothing was
/// charged, retry with the same key.
#[utoipa::path(post, path = "/api/v1/topups", tag = "topups", request_body = CardMovementBody,
    params(("Idempotency-Key" = String, Header, description = "unique per topup")),
    responses((status = 202, body = CardMovementView), (status = 201, body = CardMovementView),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_topup(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<CardMovementBody>,
) -> Result<(StatusCode, Json<CardMovementView>), ApiError> {
    let request = state.request(
        proto::topup::v1::CreateTopupRequest {
            idempotency_key: key,
            card_number: body.card_number,
            method: body.method,
            amount: body.amount,
            // backdating is for import tools over gRPC, not for HTTP callers
            effective_at: None,
        },
        Some(&caller),
    );
    let created = state
        .topups
        .clone()
        .create_topup(request)
        .await?
        .into_inner();
    Ok((created_status(created.status), Json(created.into())))
}

#[utoipa::path(get, path = "/api/v1/topups/{id}", tag = "topups", params(("id" = String, Path)),
    responses((status = 200, body = CardMovementView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_topup(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CardMovementView>, ApiError> {
    let request = state.request(proto::topup::v1::TopupIdRequest { id }, Some(&caller));
    Ok(Json(
        state
            .topups
            .clone()
            .get_topup(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(get, path = "/api/v1/topups", tag = "topups", params(CardMovementQuery),
    responses((status = 200, body = CardMovementPage), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_topups(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<CardMovementQuery>,
) -> Result<Json<CardMovementPage>, ApiError> {
    let request = state.request(
        proto::topup::v1::ListTopupsRequest {
            page: Some(page_request(query.page, query.page_size)),
            status: status_filter(query.status.as_deref())?,
            from: timestamp_param("from", query.from.as_deref())?,
            to: timestamp_param("to", query.to.as_deref())?,
            card_id: query.card_id.unwrap_or_default(),
            user_id: query.user_id.unwrap_or_default(),
            method: query.method.unwrap_or_default(),
        },
        Some(&caller),
    );
    let reply = state
        .topups
        .clone()
        .list_topups(request)
        .await?
        .into_inner();
    Ok(Json(CardMovementPage {
        items: reply
            .topups
            .into_iter()
            .map(CardMovementView::from)
            .collect(),
        page: reply.page_info.into(),
    }))
}

#[utoipa::path(get, path = "/api/v1/cards/{id}/topups", tag = "topups", params(("id" = String, Path), CardMovementQuery),
    responses((status = 200, body = CardMovementPage), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn card_topups(
    state: State<AppState>,
    caller: Caller,
    Path(card_id): Path<String>,
    ApiQuery(mut query): ApiQuery<CardMovementQuery>,
) -> Result<Json<CardMovementPage>, ApiError> {
    query.card_id = Some(card_id);
    list_topups(state, caller, ApiQuery(query)).await
}

/// A withdrawal is a payout at the payment provider of the method's route. The amount leaves
/// the card at once (held in transit, so it cannot be spent twice): `202` with status
/// `pending`; then `succeeded` when the provider paid it out, or `failed`
/// (`PROVIDER_DECLINED` with the provider's code) with the amount back on the card. `422
/// INSUFFICIENT_FUNDS` holds nothing; `422 PROVIDER_UNAVAILABLE` when no provider could take
/// it (the amount is back on the card).
#[utoipa::path(post, path = "/api/v1/withdraws", tag = "withdraws", request_body = CardMovementBody,
    params(("Idempotency-Key" = String, Header, description = "unique per withdraw")),
    responses((status = 202, body = CardMovementView), (status = 201, body = CardMovementView),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_withdraw(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<CardMovementBody>,
) -> Result<(StatusCode, Json<CardMovementView>), ApiError> {
    let request = state.request(
        proto::withdraw::v1::CreateWithdrawRequest {
            idempotency_key: key,
            card_number: body.card_number,
            method: body.method,
            amount: body.amount,
            // backdating is for import tools over gRPC, not for HTTP callers
            effective_at: None,
        },
        Some(&caller),
    );
    let created = state
        .withdraws
        .clone()
        .create_withdraw(request)
        .await?
        .into_inner();
    Ok((created_status(created.status), Json(created.into())))
}

#[utoipa::path(get, path = "/api/v1/withdraws/{id}", tag = "withdraws", params(("id" = String, Path)),
    responses((status = 200, body = CardMovementView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_withdraw(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CardMovementView>, ApiError> {
    let request = state.request(proto::withdraw::v1::WithdrawIdRequest { id }, Some(&caller));
    Ok(Json(
        state
            .withdraws
            .clone()
            .get_withdraw(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(get, path = "/api/v1/withdraws", tag = "withdraws", params(CardMovementQuery),
    responses((status = 200, body = CardMovementPage), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_withdraws(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<CardMovementQuery>,
) -> Result<Json<CardMovementPage>, ApiError> {
    let request = state.request(
        proto::withdraw::v1::ListWithdrawsRequest {
            page: Some(page_request(query.page, query.page_size)),
            status: status_filter(query.status.as_deref())?,
            from: timestamp_param("from", query.from.as_deref())?,
            to: timestamp_param("to", query.to.as_deref())?,
            card_id: query.card_id.unwrap_or_default(),
            user_id: query.user_id.unwrap_or_default(),
            method: query.method.unwrap_or_default(),
        },
        Some(&caller),
    );
    let reply = state
        .withdraws
        .clone()
        .list_withdraws(request)
        .await?
        .into_inner();
    Ok(Json(CardMovementPage {
        items: reply
            .withdraws
            .into_iter()
            .map(CardMovementView::from)
            .collect(),
        page: reply.page_info.into(),
    }))
}

#[utoipa::path(get, path = "/api/v1/cards/{id}/withdraws", tag = "withdraws", params(("id" = String, Path), CardMovementQuery),
    responses((status = 200, body = CardMovementPage), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn card_withdraws(
    state: State<AppState>,
    caller: Caller,
    Path(card_id): Path<String>,
    ApiQuery(mut query): ApiQuery<CardMovementQuery>,
) -> Result<Json<CardMovementPage>, ApiError> {
    query.card_id = Some(card_id);
    list_withdraws(state, caller, ApiQuery(query)).await
}

#[utoipa::path(post, path = "/api/v1/transfers", tag = "transfers", request_body = TransferBody,
    params(("Idempotency-Key" = String, Header, description = "unique per transfer")),
    responses((status = 201, body = TransferView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_transfer(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<TransferBody>,
) -> Result<(StatusCode, Json<TransferView>), ApiError> {
    let request = state.request(
        proto::transfer::v1::CreateTransferRequest {
            idempotency_key: key,
            from_card_number: body.from_card_number,
            to_card_number: body.to_card_number,
            amount: body.amount,
            // backdating is for import tools over gRPC, not for HTTP callers
            effective_at: None,
        },
        Some(&caller),
    );
    let created = state
        .transfers
        .clone()
        .create_transfer(request)
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(created.into())))
}

#[utoipa::path(get, path = "/api/v1/transfers/{id}", tag = "transfers", params(("id" = String, Path)),
    responses((status = 200, body = TransferView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_transfer(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TransferView>, ApiError> {
    let request = state.request(proto::transfer::v1::TransferIdRequest { id }, Some(&caller));
    Ok(Json(
        state
            .transfers
            .clone()
            .get_transfer(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(get, path = "/api/v1/transfers", tag = "transfers", params(TransferQuery),
    responses((status = 200, body = TransferPage), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_transfers(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<TransferQuery>,
) -> Result<Json<TransferPage>, ApiError> {
    let request = state.request(
        proto::transfer::v1::ListTransfersRequest {
            page: Some(page_request(query.page, query.page_size)),
            status: status_filter(query.status.as_deref())?,
            from: timestamp_param("from", query.from.as_deref())?,
            to: timestamp_param("to", query.to.as_deref())?,
            card_id: query.card_id.unwrap_or_default(),
            user_id: query.user_id.unwrap_or_default(),
            direction: direction(query.direction.as_deref())?,
        },
        Some(&caller),
    );
    let reply = state
        .transfers
        .clone()
        .list_transfers(request)
        .await?
        .into_inner();
    Ok(Json(TransferPage {
        items: reply
            .transfers
            .into_iter()
            .map(TransferView::from)
            .collect(),
        page: reply.page_info.into(),
    }))
}

#[utoipa::path(get, path = "/api/v1/cards/{id}/transfers", tag = "transfers", params(("id" = String, Path), TransferQuery),
    responses((status = 200, body = TransferPage), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn card_transfers(
    state: State<AppState>,
    caller: Caller,
    Path(card_id): Path<String>,
    ApiQuery(mut query): ApiQuery<TransferQuery>,
) -> Result<Json<TransferPage>, ApiError> {
    query.card_id = Some(card_id);
    list_transfers(state, caller, ApiQuery(query)).await
}

/// This area's routes, each registered with its OpenAPI operation (its `#[utoipa::path]`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // /cards/{id}/topups
        .routes(routes!(card_topups))
        // /cards/{id}/withdraws
        .routes(routes!(card_withdraws))
        // /cards/{id}/transfers
        .routes(routes!(card_transfers))
        // /topups
        .routes(routes!(list_topups, create_topup))
        // /topups/{id}
        .routes(routes!(get_topup))
        // /withdraws
        .routes(routes!(list_withdraws, create_withdraw))
        // /withdraws/{id}
        .routes(routes!(get_withdraw))
        // /transfers
        .routes(routes!(list_transfers, create_transfer))
        // /transfers/{id}
        .routes(routes!(get_transfer))
}
