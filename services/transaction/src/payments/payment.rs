//! Creating a payment: the merchant's key, the customer's consent (the CVV), then the shared
//! lifecycle — record `pending`, post card → merchant under the payment id (with the
//! merchant's fee as a third leg into the platform's revenue), complete. An authorization
//! (`capture: false`) places a ledger hold under the payment id instead; [`super::authorization`]
//! captures, voids, cancels and expires it.

use chrono::{DateTime, Utc};
use events::Envelope;
use events::payloads::transaction as ev;
use movement::lifecycle::{self, Recorded};
use movement::rules::check_card_number;
use movement::{Fee, MovementError, Outcome, Side, Status};
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
        if !request.capture && request.effective_at.is_some() {
            violations.push(FieldViolation::new(
                "capture",
                "an imported (backdated) payment is captured: authorizations happen now",
            ));
        }
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
            pricing,
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
            if request.capture {
                "capture"
            } else {
                "authorize"
            },
        ]);
        if let Some(existing) =
            lifecycle::by_key(&self.pool, &requested_by, &request.idempotency_key).await?
        {
            return Ok(lifecycle::replay("payment", existing, &fingerprint)?);
        }
        // An automatic payment's fee is booked with it; an authorization's at capture.
        let fee = if request.capture {
            pricing.fee(request.amount)
        } else {
            0
        };
        if fee >= request.amount {
            return Err(TransactionError::AmountBelowFee { fee });
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
                expires_at: (!request.capture).then(|| Utc::now() + self.authorization_ttl),
                pricing,
                fee_amount: fee,
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

    /// Posts a payment card → merchant with its fee, or places an authorization's hold.
    pub(super) async fn post_payment(&self, p: &PaymentRow) -> Result<Outcome, MovementError> {
        let description = format!("payment to {}", p.merchant_name);
        if p.is_authorization() {
            return self
                .upstream
                .hold(
                    p.id,
                    p.card_id,
                    Side::Merchant(p.merchant_id),
                    money(p.amount, &p.currency)?,
                    description,
                )
                .await;
        }
        self.upstream
            .post_with_fee(
                p.id,
                "payment",
                Side::Card(p.card_id),
                Side::Merchant(p.merchant_id),
                money(p.amount, &p.currency)?,
                Fee::revenue(p.fee_amount),
                description,
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
        let mut done = pending.clone();
        done.status = status;
        done.failure_reason = reason.map(str::to_owned);
        done.completed_at = Some(completed_at);
        let event_type = match (status, pending.is_authorization()) {
            (Status::Succeeded, true) => ev::PAYMENT_AUTHORIZED.to_owned(),
            (status, _) => ev::event_type("payment", status == Status::Succeeded),
        };
        let event = payment_event(&event_type, &done)?;
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

/// A payment's event of `event_type` as the payment is in `p`, keyed by the payment so its
/// history stays in order on one partition.
pub(super) fn payment_event(
    event_type: &str,
    p: &PaymentRow,
) -> Result<Envelope, TransactionError> {
    let data = ev::Payment {
        id: p.id,
        status: p.status.as_str().to_owned(),
        failure_reason: p.failure_reason.clone(),
        merchant_id: p.merchant_id,
        merchant_name: p.merchant_name.clone(),
        api_key_id: p.api_key_id,
        card_id: p.card_id,
        user_id: p.user_id,
        masked_card_number: p.masked_card_number.clone(),
        amount: p.amount,
        currency: p.currency.clone(),
        method: p.method.clone(),
        description: p.description.clone(),
        created_at: p.created_at,
        completed_at: p.completed_at.unwrap_or(p.created_at),
        capture_method: Some(p.capture_method.clone()),
        state: Some(p.state().to_owned()),
        captured_amount: Some(p.captured_amount()),
        fee_amount: Some(p.fee_amount),
        expires_at: p.expires_at,
    };
    Envelope::new(SOURCE, event_type, p.id, &data).map_err(TransactionError::internal)
}

/// The completion event of a refund (`refund.succeeded` / `refund.failed`), keyed by
/// `subject` (the payment, so its history stays in order on one partition).
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
