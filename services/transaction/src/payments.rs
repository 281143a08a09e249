//! Merchant payments and refunds, orchestrated like transfers (see the movement crate):
//!
//! Payment: authenticate the API key (merchant service) → the merchant must be active →
//! an idempotency key seen before returns the original answer → the customer's consent:
//! the CVV checked by the card service (mismatches count toward a lock) → record `pending` →
//! post card → merchant under the payment id → record the outcome with its event.
//!
//! Refund: the payment's merchant (by key) or an admin → lock the payment row and reserve
//! the amount against what remains (pending and succeeded refunds count), so concurrent
//! refunds can never exceed the payment → post merchant → card under the refund id →
//! record the outcome; a failed refund releases its reservation.
//!
//! A crash between recording and completing leaves a pending row; recovery re-posts it
//! under the same id (the ledger answers with what it did) and completes it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::Envelope;
use events::payloads::transaction as ev;
use movement::{MovementError, Outcome, Side, Upstream};
use platform::FieldViolation;
use platform::auth::{Authenticator, Principal, ServiceToken, Subject};
use platform::pagination::Page;
use proto::card::v1::VerifyCvvRequest;
use proto::card::v1::card_service_client::CardServiceClient;
use proto::merchant::v1::merchant_service_client::MerchantServiceClient;
use proto::merchant::v1::{AuthenticateApiKeyRequest, MerchantIdRequest};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::error::TransactionError;

pub const PAYMENTS_READ: &str = "payments.read";
pub const PAYMENTS_WRITE: &str = "payments.write";

const SOURCE: &str = "transaction-service";
const DEADLINE: Duration = Duration::from_secs(5);

/// Limits and catalogue of payments (`PAYMENT_MIN_AMOUNT`, `PAYMENT_MAX_AMOUNT`,
/// `PAYMENT_METHODS`).
#[derive(Clone, Debug)]
pub struct Rules {
    pub min_amount: i64,
    pub max_amount: i64,
    pub methods: Vec<String>,
}

impl Rules {
    pub fn from_env() -> anyhow::Result<Self> {
        let min_amount = platform::config::parsed("PAYMENT_MIN_AMOUNT", 100_i64)?;
        let max_amount = platform::config::parsed("PAYMENT_MAX_AMOUNT", 10_000_000_000_i64)?;
        anyhow::ensure!(
            0 < min_amount && min_amount <= max_amount,
            "PAYMENT_MIN_AMOUNT must be positive and not above PAYMENT_MAX_AMOUNT"
        );
        let methods =
            platform::config::optional("PAYMENT_METHODS", &movement::DEFAULT_METHODS.join(","))
                .split(',')
                .map(|m| m.trim().to_lowercase())
                .filter(|m| !m.is_empty())
                .collect();
        Ok(Self {
            min_amount,
            max_amount,
            methods,
        })
    }
}

/// A payment row; `refunded_amount` is the sum of its succeeded refunds.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PaymentRow {
    pub id: Uuid,
    pub requested_by: String,
    pub idempotency_key: String,
    pub fingerprint: Vec<u8>,
    pub merchant_id: Uuid,
    pub merchant_name: String,
    pub api_key_id: Uuid,
    pub card_id: Uuid,
    pub user_id: Uuid,
    pub masked_card_number: String,
    pub amount: i64,
    pub currency: String,
    pub method: String,
    pub description: String,
    pub status: String,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub backdated: bool,
    pub refunded_amount: i64,
}

const PAYMENT_BASE: &str = "p.id, p.requested_by, p.idempotency_key, p.fingerprint,
    p.merchant_id, p.merchant_name, p.api_key_id, p.card_id, p.user_id, p.masked_card_number,
    p.amount, p.currency, p.method, p.description, p.status, p.failure_reason, p.created_at,
    p.completed_at, p.backdated";

const REFUNDED: &str = "COALESCE((SELECT sum(r.amount) FROM refunds r
    WHERE r.payment_id = p.id AND r.status = 'succeeded'), 0)::bigint AS refunded_amount";

