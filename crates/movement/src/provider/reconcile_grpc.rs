//! `payments.provider.v1.ReconciliationService`: settlement reconciliation for operators
//! (`reconciliation.manage`), mapped to [`super::reconcile`].

use chrono::NaiveDate;
use proto::provider::v1 as pb;

use super::reconcile::ReconciliationException;
use crate::{MovementError, Movements};

/// The permission of reconciliation.
pub const PERMISSION: &str = "reconciliation.manage";

fn to_proto(e: ReconciliationException) -> pb::ReconciliationException {
    pb::ReconciliationException {
        id: e.id.to_string(),
        settlement_date: e.settlement_date.to_string(),
        provider: e.provider,
        kind: e.kind.as_str().to_owned(),
        reference: e.reference.unwrap_or_default(),
        provider_reference: e.provider_reference,
        expected_amount: e.expected_amount,
        expected_currency: e.expected_currency.unwrap_or_default(),
        reported_amount: e.reported_amount,
        reported_currency: e.reported_currency.unwrap_or_default(),
        state: e.state,
        note: e.note.unwrap_or_default(),
        resolved_by: e.resolved_by.unwrap_or_default(),
        created_at: Some(platform::time::to_proto(e.created_at)),
        resolved_at: platform::time::to_proto_opt(e.resolved_at),
    }
}

/// Implements `payments.provider.v1.ReconciliationService`.
#[derive(Clone)]
pub struct ReconciliationHandlers {
    movements: Movements,
}

impl ReconciliationHandlers {
    pub fn new(movements: Movements) -> Self {
        Self { movements }
    }

    async fn operator<T>(
        &self,
        request: &tonic::Request<T>,
    ) -> Result<platform::auth::Principal, MovementError> {
        let caller = self.movements.authenticator().require(request).await?;
        caller.require(PERMISSION)?;
        Ok(caller)
    }
}

#[tonic::async_trait]
impl pb::reconciliation_service_server::ReconciliationService for ReconciliationHandlers {
    async fn reconcile(
        &self,
        request: tonic::Request<pb::ReconcileRequest>,
    ) -> Result<tonic::Response<pb::ReconcileReport>, tonic::Status> {
        self.operator(&request).await?;
        let raw = request.into_inner().date;
        let date = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").map_err(|_| {
            MovementError::from(platform::FieldViolation::new("date", "must be YYYY-MM-DD"))
        })?;
        let days = self.movements.reconcile_providers(date).await?;
        Ok(tonic::Response::new(pb::ReconcileReport {
            date: date.to_string(),
            providers: days
                .into_iter()
                .map(|d| pb::ProviderDay {
                    provider: d.provider,
                    lines: d.lines as i64,
                    matched: d.matched as i64,
                    settled: d.settled,
                    ledger: d.ledger,
                    exceptions: d.exceptions.into_iter().map(to_proto).collect(),
                })
                .collect(),
        }))
    }

    async fn list_exceptions(
        &self,
        request: tonic::Request<pb::ListExceptionsRequest>,
    ) -> Result<tonic::Response<pb::ListExceptionsResponse>, tonic::Status> {
        self.operator(&request).await?;
        let state = request.into_inner().state;
        let state = match state.trim() {
            "" => None,
            s @ ("open" | "resolved") => Some(s.to_owned()),
            _ => {
                return Err(MovementError::from(platform::FieldViolation::new(
                    "state",
                    "must be open or resolved",
                ))
                .into());
            }
        };
        let exceptions = self
            .movements
            .reconciliation_exceptions(state.as_deref())
            .await?;
        Ok(tonic::Response::new(pb::ListExceptionsResponse {
            exceptions: exceptions.into_iter().map(to_proto).collect(),
        }))
    }

    async fn resolve_exception(
        &self,
        request: tonic::Request<pb::ResolveExceptionRequest>,
    ) -> Result<tonic::Response<pb::ReconciliationException>, tonic::Status> {
        let caller = self.operator(&request).await?;
        let r = request.into_inner();
        let id = platform::parse_uuid("id", &r.id).map_err(MovementError::from)?;
        let note = r.note.trim();
        if note.is_empty() || note.len() > 2_000 {
            return Err(MovementError::from(platform::FieldViolation::new(
                "note",
                "is required (1-2000 characters): say how it was resolved",
            ))
            .into());
        }
        let resolved = self
            .movements
            .resolve_exception(id, note, &crate::lifecycle::requested_by(&caller))
            .await?;
        Ok(tonic::Response::new(to_proto(resolved)))
    }
}
