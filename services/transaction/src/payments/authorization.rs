//! Authorizations (payments created with `capture: false`): the amount is held on the card by
//! a ledger hold under the payment id, then
//! - **captured** by the merchant, in full or in part (the rest is released), with the
//!   merchant's fee booked in the capture's posting;
//! - **voided** by the merchant, **cancelled** by the customer (or `payments.write`), or
//!   **expired** by the job that runs with recovery once `expires_at` has passed.
//!
//! Each step first *claims* the payment with one conditional UPDATE from `authorized`
//! (`authorization_state IS NULL`) to `capturing` or `releasing`: of concurrent captures,
//! voids, cancels and the expiry job exactly one claim succeeds, the others see the state it
//! left. The winner then asks the ledger (idempotent by the payment id) and settles the
//! payment with its event in one transaction; a crash in between leaves the claim, which
//! recovery finishes. A capture is idempotent by its Idempotency-Key.

use events::payloads::transaction as ev;
use movement::lifecycle::{self, Recorded};
use movement::{Fee, HoldSettled, MovementError, Outcome};
use platform::FieldViolation;
use uuid::Uuid;

use super::payment::payment_event;
use super::{Caller, PAYMENTS_WRITE, PaymentRow, Payments};
use crate::error::TransactionError;

/// A capture request.
#[derive(Clone, Debug, Default)]
pub struct NewCapture {
    pub payment_id: Uuid,
    /// `None`: the whole authorized amount.
    pub amount: Option<i64>,
    pub idempotency_key: String,
}

/// How an authorization is released without a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// By the merchant (its API key).
    Void,
    /// By the customer (the card's owner) or an admin with `payments.write`.
    Cancel,
    /// By the expiry job.
    Expiry,
}

impl Release {
    fn reason(self) -> &'static str {
        match self {
            Self::Void => "voided",
            Self::Cancel => "cancelled",
            Self::Expiry => "expired",
        }
    }
}

impl Payments {
    /// Captures an authorization (see the module docs).
    #[tracing::instrument(skip_all, fields(payment_id = %request.payment_id))]
    pub async fn capture_payment(
        &self,
        caller: &Caller,
        request: NewCapture,
    ) -> Result<PaymentRow, TransactionError> {
        let mut violations = Vec::new();
        lifecycle::check_idempotency_key(&request.idempotency_key, &mut violations);
        if request.amount.is_some_and(|a| a <= 0) {
            violations.push(FieldViolation::new(
                "amount",
                "must be a positive number of minor units (or absent: the whole authorization)",
            ));
        }
        if !violations.is_empty() {
            return Err(MovementError::Invalid(violations).into());
        }
        let Caller::Merchant { merchant_id, .. } = caller else {
            return Err(api_key_required("captured"));
        };
        let payment = self
            .authorization(request.payment_id, |p| p.merchant_id == *merchant_id)
            .await?;
        let amount = request.amount.unwrap_or(payment.amount);
        if payment.capture_key.as_deref() == Some(request.idempotency_key.as_str()) {
            // A retry: the same capture answers with what it did (or finishes it).
            return if payment.capture_amount == Some(amount) {
                self.finish_capture(payment).await
            } else {
                Err(MovementError::KeyReused.into())
            };
        }
        if payment.state() != "authorized" || expired(&payment) {
            return Err(not_authorized(&payment));
        }
        if amount > payment.amount {
            return Err(TransactionError::CaptureExceedsAuthorization {
                authorized: payment.amount,
            });
        }
        // The fee of the plan the payment was authorized under, on what is captured.
        let fee = payment.pricing().fee(amount);
        if fee >= amount {
            return Err(TransactionError::AmountBelowFee { fee });
        }
        let claimed: Option<PaymentRow> = sqlx::query_as(&format!(
            "UPDATE payments t SET authorization_state = 'capturing', capture_amount = $2,
                 capture_key = $3, fee_amount = $4, claimed_at = now()
             WHERE t.id = $1 AND t.capture_method = 'manual' AND t.status = 'succeeded'
               AND t.authorization_state IS NULL AND t.expires_at > now()
             RETURNING {}",
            PaymentRow::COLUMNS
        ))
        .bind(payment.id)
        .bind(amount)
        .bind(&request.idempotency_key)
        .bind(fee)
        .fetch_optional(&self.pool)
        .await?;
        match claimed {
            Some(claimed) => self.finish_capture(claimed).await,
            None => Err(not_authorized(&self.reload(payment.id).await?)),
        }
    }

