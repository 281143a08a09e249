//! Errors of money movements, shared by the topup, withdraw and transfer services.

use platform::{DomainError, ErrorKind, FieldViolation};
use uuid::Uuid;

use crate::upstream::Rejection;

/// Everything that can go wrong with a money movement.
#[derive(Debug, thiserror::Error)]
pub enum MovementError {
    /// Invalid request fields (nothing was recorded).
    #[error("invalid request: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldViolation>),
    /// No card with the number given in `field`.
    #[error("no card with this number ({0})")]
    CardNotFound(&'static str),
    /// The caller may not move money from the card in `field`.
    #[error("the card in {0} does not belong to you")]
    CardNotOwned(&'static str),
    /// The card in `field` is past its expiry month.
    #[error("the card in {0} has expired")]
    CardExpired(&'static str),
    /// The card in `field` is trashed.
    #[error("the card in {0} is not active")]
    CardInactive(&'static str),
    /// The two cards of a transfer have different currencies.
    #[error("cards have different currencies ({0} and {1})")]
    CurrencyMismatch(String, String),
    /// The card's ledger account is not open yet (it opens from `card.created`).
    #[error("the card's account is not open yet; retry in a moment")]
    AccountNotReady,
    /// The ledger refused the movement; it is recorded as failed.
    #[error("{kind} {id} failed: {reason}")]
    Rejected {
        kind: &'static str,
        id: Uuid,
        reason: String,
    },
    /// The idempotency key was used with a different request.
    #[error("this Idempotency-Key was already used with a different request")]
    KeyReused,
    /// The first request with this idempotency key is still running.
    #[error("a request with this Idempotency-Key is still in progress; retry later")]
    KeyInProgress,
    /// No such movement, or not the caller's.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Authentication or authorization failure.
    #[error(transparent)]
    Auth(#[from] platform::auth::AuthError),
    /// Another service failed; the movement (if recorded) is finished by recovery.
    #[error("{0} unavailable")]
    Upstream(&'static str, #[source] tonic::Status),
    /// No payment provider of the method's route can take the operation now (nothing was
    /// charged; the same key may be retried).
    #[error("no payment provider is available: {0}")]
    ProviderUnavailable(String),
    /// A provider callback that does not verify.
    #[error(transparent)]
    Callback(#[from] providers::CallbackError),
    /// Database failure.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Anything else unexpected.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl DomainError for MovementError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) => ErrorKind::InvalidArgument,
            Self::CardNotFound(_) | Self::NotFound(_) => ErrorKind::NotFound,
            Self::CardNotOwned(_) => ErrorKind::PermissionDenied,
            Self::CardExpired(_)
            | Self::CardInactive(_)
            | Self::CurrencyMismatch(..)
            | Self::Rejected { .. }
            | Self::KeyReused => ErrorKind::FailedPrecondition,
            Self::AccountNotReady | Self::KeyInProgress => ErrorKind::Conflict,
            Self::Auth(e) => e.kind(),
            Self::Upstream(..) | Self::ProviderUnavailable(_) => ErrorKind::Unavailable,
            Self::Callback(providers::CallbackError::BadSignature) => ErrorKind::Unauthenticated,
            Self::Callback(_) => ErrorKind::InvalidArgument,
            Self::Database(_) | Self::Internal(_) => ErrorKind::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "VALIDATION_FAILED",
            Self::CardNotFound(_) => "CARD_NOT_FOUND",
            Self::CardNotOwned(_) => "CARD_NOT_OWNED",
            Self::CardExpired(_) => "CARD_EXPIRED",
            Self::CardInactive(_) => "CARD_INACTIVE",
            Self::CurrencyMismatch(..) => "CURRENCY_MISMATCH",
            Self::AccountNotReady => "ACCOUNT_NOT_READY",
            Self::Rejected { reason, .. } => {
                Rejection::from_code(reason).map_or("LEDGER_REJECTED", Rejection::code)
            }
            Self::KeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::KeyInProgress => "IDEMPOTENCY_KEY_IN_PROGRESS",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Auth(e) => e.reason(),
            Self::Upstream(..) => "UPSTREAM_UNAVAILABLE",
            Self::ProviderUnavailable(_) => "PROVIDER_UNAVAILABLE",
            Self::Callback(providers::CallbackError::BadSignature) => "CALLBACK_SIGNATURE_INVALID",
            Self::Callback(providers::CallbackError::Stale) => "CALLBACK_STALE",
            Self::Callback(providers::CallbackError::Malformed(_)) => "CALLBACK_MALFORMED",
            Self::Database(_) | Self::Internal(_) => "INTERNAL",
        }
    }

    fn field_violations(&self) -> Vec<FieldViolation> {
        match self {
            Self::Invalid(v) => v.clone(),
            Self::CardNotFound(f) => vec![FieldViolation::new(*f, "no card with this number")],
            Self::CardNotOwned(f) => vec![FieldViolation::new(*f, "is not your card")],
            Self::CardExpired(f) => vec![FieldViolation::new(*f, "has expired")],
            Self::CardInactive(f) => vec![FieldViolation::new(*f, "is not active")],
            Self::Rejected { reason, .. }
                if Rejection::from_code(reason) == Some(Rejection::InsufficientFunds) =>
            {
                vec![FieldViolation::new("amount", "exceeds the card's balance")]
            }
            _ => Vec::new(),
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::AccountNotReady | Self::KeyInProgress => Some(1),
            Self::ProviderUnavailable(_) => Some(5),
            _ => None,
        }
    }
}

impl From<MovementError> for tonic::Status {
    fn from(err: MovementError) -> Self {
        platform::error::to_status("movement", &err)
    }
}

impl From<FieldViolation> for MovementError {
    fn from(v: FieldViolation) -> Self {
        Self::Invalid(vec![v])
    }
}

impl From<platform::error::BackdateError> for MovementError {
    fn from(e: platform::error::BackdateError) -> Self {
        match e {
            platform::error::BackdateError::Auth(e) => e.into(),
            platform::error::BackdateError::Invalid(v) => v.into(),
        }
    }
}
