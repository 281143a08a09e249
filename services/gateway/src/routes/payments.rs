//! `/api/v1/payments/*`: merchant payments and refunds. A merchant calls with `X-Api-Key`
//! (and an `Idempotency-Key` to create); a user with an access token reads the payments of
//! their cards or merchants, and an admin reads all and may refund. A payment created with
//! `"capture": false` is an authorization: the merchant captures (`/capture`, in full or in
//! part) or voids (`/void`) it, the customer cancels it (`/cancel`), or it expires. Captured
//! money goes back only through refunds.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use proto::transaction::v1 as pb;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::merchant_views::{PaymentPage, PaymentView, RefundPage, RefundView};
use super::movements::status_filter;
use super::page_request;
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{
    ApiJson, ApiQuery, IdempotencyKey, OptionalApiJson, PaymentCaller, timestamp_param,
};

/// Body of a payment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentBody {
    /// The customer's 16-digit card number.
    pub card_number: String,
    /// The card's CVV: the customer's consent. Checked, never stored; repeated mismatches
    /// lock the card for payments.
    pub cvv: String,
    /// Minor units, in the merchant's settlement currency.
    pub amount: i64,
    /// e.g. visa, mastercard, gopay.
    pub method: String,
    /// Shown to the customer (at most 255 characters).
    pub description: Option<String>,
    /// Default true: charge the card now. false: only authorize — the amount is held on the
    /// card until the merchant captures it (`POST /payments/{id}/capture`), voids it, the
    /// customer cancels it, or it expires (PAYMENT_AUTHORIZATION_TTL_SECS, default 7 days).
    pub capture: Option<bool>,
}

/// Body of a capture.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureBody {
    /// Minor units, at most the authorized amount; absent = all of it. The rest of the hold
    /// is released.
    pub amount: Option<i64>,
}

/// Body of a refund.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// Minor units; together with earlier refunds at most the payment's amount.
    pub amount: i64,
    /// Shown to the customer.
    pub reason: Option<String>,
}

/// Query of payment lists.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PaymentQuery {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    /// `pending`, `succeeded` or `failed`.
    pub status: Option<String>,
    /// RFC 3339, inclusive.
    pub from: Option<String>,
    /// RFC 3339, exclusive.
    pub to: Option<String>,
    pub card_id: Option<String>,
    /// A merchant you own (admins: any).
    pub merchant_id: Option<String>,
    /// Payments made with one API key.
    pub api_key_id: Option<String>,
    /// Admins: one card owner's payments.
    pub user_id: Option<String>,
    pub method: Option<String>,
}

