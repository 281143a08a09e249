//! Finishing movements a crash or a timeout left pending: each is re-posted under its own
//! id — the ledger applies it or returns what it did before — and completed, so money moves
//! at most once whoever finishes it.

use std::time::Duration;

use crate::lifecycle::{self, Recorded};
use crate::{Movement, MovementError, Movements};

impl Movements {
    /// Completes movements left pending for longer than `grace`; returns how many.
    pub async fn recover_once(&self, grace: Duration) -> Result<usize, MovementError> {
        if self.providers.is_some() {
            return self.recover_backed_once(grace).await;
        }
        let kind = self.kind.name();
        let stale: Vec<Movement> = lifecycle::pending_before(&self.pool, grace, 100).await?;
        let mut completed = 0;
        for movement in stale {
            let posted = self.post(&movement).await;
            let Some(outcome) = lifecycle::recovered_outcome(kind, &movement, posted) else {
                continue;
            };
            self.complete(&movement, &outcome).await?;
            metrics::counter!("movement_recovered_total", "kind" => kind).increment(1);
            completed += 1;
        }
        Ok(completed)
    }

    /// Recovery of a provider-backed kind: rows a provider holds are the poller's; the others
    /// (never sent, or decided but not settled: a crash) are finished here.
    async fn recover_backed_once(&self, grace: Duration) -> Result<usize, MovementError> {
        let grace =
            chrono::Duration::from_std(grace).map_err(|e| MovementError::Internal(e.into()))?;
        let stale: Vec<Movement> = sqlx::query_as(&format!(
            "SELECT {} FROM movements t
             WHERE t.status = 'pending' AND t.created_at < $1
               AND (t.provider IS NULL OR t.provider_status IN ('succeeded', 'failed'))
             ORDER BY t.created_at LIMIT 100",
            Movement::COLUMNS
        ))
        .bind(chrono::Utc::now() - grace)
        .fetch_all(&self.pool)
        .await?;
        let mut completed = 0;
        for movement in stale {
            let id = movement.id;
            match self.recover_backed(movement).await {
                Ok(true) => {
                    metrics::counter!("movement_recovered_total", "kind" => self.kind.name())
                        .increment(1);
                    completed += 1;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(kind = self.kind.name(), %id,
                    error = %platform::error::DisplayChain(&e), "recovery could not finish it yet"),
            }
        }
        self.report_circuits();
        Ok(completed + self.poll_providers_once().await?)
    }

    /// Runs [`Self::recover_once`] every `interval` until shutdown.
    pub async fn run_recovery(
        self,
        interval: Duration,
        grace: Duration,
        shutdown: platform::shutdown::Shutdown,
    ) {
        lifecycle::run_every("movement recovery", interval, shutdown, || {
            self.recover_once(grace)
        })
        .await;
    }
}
