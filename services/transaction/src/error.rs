//! Errors of merchant payments and refunds. Card, idempotency and ledger failures are the
//! movement crate's (the same rules as transfers); the rest are payment-specific.

use movement::MovementError;
use platform::{DomainError, ErrorKind, FieldViolation};
use proto::merchant::v1::MerchantStatus;

/// Everything that can go wrong with a payment or refund.
#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    /// Card, idempotency, ledger and validation failures shared with transfers.
    #[error(transparent)]
    Movement(#[from] MovementError),
    /// The API key is unknown, revoked or expired (reason from the merchant service).
    #[error("{message}")]
    ApiKey {
        reason: &'static str,
        message: String,
    },
    /// The merchant may not charge: it is pending, rejected or inactive.
    #[error("the merchant is {} and cannot take payments", status_name(*.0))]
    MerchantNotActive(MerchantStatus),
    /// The CVV does not match the card (nothing moved).
    #[error("{0}")]
    CvvMismatch(String),
    /// Too many wrong CVVs: the card is locked for payments for a while.
    #[error("{0}")]
    CardLocked(String),
    /// The API key caused too many CVV mismatches across cards: its payments wait.
    #[error("{0}")]
    ApiKeyThrottled(String),
    /// The card's currency differs from the merchant's settlement currency.
    #[error("the card is in {card} but the merchant settles in {merchant}")]
    CurrencyMismatch { card: String, merchant: String },
    /// Only succeeded payments can be refunded.
    #[error("payment is {0}; only succeeded payments can be refunded")]
    NotRefundable(String),
    /// The refund would take back more than was paid.
    #[error("only {remaining} of {amount} minor units remain refundable")]
    RefundExceedsPayment { amount: i64, remaining: i64 },
    /// Capture, void and cancel need an authorized payment (the state it is in).
    #[error("payment is {0}; only an authorized payment can be captured, voided or cancelled")]
    NotAuthorized(String),
    /// A capture of more than was authorized.
    #[error("at most {authorized} minor units can be captured")]
    CaptureExceedsAuthorization { authorized: i64 },
    /// The merchant's fee would take the whole amount.
    #[error("the amount must exceed the merchant's fee of {fee} minor units")]
    AmountBelowFee { fee: i64 },
    /// The API key belongs to another merchant than the payment's.
    #[error("payment not found")]
    PaymentNotFound,
    /// No such refund, or not visible to the caller.
    #[error("refund not found")]
    RefundNotFound,
}

impl TransactionError {
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Movement(MovementError::Internal(e.into()))
    }
}

impl From<sqlx::Error> for TransactionError {
    fn from(e: sqlx::Error) -> Self {
        Self::Movement(MovementError::Database(e))
    }
}

impl From<platform::auth::AuthError> for TransactionError {
    fn from(e: platform::auth::AuthError) -> Self {
        Self::Movement(MovementError::Auth(e))
    }
}

impl From<FieldViolation> for TransactionError {
    fn from(v: FieldViolation) -> Self {
        Self::Movement(MovementError::Invalid(vec![v]))
    }
}

impl DomainError for TransactionError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Movement(e) => e.kind(),
            Self::ApiKey { .. } => ErrorKind::Unauthenticated,
            Self::MerchantNotActive(_) | Self::CvvMismatch(_) => ErrorKind::PermissionDenied,
            Self::CardLocked(_) | Self::ApiKeyThrottled(_) => ErrorKind::ResourceExhausted,
            Self::CurrencyMismatch { .. }
            | Self::NotRefundable(_)
            | Self::RefundExceedsPayment { .. }
            | Self::NotAuthorized(_)
            | Self::CaptureExceedsAuthorization { .. }
            | Self::AmountBelowFee { .. } => ErrorKind::FailedPrecondition,
            Self::PaymentNotFound | Self::RefundNotFound => ErrorKind::NotFound,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Movement(e) => e.reason(),
            Self::ApiKey { reason, .. } => reason,
            Self::MerchantNotActive(status) => match status {
                MerchantStatus::Pending => "MERCHANT_PENDING",
                MerchantStatus::Rejected => "MERCHANT_REJECTED",
                _ => "MERCHANT_INACTIVE",
            },
            Self::CvvMismatch(_) => "CVV_MISMATCH",
            Self::CardLocked(_) => "CARD_LOCKED",
            Self::ApiKeyThrottled(_) => "API_KEY_CVV_THROTTLED",
            Self::CurrencyMismatch { .. } => "CURRENCY_MISMATCH",
            Self::NotRefundable(_) => "PAYMENT_NOT_REFUNDABLE",
            Self::RefundExceedsPayment { .. } => "REFUND_EXCEEDS_PAYMENT",
            Self::NotAuthorized(_) => "PAYMENT_NOT_AUTHORIZED",
            Self::CaptureExceedsAuthorization { .. } => "CAPTURE_EXCEEDS_AUTHORIZATION",
            Self::AmountBelowFee { .. } => "AMOUNT_BELOW_FEE",
            Self::PaymentNotFound => "PAYMENT_NOT_FOUND",
            Self::RefundNotFound => "REFUND_NOT_FOUND",
        }
    }

    fn field_violations(&self) -> Vec<FieldViolation> {
        match self {
            Self::Movement(e) => e.field_violations(),
            Self::CvvMismatch(_) => vec![FieldViolation::new("cvv", "does not match the card")],
            Self::RefundExceedsPayment { remaining, .. } => vec![FieldViolation::new(
                "amount",
                format!("must be at most {remaining}"),
            )],
            Self::CaptureExceedsAuthorization { authorized } => vec![FieldViolation::new(
                "amount",
                format!("must be at most the authorized {authorized}"),
            )],
            Self::AmountBelowFee { fee } => vec![FieldViolation::new(
                "amount",
                format!("must exceed the fee of {fee}"),
            )],
            _ => Vec::new(),
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Movement(e) => e.retry_after_secs(),
            _ => None,
        }
    }
}

impl From<TransactionError> for tonic::Status {
    fn from(err: TransactionError) -> Self {
        platform::error::to_status("transaction", &err)
    }
}

/// `pending`, `active`, `rejected`, `inactive` (as the merchant API spells them).
fn status_name(status: MerchantStatus) -> &'static str {
    match status {
        MerchantStatus::Pending => "pending",
        MerchantStatus::Active => "active",
        MerchantStatus::Rejected => "rejected",
        MerchantStatus::Inactive => "inactive",
        MerchantStatus::Unspecified => "in an unknown state",
    }
}
