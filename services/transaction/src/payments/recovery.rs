//! Finishing payments and refunds a crash or a timeout left pending: each is re-posted under
//! its own id (the ledger answers with what it did) and completed with that answer. The same
//! loop is the authorizations' expiry job and finishes their claimed captures and releases
//! ([`super::authorization`]).

use std::time::Duration;

use movement::lifecycle;

use super::{PaymentRow, Payments, RefundRow};
use crate::error::TransactionError;

impl Payments {
    /// Completes payments and refunds left pending longer than `grace`, expires
    /// authorizations past their deadline; returns how many.
    pub async fn recover_once(&self, grace: Duration) -> Result<usize, TransactionError> {
        let mut completed = 0;
        let payments: Vec<PaymentRow> = lifecycle::pending_before(&self.pool, grace, 100).await?;
        for payment in payments {
            let posted = self.post_payment(&payment).await;
            if let Some(outcome) = lifecycle::recovered_outcome("payment", &payment, posted) {
                self.complete_payment(&payment, &outcome).await?;
                completed += 1;
            }
        }
        let refunds: Vec<RefundRow> = lifecycle::pending_before(&self.pool, grace, 100).await?;
        for refund in refunds {
            let posted = self.post_refund(&refund).await;
            if let Some(outcome) = lifecycle::recovered_outcome("refund", &refund, posted) {
                self.complete_refund(&refund, &outcome).await?;
                completed += 1;
            }
        }
        completed += self.settle_authorizations(grace).await?;
        if completed > 0 {
            metrics::counter!("movement_recovered_total", "kind" => "payment")
                .increment(completed as u64);
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
        lifecycle::run_every("payment recovery", interval, shutdown, || {
            self.recover_once(grace)
        })
        .await;
    }
}
