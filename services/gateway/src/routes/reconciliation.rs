//! `/api/v1/admin/reconciliation/{topups|withdraws}/…`: settlement reconciliation for
//! operators (`reconciliation.manage`): run a day (import every provider's settlement report
//! and match it with the books), list the exceptions, resolve one with a note. The topup
//! service reconciles charges, the withdraw service payouts.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use proto::provider::v1 as pb;
use proto::provider::v1::reconciliation_service_client::ReconciliationServiceClient;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::views::rfc3339;
use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, Caller};

/// A reconciliation exception.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExceptionView {
    pub id: String,
    pub settlement_date: String,
    pub provider: String,
    /// `missing_on_our_side`, `missing_at_provider`, `amount_mismatch`,
    /// `currency_mismatch`, `duplicate` or `ledger_mismatch`.
    pub kind: String,
    /// Our id (the top-up / withdrawal), when known.
    pub reference: Option<String>,
    pub provider_reference: String,
    pub expected_amount: Option<i64>,
    pub expected_currency: Option<String>,
    pub reported_amount: Option<i64>,
    pub reported_currency: Option<String>,
    /// `open` or `resolved`.
    pub state: String,
    pub note: Option<String>,
    pub resolved_by: Option<String>,
    pub created_at: Option<String>,
    pub resolved_at: Option<String>,
}

fn text(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

impl From<pb::ReconciliationException> for ExceptionView {
    fn from(e: pb::ReconciliationException) -> Self {
        Self {
            id: e.id,
            settlement_date: e.settlement_date,
            provider: e.provider,
            kind: e.kind,
            reference: text(e.reference),
            provider_reference: e.provider_reference,
            expected_amount: e.expected_amount,
            expected_currency: text(e.expected_currency),
            reported_amount: e.reported_amount,
            reported_currency: text(e.reported_currency),
            state: e.state,
            note: text(e.note),
            resolved_by: text(e.resolved_by),
            created_at: rfc3339(e.created_at),
            resolved_at: rfc3339(e.resolved_at),
        }
    }
}

/// One provider's day.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderDayView {
    pub provider: String,
    /// Lines of its report for these operations.
    pub lines: i64,
    /// Lines matching a booked operation exactly.
    pub matched: i64,
    /// The report's settled total per currency (each operation once).
    pub settled: HashMap<String, i64>,
    /// What the ledger posted against the provider's system account for those lines, per
    /// currency: equal to `settled` on a clean day; the exceptions explain any difference.
    pub ledger: HashMap<String, i64>,
    pub exceptions: Vec<ExceptionView>,
}

/// A run's report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportView {
    pub date: String,
    pub providers: Vec<ProviderDayView>,
}

/// Which day to reconcile.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
}

/// How an exception was resolved.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    pub note: String,
}

/// Which exceptions.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExceptionQuery {
    /// `open` or `resolved`; all by default.
    pub state: Option<String>,
}

/// All exception lists.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExceptionList {
    pub items: Vec<ExceptionView>,
}

fn client(
    state: &AppState,
    operations: &str,
) -> Result<ReconciliationServiceClient<Channel>, ApiError> {
    match operations {
        "topups" => Ok(state.topup_reconciliation.clone()),
        "withdraws" => Ok(state.withdraw_reconciliation.clone()),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "NOT_FOUND",
            "reconciliation covers `topups` (charges) and `withdraws` (payouts)",
        )),
    }
}

#[utoipa::path(post, path = "/api/v1/admin/reconciliation/{operations}/runs", tag = "providers",
    params(("operations" = String, Path, description = "`topups` or `withdraws`")),
    request_body = RunBody,
    responses((status = 200, body = ReportView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
    Path(operations): Path<String>,
    ApiJson(body): ApiJson<RunBody>,
) -> Result<Json<ReportView>, ApiError> {
    let request = state.request(pb::ReconcileRequest { date: body.date }, Some(&caller));
    let report = client(&state, &operations)?
        .reconcile(request)
        .await?
        .into_inner();
    Ok(Json(ReportView {
        date: report.date,
        providers: report
            .providers
            .into_iter()
            .map(|d| ProviderDayView {
                provider: d.provider,
                lines: d.lines,
                matched: d.matched,
                settled: d.settled,
                ledger: d.ledger,
                exceptions: d.exceptions.into_iter().map(Into::into).collect(),
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/admin/reconciliation/{operations}/exceptions", tag = "providers",
    params(("operations" = String, Path, description = "`topups` or `withdraws`"), ExceptionQuery),
    responses((status = 200, body = ExceptionList), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn exceptions(
    State(state): State<AppState>,
    caller: Caller,
    Path(operations): Path<String>,
    ApiQuery(query): ApiQuery<ExceptionQuery>,
) -> Result<Json<ExceptionList>, ApiError> {
    let request = state.request(
        pb::ListExceptionsRequest {
            state: query.state.unwrap_or_default(),
        },
        Some(&caller),
    );
    let list = client(&state, &operations)?
        .list_exceptions(request)
        .await?
        .into_inner();
    Ok(Json(ExceptionList {
        items: list.exceptions.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/admin/reconciliation/{operations}/exceptions/{id}/resolve",
    tag = "providers",
    params(("operations" = String, Path), ("id" = String, Path)),
    request_body = ResolveBody,
    responses((status = 200, body = ExceptionView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path((operations, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ResolveBody>,
) -> Result<Json<ExceptionView>, ApiError> {
    let request = state.request(
        pb::ResolveExceptionRequest {
            id,
            note: body.note,
        },
        Some(&caller),
    );
    let resolved = client(&state, &operations)?
        .resolve_exception(request)
        .await?
        .into_inner();
    Ok(Json(resolved.into()))
}

/// This area's routes, each registered with its OpenAPI operation.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(run))
        .routes(routes!(exceptions))
        .routes(routes!(resolve))
}
