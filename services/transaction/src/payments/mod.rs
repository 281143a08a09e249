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
//!
//! Every step shared with the movements (idempotency, recording, completing, recovery) is
//! [`movement::lifecycle`]'s; this module holds the records and who is asking,
//! [`payment`], [`refund`], [`queries`] and [`recovery`] the rest, [`repo`] their SQL.

pub mod authorization;
mod payment;
mod queries;
mod recovery;
mod refund;
mod repo;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use movement::{MovementError, Status, Upstream};
use platform::auth::{Authenticator, Principal, ServiceToken};
use platform::card_data::{CardNumber, Cvv};
use proto::card::v1::card_service_client::CardServiceClient;
use proto::merchant::v1::merchant_service_client::MerchantServiceClient;
use proto::merchant::v1::{AuthenticateApiKeyRequest, MerchantIdRequest, MerchantStatus};
use sqlx::PgPool;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::error::TransactionError;

pub const PAYMENTS_READ: &str = "payments.read";
pub const PAYMENTS_WRITE: &str = "payments.write";

const SOURCE: &str = "transaction-service";
const DEADLINE: Duration = Duration::from_secs(5);

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
    pub status: Status,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub backdated: bool,
    pub refunded_amount: i64,
    /// automatic or manual (an authorization; see migration 0004 for its states).
    pub capture_method: String,
    pub authorization_state: Option<String>,
    pub release_reason: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub capture_amount: Option<i64>,
    pub capture_key: Option<String>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub settled_at: Option<DateTime<Utc>>,
    /// The merchant's plan when the payment was made.
    pub fee_percent_bps: i32,
    pub fee_fixed: i64,
    pub fee_refund: String,
    /// The fee booked with the payment's posting (0 until an authorization is captured).
    pub fee_amount: i64,
}

impl PaymentRow {
    pub fn is_authorization(&self) -> bool {
        self.capture_method == "manual"
    }

    /// Where the payment is: pending, failed, succeeded (an automatic payment, or a captured
    /// authorization), authorized, capturing, releasing, voided, cancelled or expired.
    pub fn state(&self) -> &str {
        match (self.status, self.authorization_state.as_deref()) {
            (Status::Pending, _) => "pending",
            (Status::Failed, _) => "failed",
            (Status::Succeeded, _) if !self.is_authorization() => "succeeded",
            (Status::Succeeded, None) => "authorized",
            (Status::Succeeded, Some("captured")) => "succeeded",
            (Status::Succeeded, Some("released")) => {
                self.release_reason.as_deref().unwrap_or("voided")
            }
            (Status::Succeeded, Some(transient)) => transient,
        }
    }

    /// What moved to the merchant (before the fee): all of a succeeded automatic payment,
    /// the captured part of an authorization.
    pub fn captured_amount(&self) -> i64 {
        match self.state() {
            "succeeded" => self.capture_amount.unwrap_or(self.amount),
            _ => 0,
        }
    }

    pub fn pricing(&self) -> Pricing {
        Pricing {
            percent_bps: self.fee_percent_bps,
            fixed: self.fee_fixed,
            refund_fee: self.fee_refund.clone(),
        }
    }
}

/// A merchant's pricing plan as the merchant service sent it (no plan: no fee).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pricing {
    /// Basis points of the amount (290 = 2.9 %).
    pub percent_bps: i32,
    /// Minor units per payment.
    pub fixed: i64,
    /// proportional or none.
    pub refund_fee: String,
}

impl Default for Pricing {
    fn default() -> Self {
        Self {
            percent_bps: 0,
            fixed: 0,
            refund_fee: "proportional".to_owned(),
        }
    }
}

impl Pricing {
    /// The fee of a payment of `amount`: the percentage rounded half up to a minor unit,
    /// plus the fixed fee (100 000 at 2.9 % + 2 000 = 4 900).
    pub fn fee(&self, amount: i64) -> i64 {
        let percent = (i128::from(amount) * i128::from(self.percent_bps) + 5_000) / 10_000;
        i64::try_from(percent)
            .unwrap_or(i64::MAX)
            .saturating_add(self.fixed)
    }