    /// Voids (the merchant) or cancels (the customer, or `payments.write`) an authorization.
    #[tracing::instrument(skip_all, fields(%payment_id, ?how))]
    pub async fn release_payment(
        &self,
        caller: &Caller,
        payment_id: Uuid,
        how: Release,
    ) -> Result<PaymentRow, TransactionError> {
        let payment = match (how, caller) {
            (Release::Void, Caller::Merchant { merchant_id, .. }) => {
                self.authorization(payment_id, |p| p.merchant_id == *merchant_id)
                    .await?
            }
            (Release::Void, Caller::User { .. }) => return Err(api_key_required("voided")),
            (Release::Cancel, Caller::User { principal, .. }) => {
                let admin = principal.has(PAYMENTS_WRITE);
                let user = principal.user_id();
                self.authorization(payment_id, |p| admin || Some(p.user_id) == user)
                    .await?
            }
            (Release::Cancel, Caller::Merchant { .. }) => {
                return Err(MovementError::Invalid(vec![FieldViolation::new(
                    "api_key",
                    "a merchant voids an authorization (POST /payments/{id}/void); cancel is \
                     the customer's",
                )])
                .into());
            }
            (Release::Expiry, _) => self.authorization(payment_id, |_| true).await?,
        };
        self.claim_release(payment, how).await
    }

    /// Claims an authorized payment for a release and finishes it.
    async fn claim_release(
        &self,
        payment: PaymentRow,
        how: Release,
    ) -> Result<PaymentRow, TransactionError> {
        if payment.state() != "authorized" {
            return Err(not_authorized(&payment));
        }
        let claimed: Option<PaymentRow> = sqlx::query_as(&format!(
            "UPDATE payments t SET authorization_state = 'releasing', release_reason = $2,
                 claimed_at = now()
             WHERE t.id = $1 AND t.capture_method = 'manual' AND t.status = 'succeeded'
               AND t.authorization_state IS NULL
             RETURNING {}",
            PaymentRow::COLUMNS
        ))
        .bind(payment.id)
        .bind(how.reason())
        .fetch_optional(&self.pool)
        .await?;
        match claimed {
            Some(claimed) => self.finish_release(claimed).await,
            None => Err(not_authorized(&self.reload(payment.id).await?)),
        }
    }

    /// Captures a claimed payment's hold and settles it; idempotent.
    async fn finish_capture(&self, p: PaymentRow) -> Result<PaymentRow, TransactionError> {
        if p.authorization_state.as_deref() != Some("capturing") {
            return Ok(p);
        }
        let amount = p.capture_amount.unwrap_or(p.amount);
        let description = format!("payment to {}", p.merchant_name);
        match self
            .upstream
            .capture(p.id, amount, Fee::revenue(p.fee_amount), description)
            .await?
        {
            Ok(Outcome::Posted) => {
                self.settle(&p, "capturing", "captured", ev::PAYMENT_CAPTURED)
                    .await
            }
            Ok(Outcome::Rejected(rejection)) => Err(TransactionError::internal(anyhow::anyhow!(
                "the ledger answered capture of {} with a rejected posting ({})",
                p.id,
                rejection.code()
            ))),
            Err(HoldSettled(reason)) if reason == "CAPTURE_REJECTED" => {
                // The card's account was closed since: nothing moved, the payment is
                // authorized again (to be voided, cancelled or to expire).
                sqlx::query(
                    "UPDATE payments SET authorization_state = NULL, capture_amount = NULL,
                         capture_key = NULL, fee_amount = 0, claimed_at = NULL
                     WHERE id = $1 AND authorization_state = 'capturing'",
                )
                .bind(p.id)
                .execute(&self.pool)
                .await?;
                Err(TransactionError::NotAuthorized(
                    "authorized, but the ledger refused the capture (the card's account is \
                     closed)"
                        .to_owned(),
                ))
            }
            Err(HoldSettled(reason)) => Err(TransactionError::internal(anyhow::anyhow!(
                "payment {} is capturing but its hold is settled ({reason})",
                p.id
            ))),
        }
    }

    /// Releases a claimed payment's hold and settles it; idempotent.
    async fn finish_release(&self, p: PaymentRow) -> Result<PaymentRow, TransactionError> {
        if p.authorization_state.as_deref() != Some("releasing") {
            return Ok(p);
        }
        let reason = p.release_reason.clone().unwrap_or_default();
        match self.upstream.release(p.id, &reason).await? {
            Ok(()) => {
                self.settle(&p, "releasing", "released", ev::PAYMENT_VOIDED)
                    .await
            }
            Err(HoldSettled(code)) => Err(TransactionError::internal(anyhow::anyhow!(
                "payment {} is releasing but its hold is settled ({code})",
                p.id
            ))),
        }
    }

