//! `/api/v1/merchants/*`: applications and their review, trash and restore, and a merchant's
//! settlement account (its API keys are [`super::merchant_keys`]', its documents
//! [`super::merchant_documents`]').

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use proto::merchant::v1 as pb;
use proto::saldo::v1 as saldo_pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::cards::StatementQuery;
use super::merchant_views::{MerchantPage, MerchantView};
use super::money_views::{AccountView, StatementView};
use super::views::{BulkView, rfc3339};
use super::{Lifecycle, page_request};
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Caller, timestamp_param};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    /// 2-100 characters, unique among your merchants.
    pub name: String,
    pub description: Option<String>,
    /// http(s) URL.
    pub website: Option<String>,
    /// Settlement currency (ISO 4217); payments must be in it.
    pub currency: String,
    /// Admins: apply on behalf of this user.
    pub user_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMerchantBody {
    pub name: Option<String>,
    pub description: Option<String>,
    pub website: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// `active` (approve or reactivate), `rejected` or `inactive` (deactivate).
    pub status: String,
    /// Required for `rejected` and `inactive`; sent to the owner.
    pub reason: Option<String>,
}

/// Query of the merchant list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MerchantQuery {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    /// Case-insensitive part of the name.
    pub search: Option<String>,
    /// `pending`, `active`, `rejected` or `inactive`.
    pub status: Option<String>,
    /// `active` (default), `trashed` or `all`.
    #[param(value_type = Option<String>)]
    pub lifecycle: Option<Lifecycle>,
    /// Admins: one user's merchants (default: everyone's); others: only their own.
    pub user_id: Option<String>,
}

fn merchant_status(field: &str, value: Option<&str>, any: bool) -> Result<i32, ApiError> {
    use pb::MerchantStatus;
    Ok(match value {
        None if any => MerchantStatus::Unspecified,
        Some("pending") if any => MerchantStatus::Pending,
        Some("active") => MerchantStatus::Active,
        Some("rejected") => MerchantStatus::Rejected,
        Some("inactive") => MerchantStatus::Inactive,
        _ if any => {
            return Err(ApiError::invalid_field(
                field,
                "must be pending, active, rejected or inactive",
            ));
        }
        _ => {
            return Err(ApiError::invalid_field(
                field,
                "must be active (approve or reactivate), rejected or inactive (deactivate)",
            ));
        }
    } as i32)
}

#[utoipa::path(post, path = "/api/v1/merchants", tag = "merchants", request_body = ApplyBody,
    responses((status = 201, body = MerchantView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ApplyBody>,
) -> Result<(StatusCode, Json<MerchantView>), ApiError> {
    let request = state.request(
        pb::ApplyMerchantRequest {
            user_id: body.user_id.unwrap_or_default(),
            name: body.name,
            description: body.description.unwrap_or_default(),
            website: body.website.unwrap_or_default(),
            currency: body.currency,
        },
        Some(&caller),
    );
    let merchant = state.merchants.clone().apply_merchant(request).await?;
    Ok((StatusCode::CREATED, Json(merchant.into_inner().into())))
}

#[utoipa::path(get, path = "/api/v1/merchants", tag = "merchants", params(MerchantQuery),
    responses((status = 200, body = MerchantPage), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<MerchantQuery>,
) -> Result<Json<MerchantPage>, ApiError> {
    let request = state.request(
        pb::ListMerchantsRequest {
            page: Some(page_request(query.page, query.page_size)),
            status: merchant_status("status", query.status.as_deref(), true)?,
            user_id: query.user_id.unwrap_or_default(),
            search: query.search.unwrap_or_default(),
            lifecycle: query.lifecycle.unwrap_or_default().to_proto(),
        },
        Some(&caller),
    );
    let reply = state
        .merchants
        .clone()
        .list_merchants(request)
        .await?
        .into_inner();
    Ok(Json(MerchantPage {
        items: reply.merchants.into_iter().map(Into::into).collect(),
        page: reply.page_info.into(),
    }))
}

macro_rules! merchant_by_id {
    ($name:ident, $method:ident, $path:literal, $verb:ident) => {
        #[utoipa::path($verb, path = $path, tag = "merchants", params(("id" = String, Path)),
            responses((status = 200, body = MerchantView), (status = 404, body = ErrorBody)),
            security(("bearer" = [])))]
        pub async fn $name(
            State(state): State<AppState>,
            caller: Caller,
            Path(id): Path<String>,
        ) -> Result<Json<MerchantView>, ApiError> {
            let request = state.request(pb::MerchantIdRequest { id }, Some(&caller));
            Ok(Json(
                state
                    .merchants
                    .clone()
                    .$method(request)
                    .await?
                    .into_inner()
                    .into(),
            ))
        }
    };
}

