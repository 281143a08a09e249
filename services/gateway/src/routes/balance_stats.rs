//! `/api/v1/stats/balances/*`: balances at the end of each month or year, of one card's
//! account, one merchant's settlement account or every card account, answered by the saldo
//! service from its balance rollup.

use axum::Json;
use axum::extract::State;
use proto::stats::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::stats::total;
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, Caller};

/// Query of the balance statistics.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BalanceQuery {
    pub year: i32,
    /// `monthly-total`: the month (1-12).
    pub month: Option<u32>,
    /// One card's account (its owner or `saldo.read`); default: every card account.
    pub card_id: Option<String>,
    /// A merchant's settlement account (its owner or `saldo.read`).
    pub merchant_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BalancePeriodView {
    /// The month (1-12) or the year.
    pub period: i32,
    /// The balance at its end.
    pub balance: i64,
    /// Postings in it.
    pub postings: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BalancePeriodsView {
    pub items: Vec<BalancePeriodView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceComparisonView {
    /// The balance at the end of the requested month or year.
    pub current: i64,
    /// At the end of the one before.
    pub previous: i64,
}

fn balance_request(q: &BalanceQuery) -> Result<pb::StatsRequest, ApiError> {
    let (scope, id) = match (&q.card_id, &q.merchant_id) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_field(
                "card_id",
                "give card_id or merchant_id, not both",
            ));
        }
        (Some(id), None) => (pb::Scope::Card, id.clone()),
        (None, Some(id)) => (pb::Scope::Merchant, id.clone()),
        (None, None) => (pb::Scope::All, String::new()),
    };
    Ok(pb::StatsRequest {
        scope: scope as i32,
        scope_id: id,
        year: q.year,
        month: q.month.unwrap_or(0),
        failed: false,
    })
}

#[utoipa::path(get, path = "/api/v1/stats/balances/monthly", tag = "statistics", params(BalanceQuery),
    responses((status = 200, body = BalancePeriodsView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn monthly_balances(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<BalanceQuery>,
) -> Result<Json<BalancePeriodsView>, ApiError> {
    let request = state.request(balance_request(&query)?, Some(&caller));
    let reply = state
        .saldo_stats
        .clone()
        .monthly_balances(request)
        .await?
        .into_inner();
    Ok(Json(BalancePeriodsView {
        items: reply
            .months
            .into_iter()
            .map(|m| {
                let t = total(m.total);
                BalancePeriodView {
                    period: i32::try_from(m.month).unwrap_or(0),
                    balance: t.amount,
                    postings: t.count,
                }
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/stats/balances/yearly", tag = "statistics", params(BalanceQuery),
    responses((status = 200, body = BalancePeriodsView), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn yearly_balances(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<BalanceQuery>,
) -> Result<Json<BalancePeriodsView>, ApiError> {
    let request = state.request(balance_request(&query)?, Some(&caller));
    let reply = state
        .saldo_stats
        .clone()
        .yearly_balances(request)
        .await?
        .into_inner();
    Ok(Json(BalancePeriodsView {
        items: reply
            .years
            .into_iter()
            .map(|y| {
                let t = total(y.total);
                BalancePeriodView {
                    period: y.year,
                    balance: t.amount,
                    postings: t.count,
                }
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/stats/balances/monthly-total", tag = "statistics", params(BalanceQuery),
    responses((status = 200, body = BalanceComparisonView), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn monthly_total_balance(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<BalanceQuery>,
) -> Result<Json<BalanceComparisonView>, ApiError> {
    let request = state.request(balance_request(&query)?, Some(&caller));
    let reply = state
        .saldo_stats
        .clone()
        .monthly_total_balance(request)
        .await?
        .into_inner();
    Ok(Json(BalanceComparisonView {
        current: reply.current,
        previous: reply.previous,
    }))
}

#[utoipa::path(get, path = "/api/v1/stats/balances/yearly-total", tag = "statistics", params(BalanceQuery),
    responses((status = 200, body = BalanceComparisonView), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn yearly_total_balance(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<BalanceQuery>,
) -> Result<Json<BalanceComparisonView>, ApiError> {
    let request = state.request(balance_request(&query)?, Some(&caller));
    let reply = state
        .saldo_stats
        .clone()
        .yearly_total_balance(request)
        .await?
        .into_inner();
    Ok(Json(BalanceComparisonView {
        current: reply.current,
        previous: reply.previous,
    }))
}

/// This area's routes, each registered with its OpenAPI operation (its `#[utoipa::path]`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // /stats/balances/monthly
        .routes(routes!(monthly_balances))
        // /stats/balances/yearly
        .routes(routes!(yearly_balances))
        // /stats/balances/monthly-total
        .routes(routes!(monthly_total_balance))
        // /stats/balances/yearly-total
        .routes(routes!(yearly_total_balance))
}
