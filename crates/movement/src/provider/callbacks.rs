//! Provider callbacks: verified with the provider's webhook secret, stored raw, deduplicated
//! by the provider's event id, checked against the movement (provider, kind, amount,
//! currency) and applied once.

use chrono::Utc;
use providers::{CallbackError, ProviderOperation};
use uuid::Uuid;

use super::operation_kind;
use crate::lifecycle::{self, Status};
use crate::{Movement, MovementError, Movements};

platform::text_enum! {
    /// What became of a callback (stored in `provider_callbacks.outcome` for the first
    /// delivery of an event).
    pub enum CallbackOutcome {
        /// Recorded and acted on.
        Applied = "applied",
        /// The same event was received before: nothing changed.
        Duplicate = "duplicate",
        /// Verified, but not about one of our pending operations as we know it (an unknown
        /// reference, another amount or currency): stored, not applied, and logged for
        /// reconciliation.
        Ignored = "ignored",
    }
}

impl Movements {
    /// Verifies and applies a provider's callback. `headers` are the request's (lower-case
    /// names); `body` exactly as received.
    pub async fn receive_callback(
        &self,
        provider_name: &str,
        headers: &std::collections::HashMap<String, String>,
        body: &[u8],
    ) -> Result<CallbackOutcome, MovementError> {
        let backing = self.backing()?;
        let provider = backing
            .router
            .provider(provider_name)
            .ok_or(MovementError::NotFound("provider"))?;
        let event = provider
            .verify_callback(headers, body, Utc::now())
            .map_err(|e| {
                metrics::counter!("provider_callbacks_refused_total",
                    "provider" => provider_name.to_owned(),
                    "why" => match e { CallbackError::Stale => "stale", CallbackError::BadSignature => "signature", CallbackError::Malformed(_) => "malformed" })
                .increment(1);
                MovementError::Callback(e)
            })?;
        let op = &event.operation;
        // Stored raw before anything else; a second delivery only counts.
        let first: bool = sqlx::query_scalar(
            "INSERT INTO provider_callbacks AS c (provider, event_id, reference, body)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (provider, event_id) DO UPDATE SET deliveries = c.deliveries + 1
             RETURNING c.deliveries = 1",
        )
        .bind(provider_name)
        .bind(&event.event_id)
        .bind(&op.reference)
        .bind(String::from_utf8_lossy(body).as_ref())
        .fetch_one(&self.pool)
        .await?;
        let outcome = if first {
            let outcome = self.apply_callback(provider_name, op).await?;
            sqlx::query(
                "UPDATE provider_callbacks SET outcome = $3 WHERE provider = $1 AND event_id = $2",
            )
            .bind(provider_name)
            .bind(&event.event_id)
            .bind(outcome)
            .execute(&self.pool)
            .await?;
            outcome
        } else {
            CallbackOutcome::Duplicate
        };
        metrics::counter!("provider_callbacks_total",
            "provider" => provider_name.to_owned(), "outcome" => outcome.as_str())
        .increment(1);
        Ok(outcome)
    }

    async fn apply_callback(
        &self,
        provider_name: &str,
        op: &ProviderOperation,
    ) -> Result<CallbackOutcome, MovementError> {
        let ignore = |why: &str| {
            tracing::error!(kind = self.kind.name(), provider = provider_name,
                reference = %op.reference, provider_reference = %op.provider_reference, why,
                "provider callback not applied");
            Ok(CallbackOutcome::Ignored)
        };
        let Ok(id) = Uuid::parse_str(&op.reference) else {
            return ignore("not one of our references");
        };
        let Some(movement) = lifecycle::load::<Movement>(&self.pool, id).await? else {
            return ignore("no such movement");
        };
        if op.kind != operation_kind(self.kind) {
            return ignore("another kind of operation");
        }
        if movement
            .provider
            .as_deref()
            .is_some_and(|p| p != provider_name)
        {
            return ignore("the movement is with another provider");
        }
        if op.amount != movement.amount || op.currency != movement.currency {
            return ignore("amount or currency differs from the movement");
        }
        if movement.status != Status::Pending {
            // Already settled on the same word (the poller was first): nothing to do.
            return Ok(CallbackOutcome::Applied);
        }
        self.record_word(id, op).await?;
        self.settle(id).await?;
        Ok(CallbackOutcome::Applied)
    }
}

/// Implements `payments.provider.v1.ProviderCallbackService` for a provider-backed kind. No
/// principal: the provider's signature is the authentication.
#[derive(Clone)]
pub struct CallbackHandlers {
    movements: Movements,
}

impl CallbackHandlers {
    pub fn new(movements: Movements) -> Self {
        Self { movements }
    }
}

#[tonic::async_trait]
impl proto::provider::v1::provider_callback_service_server::ProviderCallbackService
    for CallbackHandlers
{
    async fn receive(
        &self,
        request: tonic::Request<proto::provider::v1::ProviderCallback>,
    ) -> Result<tonic::Response<proto::provider::v1::ProviderCallbackReceipt>, tonic::Status> {
        let r = request.into_inner();
        let outcome = self
            .movements
            .receive_callback(&r.provider, &r.headers, &r.body)
            .await?;
        Ok(tonic::Response::new(
            proto::provider::v1::ProviderCallbackReceipt {
                outcome: outcome.as_str().to_owned(),
            },
        ))
    }
}