    /// Moves a claimed payment `from` → `to` with its event, in one transaction; the payment
    /// as it is now (someone else's settlement if recovery and a request raced).
    async fn settle(
        &self,
        p: &PaymentRow,
        from: &str,
        to: &str,
        event_type: &str,
    ) -> Result<PaymentRow, TransactionError> {
        let mut tx = self.pool.begin().await?;
        let settled: Option<PaymentRow> = sqlx::query_as(&format!(
            "UPDATE payments t SET authorization_state = $3, settled_at = now()
             WHERE t.id = $1 AND t.authorization_state = $2
             RETURNING {}",
            PaymentRow::COLUMNS
        ))
        .bind(p.id)
        .bind(from)
        .bind(to)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(settled) = settled else {
            tx.rollback().await?;
            return self.reload(p.id).await;
        };
        let event = payment_event(event_type, &settled)?;
        events::outbox::enqueue(&mut tx, events::topics::TRANSACTION_EVENTS, &event).await?;
        tx.commit().await?;
        metrics::counter!("payment_authorizations_settled_total", "state" => settled.state().to_owned())
            .increment(1);
        tracing::info!(payment_id = %p.id, state = settled.state(), "authorization settled");
        Ok(settled)
    }

    /// The expiry job and recovery of authorizations: releases authorizations past their
    /// deadline, and finishes captures and releases a crash or a timeout left claimed for
    /// longer than `grace`. Returns how many it settled.
    pub(super) async fn settle_authorizations(
        &self,
        grace: std::time::Duration,
    ) -> Result<usize, TransactionError> {
        let due: Vec<PaymentRow> = sqlx::query_as(&format!(
            "SELECT {} FROM payments t
             WHERE t.capture_method = 'manual' AND t.status = 'succeeded'
               AND ((t.authorization_state IN ('capturing', 'releasing')
                     AND t.claimed_at < now() - make_interval(secs => $1))
                    OR (t.authorization_state IS NULL AND t.expires_at <= now()))
             ORDER BY t.expires_at LIMIT 100",
            PaymentRow::COLUMNS
        ))
        .bind(grace.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        let mut settled = 0;
        for payment in due {
            let id = payment.id;
            let result = match payment.authorization_state.as_deref() {
                Some("capturing") => self.finish_capture(payment).await,
                Some("releasing") => self.finish_release(payment).await,
                _ => self.claim_release(payment, Release::Expiry).await,
            };
            match result {
                Ok(_) => settled += 1,
                // A request settled it first.
                Err(TransactionError::NotAuthorized(_)) => {}
                Err(e) => tracing::warn!(payment_id = %id, error = %e, "authorization not settled"),
            }
        }
        Ok(settled)
    }

    /// An authorization the caller may act on (`allowed`), or PAYMENT_NOT_FOUND.
    async fn authorization(
        &self,
        id: Uuid,
        allowed: impl FnOnce(&PaymentRow) -> bool,
    ) -> Result<PaymentRow, TransactionError> {
        let payment = self.reload(id).await?;
        if !allowed(&payment) {
            return Err(TransactionError::PaymentNotFound);
        }
        if !payment.is_authorization() {
            return Err(TransactionError::NotAuthorized(format!(
                "{} (captured when it was created)",
                payment.state()
            )));
        }
        Ok(payment)
    }

    async fn reload(&self, id: Uuid) -> Result<PaymentRow, TransactionError> {
        lifecycle::load(&self.pool, id)
            .await?
            .ok_or(TransactionError::PaymentNotFound)
    }
}

/// An authorization past its deadline that the job has not released yet.
fn expired(p: &PaymentRow) -> bool {
    p.expires_at.is_some_and(|at| at <= chrono::Utc::now())
}

fn not_authorized(p: &PaymentRow) -> TransactionError {
    let state = if p.state() == "authorized" && expired(p) {
        "expired"
    } else {
        p.state()
    };
    TransactionError::NotAuthorized(state.to_owned())
}

fn api_key_required(what: &str) -> TransactionError {
    TransactionError::ApiKey {
        reason: "API_KEY_REQUIRED",
        message: format!(
            "authorizations are {what} by their merchant: send the merchant's API key \
             (HTTP: the X-Api-Key header)"
        ),
    }
}