/// A refund row.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RefundRow {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub requested_by: String,
    pub idempotency_key: String,
    pub fingerprint: Vec<u8>,
    pub merchant_id: Uuid,
    pub card_id: Uuid,
    pub user_id: Uuid,
    pub masked_card_number: String,
    pub amount: i64,
    pub currency: String,
    pub reason: String,
    pub status: String,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub backdated: bool,
}

const REFUND_COLUMNS: &str = "id, payment_id, requested_by, idempotency_key, fingerprint,
    merchant_id, card_id, user_id, masked_card_number, amount, currency, reason, status,
    failure_reason, created_at, completed_at, backdated";

impl movement::Recorded for PaymentRow {
    fn id(&self) -> Uuid {
        self.id
    }
    fn fingerprint(&self) -> &[u8] {
        &self.fingerprint
    }
    fn status(&self) -> &str {
        &self.status
    }
    fn failure_reason(&self) -> Option<&str> {
        self.failure_reason.as_deref()
    }
}

impl movement::Recorded for RefundRow {
    fn id(&self) -> Uuid {
        self.id
    }
    fn fingerprint(&self) -> &[u8] {
        &self.fingerprint
    }
    fn status(&self) -> &str {
        &self.status
    }
    fn failure_reason(&self) -> Option<&str> {
        self.failure_reason.as_deref()
    }
}

/// Whether the caller may read a merchant (its owner, or `merchants.read`): the merchant
/// service decides, asked with the caller's own token.
pub async fn merchant_readable(
    merchants: &MerchantServiceClient<Channel>,
    bearer: Option<&str>,
    merchant_id: Uuid,
) -> Result<bool, MovementError> {
    let Some(bearer) = bearer else {
        return Ok(false);
    };
    let request = platform::grpc::outgoing(
        MerchantIdRequest {
            id: merchant_id.to_string(),
        },
        Some(bearer),
        DEADLINE,
    );
    match merchants.clone().get_merchant(request).await {
        Ok(_) => Ok(true),
        Err(s)
            if matches!(
                s.code(),
                tonic::Code::NotFound | tonic::Code::PermissionDenied
            ) =>
        {
            Ok(false)
        }
        Err(s) => Err(MovementError::Upstream("merchant service", s)),
    }
}

/// What a refund needs of its payment.
#[derive(Debug, sqlx::FromRow)]
struct RefundTarget {
    id: Uuid,
    status: String,
    amount: i64,
    merchant_id: Uuid,
    card_id: Uuid,
    masked_card_number: String,
    currency: String,
    user_id: Uuid,
}

/// A payment request as the merchant sent it.
#[derive(Clone, Debug, Default)]
pub struct NewPayment {
    pub idempotency_key: String,
    pub card_number: String,
    pub cvv: String,
    pub amount: i64,
    pub method: String,
    pub description: String,
    /// Imports and demo data (`ledger.backdate`): when it happened; `None` = now.
    pub effective_at: Option<DateTime<Utc>>,
}

/// A refund request.
#[derive(Clone, Debug, Default)]
pub struct NewRefund {
    pub idempotency_key: String,
    pub payment_id: Uuid,
    pub amount: i64,
    pub reason: String,
    /// As for payments.
    pub effective_at: Option<DateTime<Utc>>,
}

/// Who is asking: a merchant by API key, or a user / service by token.
#[derive(Clone, Debug)]
pub enum Caller {
    Merchant {
        merchant_id: Uuid,
        merchant_name: String,
        status: String,
        currency: String,
        key_id: Uuid,
    },
    User {
        principal: Principal,
        /// The caller's own bearer token, to ask the merchant service whether they may
        /// read a merchant (its owner or `merchants.read`).
        bearer: Option<String>,
    },
}

/// Filters of a payment list.
#[derive(Clone, Debug, Default)]
pub struct PaymentFilter {
    pub status: Option<&'static str>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub card_id: Option<Uuid>,
    pub merchant_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub method: Option<String>,
}

