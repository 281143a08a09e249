//! Refunding a payment: the amount is reserved against what remains under the payment's row
//! lock (pending and succeeded refunds count), so concurrent refunds never exceed it; then
//! the shared lifecycle — post merchant → card under the refund id, complete. A failed
//! refund releases its reservation by being failed.

use movement::MovementError;
use movement::lifecycle::{self, Status};
use movement::{Fee, Outcome, Side};
use platform::FieldViolation;
use platform::money::Money;
use proto::merchant::v1::MerchantStatus;

use super::payment::{envelope, money};
use super::{Caller, NewRefund, PAYMENTS_WRITE, Payments, Pricing, RefundRow, RefundTarget, repo};
use crate::error::TransactionError;
use events::payloads::transaction as ev;

impl Payments {
    /// Refunds part or all of a payment (see the module docs).
    #[tracing::instrument(skip_all, fields(payment_id = %request.payment_id))]
    pub async fn create_refund(
        &self,
        caller: &Caller,
        request: NewRefund,
    ) -> Result<RefundRow, TransactionError> {
        let mut violations = Vec::new();
        lifecycle::check_idempotency_key(&request.idempotency_key, &mut violations);
        if request.amount <= 0 {
            violations.push(FieldViolation::new(
                "amount",
                "must be a positive number of minor units",
            ));
        }
        if request.reason.chars().count() > 255 {
            violations.push(FieldViolation::new(
                "reason",
                "must be at most 255 characters",
            ));
        }
        if !violations.is_empty() {
            return Err(MovementError::Invalid(violations).into());
        }
        let requested_by = match caller {
            Caller::Merchant {
                merchant_id,
                status,
                ..
            } => {
                // A deactivated merchant may still give money back; one never approved has
                // no payments to refund.
                if !matches!(status, MerchantStatus::Active | MerchantStatus::Inactive) {
                    return Err(TransactionError::MerchantNotActive(*status));
                }
                format!("merchant:{merchant_id}")
            }
            Caller::User { principal, .. } => {
                principal.require(PAYMENTS_WRITE)?;
                lifecycle::requested_by(principal)
            }
        };
        let fingerprint = lifecycle::fingerprint(&[
            &request.payment_id.to_string(),
            &request.amount.to_string(),
            &request.reason,
        ]);
        if let Some(existing) =
            lifecycle::by_key(&self.pool, &requested_by, &request.idempotency_key).await?
        {
            return Ok(lifecycle::replay("refund", existing, &fingerprint)?);
        }

        // Reserve the amount under the payment's row lock: concurrent refunds of one payment
        // queue here, each sees the others' pending and succeeded refunds.
        let mut tx = self.pool.begin().await?;
        let payment = repo::payment_for_refund(&mut *tx, request.payment_id)
            .await?
            .ok_or(TransactionError::PaymentNotFound)?;
        let RefundTarget {
            id: payment_id,
            status,
            amount,
            capture_method,
            authorization_state,
            capture_amount,
            fee_amount,
            fee_refund,
            merchant_id,
            card_id,
            masked_card_number: masked,
            currency,
            user_id,
        } = payment;
        if let Caller::Merchant {
            merchant_id: mine, ..
        } = caller
            && *mine != merchant_id
        {
            return Err(TransactionError::PaymentNotFound);
        }
        // Only money that moved can go back: a succeeded payment, or what was captured of an
        // authorization.
        let captured = match (
            status,
            capture_method.as_str(),
            authorization_state.as_deref(),
        ) {
            (Status::Succeeded, "automatic", _) => amount,
            (Status::Succeeded, _, Some("captured")) => capture_amount.unwrap_or(0),
            (Status::Succeeded, _, None) => {
                return Err(TransactionError::NotRefundable("authorized".to_owned()));
            }
            (Status::Succeeded, _, Some(state)) => {
                return Err(TransactionError::NotRefundable(state.to_owned()));
            }
            (status, _, _) => {
                return Err(TransactionError::NotRefundable(status.as_str().to_owned()));
            }
        };
        let (reserved, fee_reserved) = repo::reserved_for_refunds(&mut *tx, payment_id).await?;
        let paid = Money::new(captured, &currency).map_err(TransactionError::internal)?;
        let remaining = Money::new(reserved, &currency)
            .and_then(|reserved| paid.checked_sub(reserved))
            .map_err(TransactionError::internal)?
            .minor();
        if request.amount > remaining {
            return Err(TransactionError::RefundExceedsPayment {
                amount: captured,
                remaining,
            });
        }
        let plan = Pricing {
            refund_fee: fee_refund,
            ..Pricing::default()
        };
        let fee_returned =
            plan.fee_returned(fee_amount, captured, reserved, fee_reserved, request.amount);
        let inserted = repo::insert_refund(
            &mut *tx,
            &repo::NewRefundRow {
                payment_id,
                requested_by: &requested_by,
                idempotency_key: &request.idempotency_key,
                fingerprint: &fingerprint,
                merchant_id,
                card_id,
                user_id,
                masked_card_number: &masked,
                amount: request.amount,
                currency: &currency,
                reason: request.reason.trim(),
                effective_at: request.effective_at,
                fee_returned,
            },
        )
        .await?;
        tx.commit().await?;
        let Some(pending) = inserted else {
            return Ok(lifecycle::replay_winner(
                "refund",
                &self.pool,
                &requested_by,
                &request.idempotency_key,
                &fingerprint,
            )
            .await?);
        };
        platform::failpoint::hit("refund.after_pending");
        let outcome = self.post_refund(&pending).await?;
        let refund = self.complete_refund(&pending, &outcome).await?;
        Ok(lifecycle::respond("refund", refund)?)
    }

    pub(super) async fn post_refund(&self, r: &RefundRow) -> Result<Outcome, MovementError> {
        // The merchant pays the refund less the fee it returns; the platform's revenue the
        // returned fee.
        self.upstream
            .post_with_fee(
                r.id,
                "refund",
                Side::Merchant(r.merchant_id),
                Side::Card(r.card_id),
                money(r.amount, &r.currency)?,
                Fee::revenue(-r.fee_returned),
                format!("refund of payment {}", r.payment_id),
                r.backdated.then_some(r.created_at),
            )
            .await
    }

    pub(super) async fn complete_refund(
        &self,
        pending: &RefundRow,
        outcome: &Outcome,
    ) -> Result<RefundRow, TransactionError> {
        let completed_at = lifecycle::completion_time(pending);
        let (status, reason) = lifecycle::outcome_status(outcome);
        let merchant_name = repo::merchant_name(&self.pool, pending.payment_id).await?;
        let data = ev::Refund {
            id: pending.id,
            payment_id: pending.payment_id,
            status: status.as_str().to_owned(),
            failure_reason: reason.map(str::to_owned),
            merchant_id: pending.merchant_id,
            merchant_name,
            card_id: pending.card_id,
            user_id: pending.user_id,
            masked_card_number: pending.masked_card_number.clone(),
            amount: pending.amount,
            currency: pending.currency.clone(),
            reason: pending.reason.clone(),
            fee_returned: Some(pending.fee_returned),
            created_at: pending.created_at,
            completed_at,
        };
        // Keyed by the payment so a payment's history stays in order on one partition.
        let event = envelope("refund", status, pending.payment_id, &data)?;
        self.complete("refund", pending, outcome, completed_at, &event)
            .await
    }
}
