//! `/api/v1/stats/{kind}/…`: statistics of top-ups, withdraws, transfers and payments,
//! answered by each service from the rollups its consumers keep (calendar months and years in
//! the service's STATS_TIMEZONE). Without a scope they cover everything (`<kind>.read`); with
//! `card_id`, one card (its owner or `<kind>.read`; transfers also by receiving card,
//! `direction=received`); payments also per merchant (`merchant_id`) and per API key
//! (`api_key_id`), for the merchant's owner. Balances are [`super::balance_stats`]', the
//! card dashboard [`super::dashboard`]'s.
//!
//! Why one file of ~400 lines: the four kinds share one set of handlers and query types, most of
//! it OpenAPI annotations.

use axum::Json;
use axum::extract::{Path, State};
use proto::stats::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, Caller};

/// Query of every statistics route.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// The year (monthly: its 12 months; yearly: it and the four before).
    pub year: i32,
    /// Monthly status: the month (1-12), compared with the one before.
    pub month: Option<u32>,
    /// One card's statistics.
    pub card_id: Option<String>,
    /// Transfers with `card_id`: `sent` (default) or `received`.
    pub direction: Option<String>,
    /// Payments: one merchant's.
    pub merchant_id: Option<String>,
    /// Payments: those made with one API key.
    pub api_key_id: Option<String>,
    /// Amounts and methods: `succeeded` (default) or `failed`.
    pub status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotalView {
    pub count: i64,
    pub amount: i64,
}