fn check_key(key: &str, violations: &mut Vec<FieldViolation>) {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        violations.push(FieldViolation::new(
            "idempotency_key",
            "is required: 1-255 visible ASCII characters (HTTP: the Idempotency-Key header)",
        ));
    }
}

fn fingerprint(parts: &[&str]) -> Vec<u8> {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize().to_vec()
}

/// The payment and refund orchestrator.
#[derive(Clone)]
pub struct Payments {
    pool: PgPool,
    authenticator: Authenticator,
    upstream: Upstream,
    cards: CardServiceClient<Channel>,
    merchants: MerchantServiceClient<Channel>,
    token: Arc<ServiceToken>,
    rules: Arc<Rules>,
}

impl Payments {
    pub fn new(
        pool: PgPool,
        authenticator: Authenticator,
        upstream: Upstream,
        cards: CardServiceClient<Channel>,
        merchants: MerchantServiceClient<Channel>,
        token: ServiceToken,
        rules: Rules,
    ) -> Self {
        Self {
            pool,
            authenticator,
            upstream,
            cards,
            merchants,
            token: Arc::new(token),
            rules: Arc::new(rules),
        }
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.authenticator
    }

    fn bearer(&self) -> Result<String, TransactionError> {
        self.token.bearer().map_err(TransactionError::internal)
    }

    /// Resolves the caller of a request: the API key when given, otherwise the bearer token.
    pub async fn caller<T>(
        &self,
        request: &tonic::Request<T>,
        api_key: &str,
    ) -> Result<Caller, TransactionError> {
        let api_key = api_key.trim();
        if !api_key.is_empty() {
            return self.authenticate_key(api_key).await;
        }
        let principal = self.authenticator.require(request).await?;
        let bearer = platform::auth::bearer_token(request.metadata()).map(str::to_owned);
        Ok(Caller::User { principal, bearer })
    }

    async fn authenticate_key(&self, api_key: &str) -> Result<Caller, TransactionError> {
        let request = platform::grpc::outgoing(
            AuthenticateApiKeyRequest {
                api_key: api_key.to_owned(),
            },
            Some(&self.bearer()?),
            DEADLINE,
        );
        match self.merchants.clone().authenticate_api_key(request).await {
            Ok(identity) => {
                let identity = identity.into_inner();
                let merchant = identity.merchant.unwrap_or_default();
                let parse = |raw: &str| {
                    raw.parse::<Uuid>().map_err(|e| {
                        TransactionError::internal(anyhow::anyhow!(
                            "merchant service sent {raw:?}: {e}"
                        ))
                    })
                };
                let status = proto::merchant::v1::MerchantStatus::try_from(merchant.status).map_or(
                    "unknown",
                    |s| match s {
                        proto::merchant::v1::MerchantStatus::Active => "active",
                        proto::merchant::v1::MerchantStatus::Pending => "pending",
                        proto::merchant::v1::MerchantStatus::Rejected => "rejected",
                        proto::merchant::v1::MerchantStatus::Inactive => "inactive",
                        proto::merchant::v1::MerchantStatus::Unspecified => "unknown",
                    },
                );
                Ok(Caller::Merchant {
                    merchant_id: parse(&merchant.id)?,
                    merchant_name: merchant.name,
                    status: status.to_owned(),
                    currency: merchant.currency,
                    key_id: parse(&identity.key_id)?,
                })
            }
            Err(s) if s.code() == tonic::Code::Unauthenticated => {
                let reason = match platform::error::status_reason(&s).as_deref() {
                    Some("API_KEY_REVOKED") => "API_KEY_REVOKED",
                    Some("API_KEY_EXPIRED") => "API_KEY_EXPIRED",
                    _ => "INVALID_API_KEY",
                };
                Err(TransactionError::ApiKey {
                    reason,
                    message: s.message().to_owned(),
                })
            }
            Err(s) => Err(MovementError::Upstream("merchant service", s).into()),
        }
    }