    /// The share of `fee` a refund returns: with `already` of `captured` refunded before
    /// (whose refunds returned `fee_returned`), a refund of `amount` returns what brings
    /// the returned total to the fee's share of everything refunded, rounded down — so all
    /// refunds together return exactly the fee. `none` plans return nothing.
    pub fn fee_returned(
        &self,
        fee: i64,
        captured: i64,
        already: i64,
        fee_returned: i64,
        amount: i64,
    ) -> i64 {
        if self.refund_fee != "proportional" || fee == 0 || captured <= 0 {
            return 0;
        }
        let share = i128::from(fee) * i128::from(already + amount) / i128::from(captured);
        let owed = i64::try_from(share).unwrap_or(fee).min(fee) - fee_returned;
        owed.clamp(0, amount)
    }
}

/// The settings prefix of payments' limits and methods (`PAYMENT_MIN_AMOUNT`, …).
pub const RULES_PREFIX: &str = "PAYMENT";

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
    pub status: Status,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub backdated: bool,
    /// The share of the payment's fee this refund returns (the merchant pays the rest).
    pub fee_returned: i64,
}

movement::recorded!(
    PaymentRow,
    "payments",
    "t.id, t.requested_by, t.idempotency_key, t.fingerprint, t.merchant_id, t.merchant_name,
     t.api_key_id, t.card_id, t.user_id, t.masked_card_number, t.amount, t.currency, t.method,
     t.description, t.status, t.failure_reason, t.created_at, t.completed_at, t.backdated,
     COALESCE((SELECT sum(r.amount) FROM refunds r
               WHERE r.payment_id = t.id AND r.status = 'succeeded'), 0)::bigint
         AS refunded_amount,
     t.capture_method, t.authorization_state, t.release_reason, t.expires_at,
     t.capture_amount, t.capture_key, t.claimed_at, t.settled_at, t.fee_percent_bps, t.fee_fixed,
     t.fee_refund, t.fee_amount"
);
movement::recorded!(
    RefundRow,
    "refunds",
    "t.id, t.payment_id, t.requested_by, t.idempotency_key, t.fingerprint, t.merchant_id,
     t.card_id, t.user_id, t.masked_card_number, t.amount, t.currency, t.reason, t.status,
     t.failure_reason, t.created_at, t.completed_at, t.backdated, t.fee_returned"
);

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
pub(super) struct RefundTarget {
    id: Uuid,
    status: Status,
    amount: i64,
    capture_method: String,
    authorization_state: Option<String>,
    capture_amount: Option<i64>,
    fee_amount: i64,
    fee_refund: String,
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
    pub card_number: CardNumber,
    pub cvv: Cvv,
    pub amount: i64,
    pub method: String,
    pub description: String,
    /// Imports and demo data (`saldo.backdate`): when it happened; `None` = now.
    pub effective_at: Option<DateTime<Utc>>,
    /// false: only authorize (hold the amount on the card) until captured.
    pub capture: bool,
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
        status: MerchantStatus,
        currency: String,
        key_id: Uuid,
        pricing: Pricing,
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
    pub status: Option<Status>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub card_id: Option<Uuid>,
    pub merchant_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub method: Option<String>,
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
    rules: Arc<movement::Rules>,
    /// How long an authorization holds the money before the expiry job releases it.
    authorization_ttl: chrono::Duration,
}

impl Payments {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pool: PgPool,
        authenticator: Authenticator,
        upstream: Upstream,
        cards: CardServiceClient<Channel>,
        merchants: MerchantServiceClient<Channel>,
        token: ServiceToken,
        rules: movement::Rules,
        authorization_ttl: Duration,
    ) -> Self {
        Self {
            pool,
            authenticator,
            upstream,
            cards,
            merchants,
            token: Arc::new(token),
            rules: Arc::new(rules),
            authorization_ttl: chrono::Duration::from_std(authorization_ttl)
                .unwrap_or(chrono::Duration::days(7)),
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
                let status = MerchantStatus::try_from(merchant.status)
                    .unwrap_or(MerchantStatus::Unspecified);
                Ok(Caller::Merchant {
                    merchant_id: parse(&merchant.id)?,
                    merchant_name: merchant.name,
                    status,
                    currency: merchant.currency,
                    key_id: parse(&identity.key_id)?,
                    pricing: identity
                        .pricing
                        .map(|p| Pricing {
                            percent_bps: p.percent_bps,
                            fixed: p.fixed_fee,
                            refund_fee: p.refund_fee,
                        })
                        .unwrap_or_default(),
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
}
