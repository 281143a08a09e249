//! Reading payments and refunds: a merchant (by key) sees its own, a customer their card's,
//! a merchant's owner that merchant's, `payments.read` everything.

use movement::MovementError;
use movement::lifecycle::{self, Status};
use platform::FieldViolation;
use platform::pagination::Page;
use uuid::Uuid;

use super::{Caller, PAYMENTS_READ, PaymentFilter, PaymentRow, Payments, RefundRow, repo};
use crate::error::TransactionError;

impl Payments {
    async fn load_payment(&self, id: Uuid) -> Result<PaymentRow, TransactionError> {
        lifecycle::load(&self.pool, id)
            .await?
            .ok_or(TransactionError::PaymentNotFound)
    }

    async fn payment_visible(
        &self,
        caller: &Caller,
        payment: &PaymentRow,
    ) -> Result<bool, TransactionError> {
        Ok(match caller {
            Caller::Merchant { merchant_id, .. } => *merchant_id == payment.merchant_id,
            Caller::User { principal, bearer } => {
                principal.has(PAYMENTS_READ)
                    || principal.user_id() == Some(payment.user_id)
                    || self
                        .may_read_merchant(bearer.as_deref(), payment.merchant_id)
                        .await?
            }
        })
    }

    pub async fn get_payment(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<PaymentRow, TransactionError> {
        let payment = self.load_payment(id).await?;
        if self.payment_visible(caller, &payment).await? {
            Ok(payment)
        } else {
            Err(TransactionError::PaymentNotFound)
        }
    }

    /// A page of payments, newest first: a merchant's own (by key); a user's card payments,
    /// or a merchant's they own (`merchant_id`); everything with `payments.read`.
    pub async fn list_payments(
        &self,
        caller: &Caller,
        mut filter: PaymentFilter,
        page: Page,
    ) -> Result<(Vec<PaymentRow>, i64), TransactionError> {
        match caller {
            Caller::Merchant { merchant_id, .. } => {
                if filter.merchant_id.is_some_and(|m| m != *merchant_id) {
                    return Err(FieldViolation::new(
                        "merchant_id",
                        "an API key lists its own merchant's payments only",
                    )
                    .into());
                }
                filter.merchant_id = Some(*merchant_id);
            }
            Caller::User { principal, bearer } => {
                if !principal.has(PAYMENTS_READ) {
                    match filter.merchant_id {
                        Some(merchant_id) => {
                            if !self
                                .may_read_merchant(bearer.as_deref(), merchant_id)
                                .await?
                            {
                                return Err(TransactionError::Movement(MovementError::NotFound(
                                    "merchant",
                                )));
                            }
                        }
                        None => {
                            let me = principal.user_id().ok_or_else(|| {
                                platform::auth::AuthError::MissingPermission(
                                    PAYMENTS_READ.to_owned(),
                                )
                            })?;
                            if filter.user_id.is_some_and(|u| u != me) {
                                return Err(platform::auth::AuthError::MissingPermission(
                                    PAYMENTS_READ.to_owned(),
                                )
                                .into());
                            }
                            filter.user_id = Some(me);
                        }
                    }
                }
            }
        }
        let mut conn = self.pool.acquire().await?;
        let (rows, total) = repo::list_payments(&mut conn, &filter, page).await?;
        Ok((rows, total))
    }

    async fn load_refund(&self, id: Uuid) -> Result<RefundRow, TransactionError> {
        lifecycle::load(&self.pool, id)
            .await?
            .ok_or(TransactionError::RefundNotFound)
    }

    pub async fn get_refund(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<RefundRow, TransactionError> {
        let refund = self.load_refund(id).await?;
        let payment = self.load_payment(refund.payment_id).await?;
        if self.payment_visible(caller, &payment).await? {
            Ok(refund)
        } else {
            Err(TransactionError::RefundNotFound)
        }
    }

    /// Refunds of one payment (anyone who may see the payment), or all refunds of the
    /// caller's merchant (API key) / everyone's (`payments.read`).
    pub async fn list_refunds(
        &self,
        caller: &Caller,
        payment_id: Option<Uuid>,
        status: Option<Status>,
        page: Page,
    ) -> Result<(Vec<RefundRow>, i64), TransactionError> {
        let merchant = match (payment_id, caller) {
            (Some(id), _) => {
                self.get_payment(caller, id).await?;
                None
            }
            (None, Caller::Merchant { merchant_id, .. }) => Some(*merchant_id),
            (None, Caller::User { principal, .. }) => {
                principal.require(PAYMENTS_READ)?;
                None
            }
        };
        let mut conn = self.pool.acquire().await?;
        let (rows, total) =
            repo::list_refunds(&mut conn, payment_id, merchant, status, page).await?;
        Ok((rows, total))
    }
}