/// Query of refund lists.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RefundQuery {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    /// `pending`, `succeeded` or `failed`.
    pub status: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/payments", tag = "payments", request_body = PaymentBody,
    params(("X-Api-Key" = String, Header, description = "the merchant's API key"),
        ("Idempotency-Key" = String, Header, description = "unique per payment")),
    responses((status = 201, body = PaymentView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create_payment(
    State(state): State<AppState>,
    caller: PaymentCaller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<PaymentBody>,
) -> Result<(StatusCode, Json<PaymentView>), ApiError> {
    let request = state.request(
        pb::CreatePaymentRequest {
            api_key: caller.api_key(),
            idempotency_key: key,
            card_number: body.card_number,
            cvv: body.cvv,
            amount: body.amount,
            method: body.method,
            description: body.description.unwrap_or_default(),
            capture_method: if body.capture.unwrap_or(true) {
                "automatic"
            } else {
                "manual"
            }
            .to_owned(),
            // backdating is for import tools over gRPC, not for HTTP callers
            effective_at: None,
        },
        caller.user(),
    );
    let payment = state.transactions.clone().create_payment(request).await?;
    Ok((StatusCode::CREATED, Json(payment.into_inner().into())))
}

#[utoipa::path(get, path = "/api/v1/payments/{id}", tag = "payments", params(("id" = String, Path)),
    responses((status = 200, body = PaymentView), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn get_payment(
    State(state): State<AppState>,
    caller: PaymentCaller,
    Path(id): Path<String>,
) -> Result<Json<PaymentView>, ApiError> {
    let request = state.request(
        pb::GetPaymentRequest {
            id,
            api_key: caller.api_key(),
        },
        caller.user(),
    );
    Ok(Json(
        state
            .transactions
            .clone()
            .get_payment(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/payments/{id}/capture", tag = "payments",
    params(("id" = String, Path), ("X-Api-Key" = String, Header, description = "the merchant's API key"),
        ("Idempotency-Key" = String, Header, description = "unique per capture; a retry answers with the same capture")),
    request_body = CaptureBody,
    responses((status = 200, body = PaymentView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn capture_payment(
    State(state): State<AppState>,
    caller: PaymentCaller,
    Path(payment_id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    OptionalApiJson(body): OptionalApiJson<CaptureBody>,
) -> Result<Json<PaymentView>, ApiError> {
    if body.amount.is_some_and(|a| a <= 0) {
        return Err(ApiError::invalid_field(
            "amount",
            "must be a positive number of minor units (or absent: the whole authorization)",
        ));
    }
    let request = state.request(
        pb::CapturePaymentRequest {
            api_key: caller.api_key(),
            idempotency_key: key,
            payment_id,
            amount: body.amount.unwrap_or(0),
        },
        caller.user(),
    );
    let payment = state.transactions.clone().capture_payment(request).await?;
    Ok(Json(payment.into_inner().into()))
}

#[utoipa::path(post, path = "/api/v1/payments/{id}/void", tag = "payments",
    params(("id" = String, Path), ("X-Api-Key" = String, Header, description = "the merchant's API key")),
    responses((status = 200, body = PaymentView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn void_payment(
    State(state): State<AppState>,
    caller: PaymentCaller,
    Path(payment_id): Path<String>,
) -> Result<Json<PaymentView>, ApiError> {
    release(&state, &caller, payment_id, Release::Void).await
}

#[utoipa::path(post, path = "/api/v1/payments/{id}/cancel", tag = "payments",
    params(("id" = String, Path)),
    responses((status = 200, body = PaymentView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel_payment(
    State(state): State<AppState>,
    caller: PaymentCaller,
    Path(payment_id): Path<String>,
) -> Result<Json<PaymentView>, ApiError> {
    release(&state, &caller, payment_id, Release::Cancel).await
}

/// How an authorization is released without a capture.
enum Release {
    Void,
    Cancel,
}

async fn release(
    state: &AppState,
    caller: &PaymentCaller,
    payment_id: String,
    how: Release,
) -> Result<Json<PaymentView>, ApiError> {
    let request = state.request(
        pb::PaymentActionRequest {
            api_key: caller.api_key(),
            payment_id,
        },
        caller.user(),
    );
    let mut transactions = state.transactions.clone();
    let payment = match how {
        Release::Void => transactions.void_payment(request).await?,
        Release::Cancel => transactions.cancel_payment(request).await?,
    };
    Ok(Json(payment.into_inner().into()))
}

async fn payments_page(
    state: &AppState,
    caller: &PaymentCaller,
    query: PaymentQuery,
    card_id: Option<String>,
    merchant_id: Option<String>,
) -> Result<Json<PaymentPage>, ApiError> {
    let request = state.request(
        pb::ListPaymentsRequest {
            page: Some(page_request(query.page, query.page_size)),
            api_key: caller.api_key(),
            status: status_filter(query.status.as_deref())?,
            from: timestamp_param("from", query.from.as_deref())?,
            to: timestamp_param("to", query.to.as_deref())?,
            card_id: card_id.or(query.card_id).unwrap_or_default(),
            merchant_id: merchant_id.or(query.merchant_id).unwrap_or_default(),
            api_key_id: query.api_key_id.unwrap_or_default(),
            user_id: query.user_id.unwrap_or_default(),
            method: query.method.unwrap_or_default(),
        },
        caller.user(),
    );
    let reply = state
        .transactions
        .clone()
        .list_payments(request)
        .await?
        .into_inner();
    Ok(Json(PaymentPage {
        items: reply.payments.into_iter().map(Into::into).collect(),
        page: reply.page_info.into(),
    }))
}

#[utoipa::path(get, path = "/api/v1/payments", tag = "payments", params(PaymentQuery),
    responses((status = 200, body = PaymentPage), (status = 400, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list_payments(
    State(state): State<AppState>,
    caller: PaymentCaller,
    ApiQuery(query): ApiQuery<PaymentQuery>,
) -> Result<Json<PaymentPage>, ApiError> {
    payments_page(&state, &caller, query, None, None).await
}

#[utoipa::path(get, path = "/api/v1/cards/{id}/payments", tag = "payments",
    params(("id" = String, Path), PaymentQuery),
    responses((status = 200, body = PaymentPage), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn card_payments(
    State(state): State<AppState>,
    caller: PaymentCaller,
    Path(card_id): Path<String>,
    ApiQuery(query): ApiQuery<PaymentQuery>,
) -> Result<Json<PaymentPage>, ApiError> {
    payments_page(&state, &caller, query, Some(card_id), None).await
}

#[utoipa::path(get, path = "/api/v1/merchants/{id}/payments", tag = "payments",
    params(("id" = String, Path), PaymentQuery),
    responses((status = 200, body = PaymentPage), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn merchant_payments(
    State(state): State<AppState>,
    caller: PaymentCaller,
    Path(merchant_id): Path<String>,
    ApiQuery(query): ApiQuery<PaymentQuery>,
) -> Result<Json<PaymentPage>, ApiError> {
    payments_page(&state, &caller, query, None, Some(merchant_id)).await
}

#[utoipa::path(post, path = "/api/v1/payments/{id}/refunds", tag = "payments", params(("id" = String, Path),
        ("Idempotency-Key" = String, Header, description = "unique per refund")),
    request_body = RefundBody,
    responses((status = 201, body = RefundView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
pub async fn create_refund(
    State(state): State<AppState>,
    caller: PaymentCaller,
    Path(payment_id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<RefundBody>,
) -> Result<(StatusCode, Json<RefundView>), ApiError> {
    let request = state.request(
        pb::CreateRefundRequest {
            api_key: caller.api_key(),
            idempotency_key: key,
            payment_id,
            amount: body.amount,
            reason: body.reason.unwrap_or_default(),
            // backdating is for import tools over gRPC, not for HTTP callers
            effective_at: None,
        },
        caller.user(),
    );
    let refund = state.transactions.clone().create_refund(request).await?;
    Ok((StatusCode::CREATED, Json(refund.into_inner().into())))
}

async fn refunds_page(
    state: &AppState,
    caller: &PaymentCaller,
    payment_id: String,
    query: RefundQuery,
) -> Result<Json<RefundPage>, ApiError> {
    let request = state.request(
        pb::ListRefundsRequest {
            page: Some(page_request(query.page, query.page_size)),
            api_key: caller.api_key(),
            payment_id,
            status: status_filter(query.status.as_deref())?,
        },
        caller.user(),
    );
    let reply = state
        .transactions
        .clone()
        .list_refunds(request)
        .await?
        .into_inner();
    Ok(Json(RefundPage {
        items: reply.refunds.into_iter().map(Into::into).collect(),
        page: reply.page_info.into(),
    }))
}

#[utoipa::path(get, path = "/api/v1/payments/{id}/refunds", tag = "payments",
    params(("id" = String, Path), RefundQuery),
    responses((status = 200, body = RefundPage), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn payment_refunds(
    State(state): State<AppState>,
    caller: PaymentCaller,
    Path(payment_id): Path<String>,
    ApiQuery(query): ApiQuery<RefundQuery>,
) -> Result<Json<RefundPage>, ApiError> {
    refunds_page(&state, &caller, payment_id, query).await
}

#[utoipa::path(get, path = "/api/v1/refunds", tag = "payments", params(RefundQuery),
    responses((status = 200, body = RefundPage), (status = 403, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list_refunds(
    State(state): State<AppState>,
    caller: PaymentCaller,
    ApiQuery(query): ApiQuery<RefundQuery>,
) -> Result<Json<RefundPage>, ApiError> {
    refunds_page(&state, &caller, String::new(), query).await
}

#[utoipa::path(get, path = "/api/v1/refunds/{id}", tag = "payments", params(("id" = String, Path)),
    responses((status = 200, body = RefundView), (status = 404, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn get_refund(
    State(state): State<AppState>,
    caller: PaymentCaller,
    Path(id): Path<String>,
) -> Result<Json<RefundView>, ApiError> {
    let request = state.request(
        pb::GetRefundRequest {
            id,
            api_key: caller.api_key(),
        },
        caller.user(),
    );
    Ok(Json(
        state
            .transactions
            .clone()
            .get_refund(request)
            .await?
            .into_inner()
            .into(),
    ))
}

/// This area's routes, each registered with its OpenAPI operation (its `#[utoipa::path]`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // /merchants/{id}/payments
        .routes(routes!(merchant_payments))
        // /payments
        .routes(routes!(list_payments, create_payment))
        // /payments/{id}
        .routes(routes!(get_payment))
        // /payments/{id}/refunds
        .routes(routes!(payment_refunds, create_refund))
        // /payments/{id}/capture, /void, /cancel
        .routes(routes!(capture_payment))
        .routes(routes!(void_payment))
        .routes(routes!(cancel_payment))
        // /refunds
        .routes(routes!(list_refunds))
        // /refunds/{id}
        .routes(routes!(get_refund))
        // /cards/{id}/payments
        .routes(routes!(card_payments))
}