    /// Whether a user may read `merchant_id`'s payments (see [`merchant_readable`]).
    async fn may_read_merchant(
        &self,
        bearer: Option<&str>,
        merchant_id: Uuid,
    ) -> Result<bool, TransactionError> {
        Ok(merchant_readable(&self.merchants, bearer, merchant_id).await?)
    }

    fn validate_payment(&self, request: &NewPayment) -> Result<(), TransactionError> {
        let mut violations = Vec::new();
        check_key(&request.idempotency_key, &mut violations);
        let number = &request.card_number;
        if !(number.len() == 16 && number.bytes().all(|b| b.is_ascii_digit())) {
            violations.push(FieldViolation::new(
                "card_number",
                "must be a 16-digit card number",
            ));
        }
        if !(request.cvv.len() == 3 && request.cvv.bytes().all(|b| b.is_ascii_digit())) {
            violations.push(FieldViolation::new(
                "cvv",
                "is required: the card's 3-digit CVV, as the customer's consent",
            ));
        }
        if !self.rules.methods.contains(&request.method) {
            violations.push(FieldViolation::new(
                "method",
                format!("must be one of {}", self.rules.methods.join(", ")),
            ));
        }
        if request.amount <= 0 {
            violations.push(FieldViolation::new(
                "amount",
                "must be a positive number of minor units",
            ));
        } else if request.amount < self.rules.min_amount || request.amount > self.rules.max_amount {
            violations.push(FieldViolation::new(
                "amount",
                format!(
                    "must be between {} and {} minor units",
                    self.rules.min_amount, self.rules.max_amount
                ),
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
        number: &str,
        cvv: &str,
        key_id: Uuid,
    ) -> Result<proto::card::v1::Card, TransactionError> {
        let request = platform::grpc::outgoing(
            VerifyCvvRequest {
                number: number.to_owned(),
                cvv: cvv.to_owned(),
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

    async fn payment_by_key(
        &self,
        requested_by: &str,
        key: &str,
    ) -> Result<Option<PaymentRow>, TransactionError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {PAYMENT_BASE}, {REFUNDED} FROM payments p
             WHERE p.requested_by = $1 AND p.idempotency_key = $2"
        ))
        .bind(requested_by)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?)
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
        if status != "active" {
            return Err(TransactionError::MerchantNotActive(status.clone()));
        }
        let started = std::time::Instant::now();
        let requested_by = format!("merchant:{merchant_id}");
        let fingerprint = fingerprint(&[
            &request.card_number,
            &request.amount.to_string(),
            &request.method,
            &request.description,
        ]);
        if let Some(existing) = self
            .payment_by_key(&requested_by, &request.idempotency_key)
            .await?
        {
            return Ok(movement::replay("payment", existing, &fingerprint)?);
        }
        let card = self
            .verify_cvv(&request.card_number, &request.cvv, *key_id)
            .await?;
        let card_info = movement::CardInfo::from_proto(&card).map_err(TransactionError::from)?;
        if card_info.trashed {
            return Err(MovementError::CardInactive("card_number").into());
        }
        if card_info.expired {
            return Err(MovementError::CardExpired("card_number").into());
        }
        if card_info.currency != *currency {
            return Err(TransactionError::CurrencyMismatch {
                card: card_info.currency,
                merchant: currency.clone(),
            });
        }

        let inserted: Option<PaymentRow> = sqlx::query_as(&format!(
            "WITH p AS (
                 INSERT INTO payments (id, requested_by, idempotency_key, fingerprint,
                     merchant_id, merchant_name, api_key_id, card_id, user_id,
                     masked_card_number, amount, currency, method, description, created_at,
                     backdated)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                     COALESCE($15, now()), $15 IS NOT NULL)
                 ON CONFLICT (requested_by, idempotency_key) DO NOTHING
                 RETURNING *)
             SELECT {PAYMENT_BASE}, 0::bigint AS refunded_amount FROM p"
        ))
        .bind(Uuid::now_v7())
        .bind(&requested_by)
        .bind(&request.idempotency_key)
        .bind(&fingerprint)
        .bind(merchant_id)
        .bind(merchant_name)
        .bind(key_id)
        .bind(card_info.id)
        .bind(card_info.user_id)
        .bind(&card_info.masked_number)
        .bind(request.amount)
        .bind(&card_info.currency)
        .bind(&request.method)
        .bind(&request.description)
        .bind(request.effective_at)
        .fetch_optional(&self.pool)
        .await?;
        let Some(pending) = inserted else {
            // A concurrent request with the same key won the insert.
            let existing = self
                .payment_by_key(&requested_by, &request.idempotency_key)
                .await?
                .ok_or_else(|| TransactionError::internal(anyhow::anyhow!("key vanished")))?;
            return Ok(movement::replay("payment", existing, &fingerprint)?);
        };
        platform::failpoint::hit("payment.after_pending");
        let outcome = match self.post_payment(&pending).await {
            Ok(outcome) => outcome,
            Err(MovementError::AccountNotReady) => {
                // The ledger recorded nothing: drop the intent so the key can be retried.
                sqlx::query("DELETE FROM payments WHERE id = $1 AND status = 'pending'")
                    .bind(pending.id)
                    .execute(&self.pool)
                    .await?;
                return Err(MovementError::AccountNotReady.into());
            }
            Err(e) => return Err(e.into()),
        };
        let payment = self.complete_payment(&pending, &outcome).await?;
        metrics::histogram!("movement_duration_seconds", "kind" => "payment")
            .record(started.elapsed().as_secs_f64());
        Ok(movement::respond("payment", payment)?)
    }

