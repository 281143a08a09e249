//! `/api/v1/saldo/*`: accounts, postings and reconciliation (admins).

use axum::Json;
use axum::extract::{Path, State};
use axum::routing::get;
use proto::saldo::v1 as pb;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::money_views::{AccountPage, AccountView, PostingView, ReconcileView};
use super::page_request;
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, Caller};

/// Query of the account list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AccountListQuery {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    /// `card`, `system` or `merchant`.
    pub kind: Option<String>,
    pub owner_user_id: Option<String>,
    /// Only balances of at least this many minor units.
    pub min_balance: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/saldo/accounts", tag = "saldo", params(AccountListQuery),
    responses((status = 200, body = AccountPage), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn accounts(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AccountListQuery>,
) -> Result<Json<AccountPage>, ApiError> {
    let kind = match query.kind.as_deref() {
        None => pb::AccountKind::Unspecified,
        Some("card") => pb::AccountKind::Card,
        Some("system") => pb::AccountKind::System,
        Some("merchant") => pb::AccountKind::Merchant,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "kind",
                "must be card, system or merchant",
            ));
        }
    };
    let request = state.request(
        pb::ListAccountsRequest {
            page: Some(page_request(query.page, query.page_size)),
            kind: kind as i32,
            owner_user_id: query.owner_user_id.unwrap_or_default(),
            min_balance: query.min_balance.unwrap_or(0),
        },
        Some(&caller),
    );
    let reply = state
        .saldo
        .clone()
        .list_accounts(request)
        .await?
        .into_inner();
    Ok(Json(AccountPage {
        items: reply.accounts.into_iter().map(AccountView::from).collect(),
        page: reply.page_info.into(),
    }))
}

#[utoipa::path(get, path = "/api/v1/saldo/postings/{id}", tag = "saldo", params(("id" = String, Path)),
    responses((status = 200, body = PostingView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn posting(
    State(state): State<AppState>,
    caller: Caller,
    Path(posting_id): Path<String>,
) -> Result<Json<PostingView>, ApiError> {
    let request = state.request(pb::PostingIdRequest { posting_id }, Some(&caller));
    Ok(Json(
        state
            .saldo
            .clone()
            .get_posting(request)
            .await?
            .into_inner()
            .into(),
    ))
}

#[utoipa::path(get, path = "/api/v1/saldo/reconcile", tag = "saldo",
    responses((status = 200, body = ReconcileView), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn reconcile(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ReconcileView>, ApiError> {
    let request = state.request(pb::ReconcileRequest {}, Some(&caller));
    Ok(Json(
        state
            .saldo
            .clone()
            .reconcile(request)
            .await?
            .into_inner()
            .into(),
    ))
}

/// This area's routes, each registered with its OpenAPI operation (its `#[utoipa::path]`),
/// and the `/api/v1/ledger/*` alias of each (same handlers, undocumented).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // /saldo/accounts
        .routes(routes!(accounts))
        // /saldo/postings/{id}
        .routes(routes!(posting))
        // /saldo/reconcile
        .routes(routes!(reconcile))
        .route("/api/v1/ledger/accounts", get(accounts))
        .route("/api/v1/ledger/postings/{id}", get(posting))
        .route("/api/v1/ledger/reconcile", get(reconcile))
}
