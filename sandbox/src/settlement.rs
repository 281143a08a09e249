//! `GET /v1/settlements/{date}`: the day's settlement report, with the adjustments a test
//! injected (dropped, altered, duplicated and extra lines).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use serde_json::json;

use crate::store::{Adjustment, Kind, Status};
use crate::{Sandbox, error};

/// A settlement report line.
#[derive(serde::Serialize)]
pub(crate) struct SettlementLine {
    pub(crate) operation_id: String,
    pub(crate) reference: String,
    pub(crate) kind: Kind,
    pub(crate) amount: i64,
    pub(crate) currency: String,
    pub(crate) settled_at: chrono::DateTime<Utc>,
}

pub(crate) async fn settlement(
    State(s): State<Sandbox>,
    headers: HeaderMap,
    Path(date): Path<String>,
) -> Response {
    if let Some(refused) = s.refusal(&headers) {
        return refused;
    }
    let Ok(date) = NaiveDate::parse_from_str(&date, "%Y-%m-%d") else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_date",
            "the date is YYYY-MM-DD",
        );
    };
    let lines = report(&s, date).await;
    Json(json!({
        "provider": s.inner.config.name,
        "date": date.to_string(),
        "lines": lines,
    }))
    .into_response()
}

/// The lines of `date`'s report, in settlement order: every operation that succeeded that
/// day, with the adjustments a test injected.
pub(crate) async fn report(s: &Sandbox, date: NaiveDate) -> Vec<SettlementLine> {
    let store = s.inner.store.lock().await;
    let mut lines: Vec<SettlementLine> = store
        .operations
        .values()
        .filter(|op| op.status == Status::Succeeded && op.updated_at.date_naive() == date)
        .map(|op| SettlementLine {
            operation_id: op.id.clone(),
            reference: op.reference.clone(),
            kind: op.kind,
            amount: op.amount,
            currency: op.currency.clone(),
            settled_at: op.updated_at,
        })
        .collect();
    for adjustment in &store.adjustments {
        match adjustment {
            Adjustment::Drop { reference } => lines.retain(|l| &l.reference != reference),
            Adjustment::Amount { reference, amount } => lines
                .iter_mut()
                .filter(|l| &l.reference == reference)
                .for_each(|l| l.amount = *amount),
            Adjustment::Currency {
                reference,
                currency,
            } => lines
                .iter_mut()
                .filter(|l| &l.reference == reference)
                .for_each(|l| l.currency = currency.clone()),
            Adjustment::Duplicate { reference } => {
                let copies: Vec<SettlementLine> = lines
                    .iter()
                    .filter(|l| &l.reference == reference)
                    .map(|l| SettlementLine {
                        operation_id: l.operation_id.clone(),
                        reference: l.reference.clone(),
                        kind: l.kind,
                        amount: l.amount,
                        currency: l.currency.clone(),
                        settled_at: l.settled_at,
                    })
                    .collect();
                lines.extend(copies);
            }
            Adjustment::Extra {
                reference,
                kind,
                amount,
                currency,
                date: on,
            } if *on == date => lines.push(SettlementLine {
                operation_id: format!("op_extra_{reference}"),
                reference: reference.clone(),
                kind: *kind,
                amount: *amount,
                currency: currency.clone(),
                settled_at: on
                    .and_hms_opt(12, 0, 0)
                    .map_or_else(Utc::now, |t| t.and_utc()),
            }),
            Adjustment::Extra { .. } => {}
        }
    }
    lines.sort_by(|a, b| {
        a.settled_at
            .cmp(&b.settled_at)
            .then(a.reference.cmp(&b.reference))
    });
    lines
}
