//! `/api/v1/stats/dashboard`: a card's (or the platform's) balance and the all-time totals of
//! its succeeded movements, asked of every statistics service at once.

use axum::Json;
use axum::extract::State;
use proto::stats::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, Caller};

use super::stats::{TotalView, total};

/// Query of the dashboard.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DashboardQuery {
    /// One card's dashboard (its owner); default: the whole platform (admins).
    pub card_id: Option<String>,
}

/// The card dashboard: the balance and all-time totals of succeeded movements.
#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardView {
    /// The card's balance, or the sum of every card's balance.
    pub balance: i64,
    pub topups: TotalView,
    pub withdraws: TotalView,
    pub payments: TotalView,
    /// Transfers from the card (the platform's: all transfers).
    pub transfers_sent: TotalView,
    /// Transfers to the card (the platform's: all transfers).
    pub transfers_received: TotalView,
}

#[utoipa::path(get, path = "/api/v1/stats/dashboard", tag = "statistics", params(DashboardQuery),
    responses((status = 200, body = DashboardView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn dashboard(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<DashboardQuery>,
) -> Result<Json<DashboardView>, ApiError> {
    use chrono::Datelike;
    let scope_id = query.card_id.clone().unwrap_or_default();
    let ask = |scope: pb::Scope| {
        state.request(
            pb::StatsRequest {
                scope: if scope_id.is_empty() {
                    pb::Scope::All as i32
                } else {
                    scope as i32
                },
                scope_id: scope_id.clone(),
                year: chrono::Utc::now().year(),
                month: 0,
                failed: false,
            },
            Some(&caller),
        )
    };
    let (mut saldo, mut topup, mut withdraw, mut payment, mut transfer, mut received_from) = (
        state.saldo_stats.clone(),
        state.topup_stats.clone(),
        state.withdraw_stats.clone(),
        state.payment_stats.clone(),
        state.transfer_stats.clone(),
        state.transfer_stats.clone(),
    );
    let (balance, topups, withdraws, payments, sent, received) = tokio::try_join!(
        saldo.yearly_total_balance(ask(pb::Scope::Card)),
        topup.totals(ask(pb::Scope::Card)),
        withdraw.totals(ask(pb::Scope::Card)),
        payment.totals(ask(pb::Scope::Card)),
        transfer.totals(ask(pb::Scope::Card)),
        received_from.totals(ask(pb::Scope::ReceiverCard)),
    )?;
    Ok(Json(DashboardView {
        balance: balance.into_inner().current,
        topups: total(Some(topups.into_inner())),
        withdraws: total(Some(withdraws.into_inner())),
        payments: total(Some(payments.into_inner())),
        transfers_sent: total(Some(sent.into_inner())),
        transfers_received: total(Some(received.into_inner())),
    }))
}

/// This area's routes, each registered with its OpenAPI operation (its `#[utoipa::path]`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // /stats/dashboard
        .routes(routes!(dashboard))
}