    async fn post_payment(&self, p: &PaymentRow) -> Result<Outcome, MovementError> {
        self.upstream
            .post(
                p.id,
                "payment",
                Side::Card(p.card_id),
                Side::Merchant(p.merchant_id),
                p.amount,
                &p.currency,
                format!("payment to {}", p.merchant_name),
                p.backdated.then_some(p.created_at),
            )
            .await
    }

    async fn complete_payment(
        &self,
        pending: &PaymentRow,
        outcome: &Outcome,
    ) -> Result<PaymentRow, TransactionError> {
        let (status, reason) = outcome_status(outcome);
        let completed_at = if pending.backdated {
            pending.created_at
        } else {
            Utc::now()
        };
        let data = ev::Payment {
            id: pending.id,
            status: status.to_owned(),
            failure_reason: reason.clone(),
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
        let event = Envelope::new(
            SOURCE,
            &ev::event_type("payment", status == "succeeded"),
            pending.id,
            &data,
        )
        .map_err(TransactionError::internal)?;
        let done = self
            .complete(
                "payments",
                pending.id,
                status,
                &reason,
                completed_at,
                &event,
            )
            .await?;
        if done {
            metrics::counter!("movements_total", "kind" => "payment", "status" => status)
                .increment(1);
            tracing::info!(payment_id = %pending.id, status, ?reason, amount = pending.amount,
                "payment completed");
        }
        self.load_payment(pending.id).await
    }

    /// Sets a pending row's outcome and queues its event in one statement; false when
    /// someone else (recovery racing the request) completed it first.
    async fn complete(
        &self,
        table: &str,
        id: Uuid,
        status: &str,
        reason: &Option<String>,
        completed_at: DateTime<Utc>,
        event: &Envelope,
    ) -> Result<bool, TransactionError> {
        let (payload, headers) =
            events::outbox::encode(event).map_err(TransactionError::internal)?;
        let done: Option<bool> = sqlx::query_scalar(&format!(
            "WITH done AS (
                 UPDATE {table} SET status = $2, failure_reason = $3, completed_at = $4
                 WHERE id = $1 AND status = 'pending' RETURNING id),
             event AS (
                 INSERT INTO outbox (event_id, topic, partition_key, event_type, payload, headers)
                 SELECT $5, $6, $7, $8, $9, $10 FROM done RETURNING 1)
             SELECT pg_notify('outbox_' || current_schema(), '') IS NULL FROM done"
        ))
        .bind(id)
        .bind(status)
        .bind(reason)
        .bind(completed_at)
        .bind(event.id)
        .bind(events::topics::TRANSACTION_EVENTS)
        .bind(&event.subject)
        .bind(&event.event_type)
        .bind(payload)
        .bind(headers)
        .fetch_optional(&self.pool)
        .await?;
        Ok(done.is_some())
    }

