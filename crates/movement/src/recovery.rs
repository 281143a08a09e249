//! Finishing movements a crash or a timeout left pending: each is re-posted under its own
//! id — the ledger applies it or returns what it did before — and completed, so money moves
//! at most once whoever finishes it.

use std::time::Duration;

use crate::lifecycle;
use crate::{Movement, MovementError, Movements};

impl Movements {
    /// Completes movements left pending for longer than `grace`; returns how many.
    pub async fn recover_once(&self, grace: Duration) -> Result<usize, MovementError> {
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
