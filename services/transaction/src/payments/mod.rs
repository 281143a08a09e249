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
}

movement::recorded!(
    PaymentRow,
    "payments",
    "t.id, t.requested_by, t.idempotency_key, t.fingerprint, t.merchant_id, t.merchant_name,
     t.api_key_id, t.card_id, t.user_id, t.masked_card_number, t.amount, t.currency, t.method,
     t.description, t.status, t.failure_reason, t.created_at, t.completed_at, t.backdated,
     COALESCE((SELECT sum(r.amount) FROM refunds r
               WHERE r.payment_id = t.id AND r.status = 'succeeded'), 0)::bigint
         AS refunded_amount"
);
movement::recorded!(
    RefundRow,
    "refunds",
    "t.id, t.payment_id, t.requested_by, t.idempotency_key, t.fingerprint, t.merchant_id,
     t.card_id, t.user_id, t.masked_card_number, t.amount, t.currency, t.reason, t.status,
     t.failure_reason, t.created_at, t.completed_at, t.backdated"
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
}

impl Payments {
    pub fn new(
        pool: PgPool,
        authenticator: Authenticator,
        upstream: Upstream,
        cards: CardServiceClient<Channel>,
        merchants: MerchantServiceClient<Channel>,
        token: ServiceToken,
        rules: movement::Rules,
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
                let status = MerchantStatus::try_from(merchant.status)
                    .unwrap_or(MerchantStatus::Unspecified);
                Ok(Caller::Merchant {
                    merchant_id: parse(&merchant.id)?,
                    merchant_name: merchant.name,
                    status,
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
}
