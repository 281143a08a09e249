//! Errors of the card service.

use platform::{DomainError, ErrorKind, FieldViolation};

/// Everything that can go wrong in the card service.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// Invalid request fields.
    #[error("invalid request: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldViolation>),
    /// No such card, or not the caller's.
    #[error("card not found")]
    NotFound,
    /// No such user (admin creating a card for someone).
    #[error("user not found")]
    UserNotFound,
    /// Permanent delete of a card that is not trashed.
    #[error("card must be trashed before it can be deleted permanently")]
    NotTrashed,
    /// Permanent delete of a card whose account still holds money.
    #[error("card's account still holds {0} minor units; withdraw or transfer them first")]
    HasBalance(i64),
    /// The CVV given does not match the card.
    #[error(
        "the CVV does not match the card; {remaining} attempt(s) left before the card is locked"
    )]
    CvvMismatch { remaining: i32 },
    /// Too many CVV mismatches: checks are refused until `until`.
    #[error("too many wrong CVVs: the card is locked for payments until {until}")]
    CardLocked {
        until: chrono::DateTime<chrono::Utc>,
    },
    /// The merchant API key caused too many CVV mismatches across cards.
    #[error("too many wrong CVVs with this API key: its CVV checks are refused until {until}")]
    KeyThrottled {
        until: chrono::DateTime<chrono::Utc>,
    },
    /// The owner tried to undo what an admin decided (restore a card an admin trashed).
    #[error("an admin trashed this card; only an admin can restore it")]
    AdminDecision,
    /// A number collision kept happening (practically impossible).
    #[error("could not allocate a unique card number")]
    NumberExhausted,
    /// Authentication or authorization failure.
    #[error(transparent)]
    Auth(#[from] platform::auth::AuthError),
    /// Another service failed.
    #[error("{0} unavailable")]
    Upstream(&'static str, #[source] tonic::Status),
    /// Database failure.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Anything else unexpected.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl DomainError for CardError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) => ErrorKind::InvalidArgument,
            Self::NotFound | Self::UserNotFound => ErrorKind::NotFound,
            Self::NotTrashed | Self::HasBalance(_) => ErrorKind::FailedPrecondition,
            Self::CvvMismatch { .. } | Self::AdminDecision => ErrorKind::PermissionDenied,
            Self::CardLocked { .. } | Self::KeyThrottled { .. } => ErrorKind::ResourceExhausted,
            Self::Auth(e) => e.kind(),
            Self::Upstream(..) => ErrorKind::Unavailable,
            Self::NumberExhausted | Self::Database(_) | Self::Internal(_) => ErrorKind::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "VALIDATION_FAILED",
            Self::NotFound => "CARD_NOT_FOUND",
            Self::UserNotFound => "USER_NOT_FOUND",
            Self::NotTrashed => "CARD_NOT_TRASHED",
            Self::HasBalance(_) => "CARD_HAS_BALANCE",
            Self::CvvMismatch { .. } => "CVV_MISMATCH",
            Self::CardLocked { .. } => "CARD_LOCKED",
            Self::AdminDecision => "ADMIN_DECISION",
            Self::KeyThrottled { .. } => "API_KEY_CVV_THROTTLED",
            Self::Auth(e) => e.reason(),
            Self::Upstream(..) => "UPSTREAM_UNAVAILABLE",
            Self::NumberExhausted | Self::Database(_) | Self::Internal(_) => "INTERNAL",
        }
    }

    fn field_violations(&self) -> Vec<FieldViolation> {
        match self {
            Self::Invalid(v) => v.clone(),
            _ => Vec::new(),
        }
    }
}

impl From<CardError> for tonic::Status {
    fn from(err: CardError) -> Self {
        platform::error::to_status("card", &err)
    }
}

impl From<FieldViolation> for CardError {
    fn from(v: FieldViolation) -> Self {
        Self::Invalid(vec![v])
    }
}