pub(super) fn total(t: Option<pb::Total>) -> TotalView {
    let t = t.unwrap_or_default();
    TotalView {
        count: t.count,
        amount: t.amount,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PeriodView {
    /// The month (1-12) or the year.
    pub period: i32,
    pub count: i64,
    pub amount: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PeriodsView {
    pub items: Vec<PeriodView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MethodView {
    /// The month (1-12) or the year.
    pub period: i32,
    pub method: String,
    pub count: i64,
    pub amount: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MethodsView {
    pub items: Vec<MethodView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusView {
    pub succeeded: TotalView,
    pub failed: TotalView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusComparisonView {
    /// The requested month or year.
    pub current: StatusView,
    /// The one before.
    pub previous: StatusView,
}

fn status_view(s: Option<pb::StatusTotals>) -> StatusView {
    let s = s.unwrap_or_default();
    StatusView {
        succeeded: total(s.succeeded),
        failed: total(s.failed),
    }
}

fn request(kind: &str, q: &StatsQuery) -> Result<pb::StatsRequest, ApiError> {
    let given = [&q.card_id, &q.merchant_id, &q.api_key_id]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if given > 1 {
        return Err(ApiError::invalid_field(
            "card_id",
            "give one of card_id, merchant_id and api_key_id",
        ));
    }
    if kind != "payments" && (q.merchant_id.is_some() || q.api_key_id.is_some()) {
        return Err(ApiError::invalid_field(
            if q.merchant_id.is_some() {
                "merchant_id"
            } else {
                "api_key_id"
            },
            "exists for payments statistics only",
        ));
    }
    if let Some(id) = &q.merchant_id {
        return message(pb::Scope::Merchant, id, q);
    }
    if let Some(id) = &q.api_key_id {
        return message(pb::Scope::ApiKey, id, q);
    }
    let scope = match (&q.card_id, q.direction.as_deref()) {
        (None, None) => pb::Scope::All,
        (None, Some(_)) => {
            return Err(ApiError::invalid_field("direction", "goes with card_id"));
        }
        (Some(_), None | Some("sent")) => pb::Scope::Card,
        (Some(_), Some("received")) if kind == "transfers" => pb::Scope::ReceiverCard,
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_field(
                "direction",
                "must be sent or received (transfers only)",
            ));
        }
    };
    message(scope, q.card_id.as_deref().unwrap_or_default(), q)
}

fn message(scope: pb::Scope, scope_id: &str, q: &StatsQuery) -> Result<pb::StatsRequest, ApiError> {
    let failed = match q.status.as_deref() {
        None | Some("succeeded") => false,
        Some("failed") => true,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "status",
                "must be succeeded or failed",
            ));
        }
    };
    Ok(pb::StatsRequest {
        scope: scope as i32,
        scope_id: scope_id.to_owned(),
        year: q.year,
        month: q.month.unwrap_or(0),
        failed,
    })
}

/// Which report.
#[derive(Clone, Copy, Debug)]
enum Report {
    MonthlyAmounts,
    YearlyAmounts,
    MonthlyMethods,
    YearlyMethods,
    MonthlyStatus,
    YearlyStatus,
}

enum Reply {
    Monthly(pb::MonthlyTotals),
    Yearly(pb::YearlyTotals),
    Methods(pb::MethodTotals),
    Status(pb::StatusComparison),
}

macro_rules! ask {
    ($client:expr, $report:expr, $request:expr) => {{
        let mut client = $client;
        match $report {
            Report::MonthlyAmounts => {
                Reply::Monthly(client.monthly_amounts($request).await?.into_inner())
            }
            Report::YearlyAmounts => {
                Reply::Yearly(client.yearly_amounts($request).await?.into_inner())
            }
            Report::MonthlyMethods => {
                Reply::Methods(client.monthly_methods($request).await?.into_inner())
            }
            Report::YearlyMethods => {
                Reply::Methods(client.yearly_methods($request).await?.into_inner())
            }
            Report::MonthlyStatus => {
                Reply::Status(client.monthly_status($request).await?.into_inner())
            }
            Report::YearlyStatus => {
                Reply::Status(client.yearly_status($request).await?.into_inner())
            }
        }
    }};
}

async fn report(
    state: &AppState,
    caller: &Caller,
    kind: &str,
    which: Report,
    query: &StatsQuery,
) -> Result<Reply, ApiError> {
    let message = request(kind, query)?;
    let request = state.request(message, Some(caller));
    Ok(match kind {
        "topups" => ask!(state.topup_stats.clone(), which, request),
        "withdraws" => ask!(state.withdraw_stats.clone(), which, request),
        "transfers" => ask!(state.transfer_stats.clone(), which, request),
        "payments" => ask!(state.payment_stats.clone(), which, request),
        _ => {
            return Err(ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                "ROUTE_NOT_FOUND",
                "statistics exist for topups, withdraws, transfers and payments",
            ));
        }
    })
}

fn periods(reply: Reply) -> PeriodsView {
    let items = match reply {
        Reply::Monthly(m) => m
            .months
            .into_iter()
            .map(|m| {
                let t = total(m.total);
                PeriodView {
                    period: i32::try_from(m.month).unwrap_or(0),
                    count: t.count,
                    amount: t.amount,
                }
            })
            .collect(),
        Reply::Yearly(y) => y
            .years
            .into_iter()
            .map(|y| {
                let t = total(y.total);
                PeriodView {
                    period: y.year,
                    count: t.count,
                    amount: t.amount,
                }
            })
            .collect(),
        _ => Vec::new(),
    };
    PeriodsView { items }
}

fn methods(reply: Reply) -> MethodsView {
    let items = match reply {
        Reply::Methods(m) => m
            .items
            .into_iter()
            .map(|i| {
                let t = total(i.total);
                MethodView {
                    period: i.period,
                    method: i.method,
                    count: t.count,
                    amount: t.amount,
                }
            })
            .collect(),
        _ => Vec::new(),
    };
    MethodsView { items }
}

fn comparison(reply: Reply) -> StatusComparisonView {
    match reply {
        Reply::Status(s) => StatusComparisonView {
            current: status_view(s.current),
            previous: status_view(s.previous),
        },
        _ => StatusComparisonView {
            current: status_view(None),
            previous: status_view(None),
        },
    }
}

#[utoipa::path(get, path = "/api/v1/stats/{kind}/monthly-amounts", tag = "statistics",
    params(("kind" = String, Path, description = "topups, withdraws, transfers or payments"), StatsQuery),
    responses((status = 200, body = PeriodsView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn monthly_amounts(
    State(state): State<AppState>,
    caller: Caller,
    Path(kind): Path<String>,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<PeriodsView>, ApiError> {
    Ok(Json(periods(
        report(&state, &caller, &kind, Report::MonthlyAmounts, &query).await?,
    )))
}

#[utoipa::path(get, path = "/api/v1/stats/{kind}/yearly-amounts", tag = "statistics",
    params(("kind" = String, Path), StatsQuery),
    responses((status = 200, body = PeriodsView), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn yearly_amounts(
    State(state): State<AppState>,
    caller: Caller,
    Path(kind): Path<String>,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<PeriodsView>, ApiError> {
    Ok(Json(periods(
        report(&state, &caller, &kind, Report::YearlyAmounts, &query).await?,
    )))
}

#[utoipa::path(get, path = "/api/v1/stats/{kind}/monthly-methods", tag = "statistics",
    params(("kind" = String, Path), StatsQuery),
    responses((status = 200, body = MethodsView), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn monthly_methods(
    State(state): State<AppState>,
    caller: Caller,
    Path(kind): Path<String>,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<MethodsView>, ApiError> {
    Ok(Json(methods(
        report(&state, &caller, &kind, Report::MonthlyMethods, &query).await?,
    )))
}

#[utoipa::path(get, path = "/api/v1/stats/{kind}/yearly-methods", tag = "statistics",
    params(("kind" = String, Path), StatsQuery),
    responses((status = 200, body = MethodsView), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn yearly_methods(
    State(state): State<AppState>,
    caller: Caller,
    Path(kind): Path<String>,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<MethodsView>, ApiError> {
    Ok(Json(methods(
        report(&state, &caller, &kind, Report::YearlyMethods, &query).await?,
    )))
}

#[utoipa::path(get, path = "/api/v1/stats/{kind}/monthly-status", tag = "statistics",
    params(("kind" = String, Path), StatsQuery),
    responses((status = 200, body = StatusComparisonView), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn monthly_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(kind): Path<String>,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<StatusComparisonView>, ApiError> {
    Ok(Json(comparison(
        report(&state, &caller, &kind, Report::MonthlyStatus, &query).await?,
    )))
}

#[utoipa::path(get, path = "/api/v1/stats/{kind}/yearly-status", tag = "statistics",
    params(("kind" = String, Path), StatsQuery),
    responses((status = 200, body = StatusComparisonView), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn yearly_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(kind): Path<String>,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<StatusComparisonView>, ApiError> {
    Ok(Json(comparison(
        report(&state, &caller, &kind, Report::YearlyStatus, &query).await?,
    )))
}

/// This area's routes, each registered with its OpenAPI operation (its `#[utoipa::path]`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // /stats/{kind}/monthly-amounts
        .routes(routes!(monthly_amounts))
        // /stats/{kind}/yearly-amounts
        .routes(routes!(yearly_amounts))
        // /stats/{kind}/monthly-methods
        .routes(routes!(monthly_methods))
        // /stats/{kind}/yearly-methods
        .routes(routes!(yearly_methods))
        // /stats/{kind}/monthly-status
        .routes(routes!(monthly_status))
        // /stats/{kind}/yearly-status
        .routes(routes!(yearly_status))
}
