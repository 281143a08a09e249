//! Creating a payment: the merchant's key, the customer's consent (the CVV), then the shared
//! lifecycle — record `pending`, post card → merchant under the payment id, complete.

use chrono::{DateTime, Utc};
use events::Envelope;
use events::payloads::transaction as ev;
use movement::lifecycle::{self, Recorded};
use movement::rules::check_card_number;
use movement::{MovementError, Outcome, Side};
use platform::FieldViolation;
use platform::card_data::{CardNumber, Cvv};
use platform::money::Money;
use proto::card::v1::VerifyCvvRequest;
use proto::merchant::v1::MerchantStatus;
use uuid::Uuid;

use super::{Caller, DEADLINE, NewPayment, PaymentRow, Payments, SOURCE, repo};
use crate::error::TransactionError;

impl Payments {
    fn validate_payment(&self, request: &NewPayment) -> Result<(), TransactionError> {
        let mut violations = Vec::new();
        lifecycle::check_idempotency_key(&request.idempotency_key, &mut violations);
        check_card_number("card_number", request.card_number.expose(), &mut violations);
        let cvv = request.cvv.expose();
        if !(cvv.len() == 3 && cvv.bytes().all(|b| b.is_ascii_digit())) {
            violations.push(FieldViolation::new(
                "cvv",
                "is required: the card's 3-digit CVV, as the customer's consent",
            ));
        }
        self.rules.check_method(&request.method, &mut violations);
        self.rules.check_amount(request.amount, &mut violations);
        if request.description.chars().count() > 255 {
            violations.push(FieldViolation::new(
                "description",
                "must be at most 255 characters",
            ));
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(MovementError::Invalid(violations).into())
        }
    }

    /// The card behind the customer's consent.
    async fn verify_cvv(
        &self,
        number: &CardNumber,
        cvv: &Cvv,
        key_id: Uuid,
    ) -> Result<proto::card::v1::Card, TransactionError> {
        let request = platform::grpc::outgoing(
            VerifyCvvRequest {
                number: number.expose().to_owned(),
                cvv: cvv.expose().to_owned(),
                api_key_id: key_id.to_string(),
            },
            Some(&self.bearer()?),
            DEADLINE,
        );
        match self.cards.clone().verify_cvv(request).await {
            Ok(card) => Ok(card.into_inner()),
            Err(s) => Err(match platform::error::status_reason(&s).as_deref() {
                Some("CVV_MISMATCH") => TransactionError::CvvMismatch(s.message().to_owned()),
                Some("CARD_LOCKED") => TransactionError::CardLocked(s.message().to_owned()),
                Some("API_KEY_CVV_THROTTLED") => {
                    TransactionError::ApiKeyThrottled(s.message().to_owned())
                }
                Some("CARD_NOT_FOUND") => MovementError::CardNotFound("card_number").into(),
                _ => MovementError::Upstream("card service", s).into(),
            }),
        }
    }

    /// Charges a customer's card for a merchant (see the module docs).
    #[tracing::instrument(skip_all, fields(merchant_id))]
    pub async fn create_payment(
        &self,
        caller: &Caller,
        request: NewPayment,
    ) -> Result<PaymentRow, TransactionError> {
        let Caller::Merchant {
            merchant_id,
            merchant_name,
            status,
            currency,
            key_id,
        } = caller
        else {
            return Err(TransactionError::ApiKey {
                reason: "API_KEY_REQUIRED",
                message: "payments are created by merchants: send the merchant's API key \
                          (HTTP: the X-Api-Key header)"
                    .to_owned(),
            });
        };
        tracing::Span::current().record("merchant_id", tracing::field::display(merchant_id));
        self.validate_payment(&request)?;
        if *status != MerchantStatus::Active {
            return Err(TransactionError::MerchantNotActive(*status));
        }
        let started = std::time::Instant::now();
        let requested_by = format!("merchant:{merchant_id}");
        let fingerprint = lifecycle::fingerprint(&[
            request.card_number.expose(),
            &request.amount.to_string(),
            &request.method,
            &request.description,
        ]);
        if let Some(existing) =
            lifecycle::by_key(&self.pool, &requested_by, &request.idempotency_key).await?
        {
            return Ok(lifecycle::replay("payment", existing, &fingerprint)?);
        }
        let card = self
            .verify_cvv(&request.card_number, &request.cvv, *key_id)
            .await?;
        let card = movement::CardInfo::from_proto(&card)?;
        card.check_usable("card_number")?;
        if card.currency != *currency {
            return Err(TransactionError::CurrencyMismatch {
                card: card.currency,
                merchant: currency.clone(),
            });
        }

        let inserted = repo::insert_payment(
            &self.pool,
            &repo::NewPaymentRow {
                requested_by: &requested_by,
                idempotency_key: &request.idempotency_key,
                fingerprint: &fingerprint,
                merchant_id: *merchant_id,
                merchant_name,
                api_key_id: *key_id,
                card: &card,
                amount: request.amount,
                method: &request.method,
                description: &request.description,
                effective_at: request.effective_at,
            },
        )
        .await?;
        let Some(pending) = inserted else {
            return Ok(lifecycle::replay_winner(
                "payment",
                &self.pool,
                &requested_by,
                &request.idempotency_key,
                &fingerprint,
            )
            .await?);
        };
        platform::failpoint::hit("payment.after_pending");
        let outcome = match self.post_payment(&pending).await {
            Ok(outcome) => outcome,
            Err(MovementError::AccountNotReady) => {
                lifecycle::drop_unposted::<PaymentRow>(&self.pool, pending.id).await?;
                return Err(MovementError::AccountNotReady.into());
            }
            Err(e) => return Err(e.into()),
        };
        let payment = self.complete_payment(&pending, &outcome).await?;
        metrics::histogram!("movement_duration_seconds", "kind" => "payment")
            .record(started.elapsed().as_secs_f64());
        Ok(lifecycle::respond("payment", payment)?)
    }