    async fn load_payment(&self, id: Uuid) -> Result<PaymentRow, TransactionError> {
        sqlx::query_as(&format!(
            "SELECT {PAYMENT_BASE}, {REFUNDED} FROM payments p WHERE p.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
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
        let predicate = "WHERE ($1::text IS NULL OR p.status = $1)
              AND ($2::timestamptz IS NULL OR p.created_at >= $2)
              AND ($3::timestamptz IS NULL OR p.created_at < $3)
              AND ($4::uuid IS NULL OR p.card_id = $4)
              AND ($5::uuid IS NULL OR p.merchant_id = $5)
              AND ($6::uuid IS NULL OR p.api_key_id = $6)
              AND ($7::uuid IS NULL OR p.user_id = $7)
              AND ($8::text IS NULL OR p.method = $8)";
        let mut conn = self.pool.acquire().await?;
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM payments p {predicate}"))
                .bind(filter.status)
                .bind(filter.from)
                .bind(filter.to)
                .bind(filter.card_id)
                .bind(filter.merchant_id)
                .bind(filter.api_key_id)
                .bind(filter.user_id)
                .bind(&filter.method)
                .fetch_one(&mut *conn)
                .await?;
        let rows = sqlx::query_as(&format!(
            "SELECT {PAYMENT_BASE}, {REFUNDED} FROM payments p {predicate}
             ORDER BY p.created_at DESC, p.id DESC LIMIT $9 OFFSET $10"
        ))
        .bind(filter.status)
        .bind(filter.from)
        .bind(filter.to)
        .bind(filter.card_id)
        .bind(filter.merchant_id)
        .bind(filter.api_key_id)
        .bind(filter.user_id)
        .bind(&filter.method)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&mut *conn)
        .await?;
        Ok((rows, total))
    }

    async fn refund_by_key(
        &self,
        requested_by: &str,
        key: &str,
    ) -> Result<Option<RefundRow>, TransactionError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE requested_by = $1 AND idempotency_key = $2"
        ))
        .bind(requested_by)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Refunds part or all of a payment (see the module docs).
    #[tracing::instrument(skip_all, fields(payment_id = %request.payment_id))]
    pub async fn create_refund(
        &self,
        caller: &Caller,
        request: NewRefund,
    ) -> Result<RefundRow, TransactionError> {
        let mut violations = Vec::new();
        check_key(&request.idempotency_key, &mut violations);
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
                if !matches!(status.as_str(), "active" | "inactive") {
                    return Err(TransactionError::MerchantNotActive(status.clone()));
                }
                format!("merchant:{merchant_id}")
            }
            Caller::User { principal, .. } => {
                principal.require(PAYMENTS_WRITE)?;
                match &principal.subject {
                    Subject::User(id) => id.to_string(),
                    Subject::Service(name) => format!("service:{name}"),
                }
            }
        };
        let fingerprint = fingerprint(&[
            &request.payment_id.to_string(),
            &request.amount.to_string(),
            &request.reason,
        ]);
        if let Some(existing) = self
            .refund_by_key(&requested_by, &request.idempotency_key)
            .await?
        {
            return Ok(movement::replay("refund", existing, &fingerprint)?);
        }

        // Reserve the amount under the payment's row lock: concurrent refunds of one payment
        // queue here, each sees the others' pending and succeeded refunds.
        let mut tx = self.pool.begin().await?;
        let payment: RefundTarget = sqlx::query_as(
            "SELECT id, status, amount, merchant_id, card_id, masked_card_number, currency,
                    user_id
             FROM payments WHERE id = $1 FOR UPDATE",
        )
        .bind(request.payment_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(TransactionError::PaymentNotFound)?;
        let RefundTarget {
            id: payment_id,
            status,
            amount,
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
        if status != "succeeded" {
            return Err(TransactionError::NotRefundable(status));
        }
        let reserved: i64 = sqlx::query_scalar(
            "SELECT COALESCE(sum(amount), 0)::bigint FROM refunds
             WHERE payment_id = $1 AND status IN ('pending', 'succeeded')",
        )
        .bind(payment_id)
        .fetch_one(&mut *tx)
        .await?;
        let remaining = amount - reserved;
        if request.amount > remaining {
            return Err(TransactionError::RefundExceedsPayment { amount, remaining });
        }
        let inserted: Option<RefundRow> = sqlx::query_as(&format!(
            "INSERT INTO refunds (id, payment_id, requested_by, idempotency_key, fingerprint,
                 merchant_id, card_id, user_id, masked_card_number, amount, currency, reason,
                 created_at, backdated)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                 COALESCE($13, now()), $13 IS NOT NULL)
             ON CONFLICT (requested_by, idempotency_key) DO NOTHING
             RETURNING {REFUND_COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(payment_id)
        .bind(&requested_by)
        .bind(&request.idempotency_key)
        .bind(&fingerprint)
        .bind(merchant_id)
        .bind(card_id)
        .bind(user_id)
        .bind(&masked)
        .bind(request.amount)
        .bind(&currency)
        .bind(request.reason.trim())
        .bind(request.effective_at)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some(pending) = inserted else {
            let existing = self
                .refund_by_key(&requested_by, &request.idempotency_key)
                .await?
                .ok_or_else(|| TransactionError::internal(anyhow::anyhow!("key vanished")))?;
            return Ok(movement::replay("refund", existing, &fingerprint)?);
        };
        platform::failpoint::hit("refund.after_pending");
        let outcome = self.post_refund(&pending).await?;
        let refund = self.complete_refund(&pending, &outcome).await?;
        Ok(movement::respond("refund", refund)?)
    }

    async fn post_refund(&self, r: &RefundRow) -> Result<Outcome, MovementError> {
        self.upstream
            .post(
                r.id,
                "refund",
                Side::Merchant(r.merchant_id),
                Side::Card(r.card_id),
                r.amount,
                &r.currency,
                format!("refund of payment {}", r.payment_id),
                r.backdated.then_some(r.created_at),
            )
            .await
    }

    async fn complete_refund(
        &self,
        pending: &RefundRow,
        outcome: &Outcome,
    ) -> Result<RefundRow, TransactionError> {
        let (status, reason) = outcome_status(outcome);
        let completed_at = if pending.backdated {
            pending.created_at
        } else {
            Utc::now()
        };
        let merchant_name: String =
            sqlx::query_scalar("SELECT merchant_name FROM payments WHERE id = $1")
                .bind(pending.payment_id)
                .fetch_one(&self.pool)
                .await?;
        let data = ev::Refund {
            id: pending.id,
            payment_id: pending.payment_id,
            status: status.to_owned(),
            failure_reason: reason.clone(),
            merchant_id: pending.merchant_id,
            merchant_name,
            card_id: pending.card_id,
            user_id: pending.user_id,
            masked_card_number: pending.masked_card_number.clone(),
            amount: pending.amount,
            currency: pending.currency.clone(),
            reason: pending.reason.clone(),
            created_at: pending.created_at,
            completed_at,
        };
        // Keyed by the payment so a payment's history stays in order on one partition.
        let event = Envelope::new(
            SOURCE,
            &ev::event_type("refund", status == "succeeded"),
            pending.payment_id,
            &data,
        )
        .map_err(TransactionError::internal)?;
        if self
            .complete("refunds", pending.id, status, &reason, completed_at, &event)
            .await?
        {
            metrics::counter!("movements_total", "kind" => "refund", "status" => status)
                .increment(1);
            tracing::info!(refund_id = %pending.id, status, ?reason, amount = pending.amount,
                "refund completed");
        }
        self.load_refund(pending.id).await
    }

    async fn load_refund(&self, id: Uuid) -> Result<RefundRow, TransactionError> {
        sqlx::query_as(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
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
        status: Option<&'static str>,
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
        let predicate = "WHERE ($1::uuid IS NULL OR payment_id = $1)
              AND ($2::uuid IS NULL OR merchant_id = $2)
              AND ($3::text IS NULL OR status = $3)";
        let mut conn = self.pool.acquire().await?;
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM refunds {predicate}"))
            .bind(payment_id)
            .bind(merchant)
            .bind(status)
            .fetch_one(&mut *conn)
            .await?;
        let rows = sqlx::query_as(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds {predicate}
             ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
        ))
        .bind(payment_id)
        .bind(merchant)
        .bind(status)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&mut *conn)
        .await?;
        Ok((rows, total))
    }

    /// Finishes payments and refunds left pending longer than `grace`: each is re-posted
    /// under its own id and completed with whatever the ledger says.
    pub async fn recover_once(&self, grace: Duration) -> Result<usize, TransactionError> {
        let cutoff =
            Utc::now() - chrono::Duration::from_std(grace).map_err(TransactionError::internal)?;
        let mut completed = 0;
        let payments: Vec<PaymentRow> = sqlx::query_as(&format!(
            "SELECT {PAYMENT_BASE}, {REFUNDED} FROM payments p
             WHERE p.status = 'pending' AND p.created_at < $1 ORDER BY p.created_at LIMIT 100"
        ))
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await?;
        for payment in payments {
            match recovered_outcome(self.post_payment(&payment).await, payment.created_at) {
                Some(outcome) => {
                    self.complete_payment(&payment, &outcome).await?;
                    completed += 1;
                }
                None => continue,
            }
        }
        let refunds: Vec<RefundRow> = sqlx::query_as(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds
             WHERE status = 'pending' AND created_at < $1 ORDER BY created_at LIMIT 100"
        ))
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await?;
        for refund in refunds {
            match recovered_outcome(self.post_refund(&refund).await, refund.created_at) {
                Some(outcome) => {
                    self.complete_refund(&refund, &outcome).await?;
                    completed += 1;
                }
                None => continue,
            }
        }
        if completed > 0 {
            metrics::counter!("movement_recovered_total", "kind" => "payment")
                .increment(completed as u64);
            tracing::warn!(completed, "pending payments/refunds recovered");
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
        loop {
            if let Err(e) = self.recover_once(grace).await {
                tracing::error!(error = %platform::error::DisplayChain(&e), "recovery round failed");
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.wait() => return,
            }
        }
    }
}

fn outcome_status(outcome: &Outcome) -> (&'static str, Option<String>) {
    match outcome {
        Outcome::Posted => ("succeeded", None),
        Outcome::Rejected(reason) => ("failed", Some(reason.clone())),
    }
}

/// What recovery does with a re-post's result: complete it, or (None) try again later.
fn recovered_outcome(
    result: Result<Outcome, MovementError>,
    created_at: DateTime<Utc>,
) -> Option<Outcome> {
    match result {
        Ok(outcome) => Some(outcome),
        // An account that never opened within an hour will not: fail it.
        Err(MovementError::AccountNotReady)
            if Utc::now() - created_at > chrono::Duration::hours(1) =>
        {
            Some(Outcome::Rejected("ACCOUNT_NOT_FOUND".to_owned()))
        }
        Err(e) => {
            tracing::warn!(error = %platform::error::DisplayChain(&e), "recovery could not post yet");
            None
        }
    }
}