merchant_by_id!(get, get_merchant, "/api/v1/merchants/{id}", get);
merchant_by_id!(trash, trash_merchant, "/api/v1/merchants/{id}/trash", post);
merchant_by_id!(
    restore,
    restore_merchant,
    "/api/v1/merchants/{id}/restore",
    post
);

#[utoipa::path(patch, path = "/api/v1/merchants/{id}", tag = "merchants", params(("id" = String, Path)),
    request_body = UpdateMerchantBody,
    responses((status = 200, body = MerchantView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateMerchantBody>,
) -> Result<Json<MerchantView>, ApiError> {
    let request = state.request(
        pb::UpdateMerchantRequest {
            id,
            name: body.name,
            description: body.description,
            website: body.website,
        },
        Some(&caller),
    );
    Ok(Json(
        state
            .merchants
            .clone()
            .update_merchant(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/merchants/{id}/status", tag = "merchants", params(("id" = String, Path)),
    request_body = StatusBody,
    responses((status = 200, body = MerchantView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn set_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StatusBody>,
) -> Result<Json<MerchantView>, ApiError> {
    let request = state.request(
        pb::UpdateMerchantStatusRequest {
            id,
            status: merchant_status("status", Some(&body.status), false)?,
            reason: body.reason.unwrap_or_default(),
        },
        Some(&caller),
    );
    Ok(Json(
        state
            .merchants
            .clone()
            .update_merchant_status(request)
            .await?
            .into_inner()
            .into(),
    ))
}

/// A pricing plan to set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PricingBody {
    /// ISO 4217; the merchant's settlement currency is the one its payments use.
    pub currency: String,
    /// Basis points of each payment's amount (290 = 2.9 %), 0-10000; rounded half up.
    pub percent_bps: i32,
    /// Minor units per payment.
    pub fixed_fee: i64,
    /// `proportional` (default: a refund returns its share of the fee) or `none`.
    pub refund_fee: Option<String>,
}

/// What a merchant pays per payment in one currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct PricingView {
    pub merchant_id: String,
    pub currency: String,
    pub percent_bps: i32,
    pub fixed_fee: i64,
    pub refund_fee: String,
    pub updated_by: String,
    pub updated_at: Option<String>,
}

impl From<pb::PricingPlan> for PricingView {
    fn from(p: pb::PricingPlan) -> Self {
        Self {
            merchant_id: p.merchant_id,
            currency: p.currency,
            percent_bps: p.percent_bps,
            fixed_fee: p.fixed_fee,
            refund_fee: p.refund_fee,
            updated_by: p.updated_by,
            updated_at: rfc3339(p.updated_at),
        }
    }
}

/// A merchant's pricing plans, by currency (none: no fees).
#[derive(Debug, Serialize, ToSchema)]
pub struct PricingList {
    pub items: Vec<PricingView>,
}

#[utoipa::path(put, path = "/api/v1/merchants/{id}/pricing", tag = "merchants", params(("id" = String, Path)),
    request_body = PricingBody,
    responses((status = 200, body = PricingView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn set_pricing(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PricingBody>,
) -> Result<Json<PricingView>, ApiError> {
    let request = state.request(
        pb::SetPricingPlanRequest {
            merchant_id: id,
            currency: body.currency,
            percent_bps: body.percent_bps,
            fixed_fee: body.fixed_fee,
            refund_fee: body.refund_fee.unwrap_or_else(|| "proportional".to_owned()),
        },
        Some(&caller),
    );
    Ok(Json(
        state
            .merchants
            .clone()
            .set_pricing_plan(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(get, path = "/api/v1/merchants/{id}/pricing", tag = "merchants", params(("id" = String, Path)),
    responses((status = 200, body = PricingList), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn pricing(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PricingList>, ApiError> {
    let request = state.request(pb::MerchantIdRequest { id }, Some(&caller));
    let plans = state
        .merchants
        .clone()
        .list_pricing_plans(request)
        .await?
        .into_inner()
        .plans;
    Ok(Json(PricingList {
        items: plans.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/merchants/{id}", tag = "merchants", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let request = state.request(pb::MerchantIdRequest { id }, Some(&caller));
    state
        .merchants
        .clone()
        .delete_merchant_permanently(request)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/merchants/restore-all", tag = "merchants",
    responses((status = 200, body = BulkView), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn restore_all(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<BulkView>, ApiError> {
    let request = state.request(pb::BulkRequest {}, Some(&caller));
    let reply = state
        .merchants
        .clone()
        .restore_all_merchants(request)
        .await?
        .into_inner();
    Ok(Json(BulkView {
        affected: reply.affected,
    }))
}

#[utoipa::path(delete, path = "/api/v1/merchants/trash", tag = "merchants",
    responses((status = 200, body = BulkView), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete_all_trashed(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<BulkView>, ApiError> {
    let request = state.request(pb::BulkRequest {}, Some(&caller));
    let reply = state
        .merchants
        .clone()
        .delete_all_trashed_merchants(request)
        .await?
        .into_inner();
    Ok(Json(BulkView {
        affected: reply.affected,
    }))
}

#[utoipa::path(get, path = "/api/v1/merchants/{id}/balance", tag = "merchants", params(("id" = String, Path)),
    responses((status = 200, body = AccountView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn balance(
    State(state): State<AppState>,
    caller: Caller,
    Path(merchant_id): Path<String>,
) -> Result<Json<AccountView>, ApiError> {
    let request = state.request(
        saldo_pb::MerchantAccountRequest { merchant_id },
        Some(&caller),
    );
    Ok(Json(
        state
            .saldo
            .clone()
            .get_merchant_account(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(get, path = "/api/v1/merchants/{id}/statement", tag = "merchants",
    params(("id" = String, Path), StatementQuery),
    responses((status = 200, body = StatementView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn statement(
    State(state): State<AppState>,
    caller: Caller,
    Path(merchant_id): Path<String>,
    ApiQuery(query): ApiQuery<StatementQuery>,
) -> Result<Json<StatementView>, ApiError> {
    let request = state.request(
        saldo_pb::StatementRequest {
            card_id: String::new(),
            merchant_id,
            page: Some(page_request(query.page, query.page_size)),
            from: timestamp_param("from", query.from.as_deref())?,
            to: timestamp_param("to", query.to.as_deref())?,
        },
        Some(&caller),
    );
    Ok(Json(
        state
            .saldo
            .clone()
            .get_statement(request)
            .await?
            .into_inner()
            .into(),
    ))
}

/// This area's routes, each registered with its OpenAPI operation (its `#[utoipa::path]`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // /merchants
        .routes(routes!(list, apply))
        // /merchants/restore-all
        .routes(routes!(restore_all))
        // /merchants/trash
        .routes(routes!(delete_all_trashed))
        // /merchants/{id}
        .routes(routes!(get, update, delete))
        // /merchants/{id}/status
        .routes(routes!(set_status))
        // /merchants/{id}/trash
        .routes(routes!(trash))
        // /merchants/{id}/restore
        .routes(routes!(restore))
        // /merchants/{id}/balance
        .routes(routes!(balance))
        // /merchants/{id}/statement
        .routes(routes!(statement))
        // /merchants/{id}/pricing
        .routes(routes!(pricing, set_pricing))
}