    pub(super) async fn post_payment(&self, p: &PaymentRow) -> Result<Outcome, MovementError> {
        self.upstream
            .post(
                p.id,
                "payment",
                Side::Card(p.card_id),
                Side::Merchant(p.merchant_id),
                money(p.amount, &p.currency)?,
                format!("payment to {}", p.merchant_name),
                p.backdated.then_some(p.created_at),
            )
            .await
    }

    pub(super) async fn complete_payment(
        &self,
        pending: &PaymentRow,
        outcome: &Outcome,
    ) -> Result<PaymentRow, TransactionError> {
        let completed_at = lifecycle::completion_time(pending);
        let (status, reason) = lifecycle::outcome_status(outcome);
        let data = ev::Payment {
            id: pending.id,
            status: status.as_str().to_owned(),
            failure_reason: reason.map(str::to_owned),
            merchant_id: pending.merchant_id,
            merchant_name: pending.merchant_name.clone(),
            api_key_id: pending.api_key_id,
            card_id: pending.card_id,
            user_id: pending.user_id,
            masked_card_number: pending.masked_card_number.clone(),
            amount: pending.amount,
            currency: pending.currency.clone(),
            method: pending.method.clone(),
            description: pending.description.clone(),
            created_at: pending.created_at,
            completed_at,
        };
        let event = envelope("payment", status, pending.id, &data)?;
        self.complete("payment", pending, outcome, completed_at, &event)
            .await
    }

    /// Completes a pending payment or refund with its event on the transaction topic; the
    /// record as it is now (someone else's completion if recovery and the request raced).
    pub(super) async fn complete<R: Recorded>(
        &self,
        kind: &'static str,
        pending: &R,
        outcome: &Outcome,
        completed_at: DateTime<Utc>,
        event: &Envelope,
    ) -> Result<R, TransactionError> {
        let completed = lifecycle::complete(
            kind,
            &self.pool,
            pending,
            outcome,
            completed_at,
            events::topics::TRANSACTION_EVENTS,
            event,
        )
        .await?;
        match completed {
            Some(record) => Ok(record),
            None => lifecycle::load(&self.pool, pending.id())
                .await?
                .ok_or_else(|| TransactionError::internal(anyhow::anyhow!("{kind} vanished"))),
        }
    }
}

/// A recorded amount as money (the row's CHECKs hold it positive with a valid currency).
pub(super) fn money(amount: i64, currency: &str) -> Result<Money, MovementError> {
    Money::positive(amount, currency).map_err(|e| MovementError::Internal(e.into()))
}

/// The completion event of a payment or refund (`<kind>.succeeded` / `<kind>.failed`),
/// keyed by `subject` (the payment, so its history stays in order on one partition).
pub(super) fn envelope<T: serde::Serialize>(
    kind: &str,
    status: movement::Status,
    subject: Uuid,
    data: &T,
) -> Result<Envelope, TransactionError> {
    Envelope::new(
        SOURCE,
        &ev::event_type(kind, status == movement::Status::Succeeded),
        subject,
        data,
    )
    .map_err(TransactionError::internal)
}
