//! The status poller and recovery of provider-backed movements: what a lost callback, a
//! timeout or a crash left pending is finished from the provider's own answer.

use crate::lifecycle::{Recorded, Status};
use crate::{Movement, MovementError, Movements};

use super::{Unavailable, operation_kind};

impl Movements {
    /// The status poller: claims up to 50 pending movements a provider holds whose check is
    /// due (a lease: the claim pushes their next check out, with backoff, so replicas never
    /// ask twice at once), asks each one's provider, and settles what it decided. Movements
    /// recorded but never sent (a crash before step 1) are sent again by recovery.
    pub async fn poll_providers_once(&self) -> Result<usize, MovementError> {
        if self.providers.is_none() {
            return Ok(0);
        }
        let due: Vec<Movement> = sqlx::query_as(&format!(
            "WITH due AS (
                 SELECT id FROM movements
                 WHERE status = 'pending' AND provider IS NOT NULL AND next_check_at <= now()
                 ORDER BY next_check_at LIMIT 50 FOR UPDATE SKIP LOCKED)
             UPDATE movements t SET checks = t.checks + 1,
                 next_check_at = now() + least(interval '5 seconds' * power(2, least(t.checks, 10)),
                                               interval '10 minutes')
             FROM due WHERE t.id = due.id
             RETURNING {}",
            Movement::COLUMNS
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut settled = 0;
        for movement in due {
            if self.ask_provider(movement).await? {
                metrics::counter!("provider_polled_settled_total", "kind" => self.kind.name())
                    .increment(1);
                settled += 1;
            }
        }
        self.export_pending().await?;
        Ok(settled)
    }

    /// Asks a pending movement's provider where it stands, records its word and settles it;
    /// whether it is settled now.
    pub(crate) async fn ask_provider(&self, movement: Movement) -> Result<bool, MovementError> {
        let backing = self.backing()?;
        let provider = movement.provider.clone().unwrap_or_default();
        if movement.provider_status == Some(super::ProviderState::Pending) {
            match backing
                .router
                .status(
                    &provider,
                    operation_kind(self.kind),
                    &movement.id.to_string(),
                )
                .await
            {
                Ok(Some(op)) => {
                    if op.amount != movement.amount || op.currency != movement.currency {
                        tracing::error!(id = %movement.id, provider, "the provider reports another amount or currency; left for reconciliation");
                        return Ok(false);
                    }
                    self.record_word(movement.id, &op).await?;
                }
                Ok(None) => {
                    // The provider never got it (the create timed out before arriving):
                    // nothing was taken, so it may go along the route again.
                    sqlx::query(
                        "UPDATE movements SET provider = NULL, provider_status = NULL,
                             next_check_at = NULL
                         WHERE id = $1 AND status = 'pending' AND provider_reference IS NULL",
                    )
                    .bind(movement.id)
                    .execute(&self.pool)
                    .await?;
                    let reloaded = self.load(movement.id).await?;
                    if reloaded.provider.is_none()
                        && let Err(e) = self.submit(reloaded, Unavailable::Fail).await
                    {
                        tracing::warn!(id = %movement.id, error = %e, "resubmission failed");
                    }
                    return Ok(false);
                }
                Err(e) => {
                    tracing::warn!(id = %movement.id, provider, error = %e, "status check failed; asking later");
                    return Ok(false);
                }
            }
        }
        Ok(self.settle(movement.id).await?.status != Status::Pending)
    }

    /// Exports how many movements wait for their provider's word and how long the oldest has
    /// waited (`provider_operations_pending`, `provider_operation_oldest_pending_seconds`):
    /// a provider that never answers is an alert (`ProviderOperationStuck`), not a silence.
    /// The poller keeps asking; nothing is given up by itself, since neither booking nor
    /// returning the money is safe without the provider's word.
    async fn export_pending(&self) -> Result<(), MovementError> {
        let (pending, oldest): (i64, Option<f64>) = sqlx::query_as(
            "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8
             FROM movements WHERE status = 'pending' AND provider IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        metrics::gauge!("provider_operations_pending", "kind" => self.kind.name())
            .set(pending as f64);
        metrics::gauge!("provider_operation_oldest_pending_seconds", "kind" => self.kind.name())
            .set(oldest.unwrap_or(0.0));
        Ok(())
    }

    /// Recovery of a provider-backed movement left pending past the grace period: sent again
    /// if it never reached a provider (same idempotency key), settled if the provider's
    /// word is recorded; one the provider still holds is the poller's.
    pub(crate) async fn recover_backed(&self, movement: Movement) -> Result<bool, MovementError> {
        let settled = if movement.provider.is_none() {
            if self.kind == crate::Kind::Withdraw {
                // The hold first (the same posting id: applied once, or its first answer).
                match self.post(&movement).await? {
                    crate::Outcome::Posted => {}
                    refused => {
                        return Ok(
                            self.complete(&movement, &refused).await?.status != Status::Pending
                        );
                    }
                }
            }
            self.submit(movement, Unavailable::Fail).await?.status != Status::Pending
        } else {
            self.settle(movement.id).await?.status != Status::Pending
        };
        Ok(settled)
    }

    /// Publishes each provider's circuit breaker state in the process status (`/status`,
    /// `make status`): `provider:<kind>:<name>` → `{"circuit": "closed"|"half_open"|"open"}`.
    /// A provider being down does not make the service unready: it still answers, with 503
    /// PROVIDER_UNAVAILABLE.
    pub(crate) fn report_circuits(&self) {
        let Some(backing) = self.providers.as_ref() else {
            return;
        };
        for (name, state) in backing.router.breakers() {
            platform::status::set(
                &format!("provider:{}:{name}", self.kind.name()),
                platform::status::Report {
                    reason: None,
                    detail: serde_json::json!({ "circuit": state.as_str() }),
                },
            );
        }
    }
}
