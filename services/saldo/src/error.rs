//! Errors of the saldo service.

use platform::{DomainError, ErrorKind, FieldViolation};

/// Everything that can go wrong in the ledger.
#[derive(Debug, thiserror::Error)]
pub enum SaldoError {
    /// Invalid request fields.
    #[error("invalid request: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldViolation>),
    /// A card has no account (yet: accounts open from `card.created`).
    #[error("no ledger account for card {0}")]
    AccountNotFound(String),
    /// No such posting.
    #[error("posting not found")]
    PostingNotFound,
    /// The posting id was used before for a different movement.
    #[error("posting id {0} was already used with different fields")]
    PostingIdReused(String),
    /// No hold with this id.
    #[error("hold not found")]
    HoldNotFound,
    /// The hold was captured, released or rejected: it cannot be captured (again) or released.
    #[error("the hold is {0}")]
    HoldNotHeld(String),
    /// The hold id was used before for a different hold.
    #[error("hold id {0} was already used with different fields")]
    HoldIdReused(String),
    /// The ledger refused the capture's posting (the reason code); the hold stays.
    #[error("the capture was refused: {0}")]
    CaptureRejected(String),
    /// An adjustment's idempotency key was used before with other fields.
    #[error("this Idempotency-Key was already used for a different adjustment")]
    IdempotencyKeyReused,
    /// Authentication or authorization failure.
    #[error(transparent)]
    Auth(#[from] platform::auth::AuthError),
    /// Database failure.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Anything else unexpected.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl DomainError for SaldoError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) => ErrorKind::InvalidArgument,
            Self::AccountNotFound(_) | Self::PostingNotFound | Self::HoldNotFound => {
                ErrorKind::NotFound
            }
            Self::PostingIdReused(_) | Self::HoldIdReused(_) => ErrorKind::AlreadyExists,
            Self::HoldNotHeld(_) | Self::CaptureRejected(_) => ErrorKind::FailedPrecondition,
            Self::IdempotencyKeyReused => ErrorKind::FailedPrecondition,
            Self::Auth(e) => e.kind(),
            Self::Database(_) | Self::Internal(_) => ErrorKind::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "VALIDATION_FAILED",
            Self::AccountNotFound(_) => "ACCOUNT_NOT_FOUND",
            Self::PostingNotFound => "POSTING_NOT_FOUND",
            Self::PostingIdReused(_) => "POSTING_ID_REUSED",
            Self::HoldNotFound => "HOLD_NOT_FOUND",
            Self::HoldNotHeld(status) => match status.as_str() {
                "captured" => "HOLD_CAPTURED",
                "released" => "HOLD_RELEASED",
                _ => "HOLD_REJECTED",
            },
            Self::HoldIdReused(_) => "HOLD_ID_REUSED",
            Self::CaptureRejected(_) => "CAPTURE_REJECTED",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::Auth(e) => e.reason(),
            Self::Database(_) | Self::Internal(_) => "INTERNAL",
        }
    }

    fn field_violations(&self) -> Vec<FieldViolation> {
        match self {
            Self::Invalid(v) => v.clone(),
            _ => Vec::new(),
        }
    }
}

impl From<SaldoError> for tonic::Status {
    fn from(err: SaldoError) -> Self {
        platform::error::to_status("saldo", &err)
    }
}

impl From<FieldViolation> for SaldoError {
    fn from(v: FieldViolation) -> Self {
        Self::Invalid(vec![v])
    }
}

impl From<platform::error::BackdateError> for SaldoError {
    fn from(e: platform::error::BackdateError) -> Self {
        match e {
            platform::error::BackdateError::Auth(e) => e.into(),
            platform::error::BackdateError::Invalid(v) => v.into(),
        }
    }
}
