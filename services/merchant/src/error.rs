//! Errors of the merchant service.

use platform::{DomainError, ErrorKind, FieldViolation};

/// Everything that can go wrong in the merchant service.
#[derive(Debug, thiserror::Error)]
pub enum MerchantError {
    /// Invalid request fields.
    #[error("invalid request: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldViolation>),
    /// No such merchant, or not the caller's.
    #[error("merchant not found")]
    NotFound,
    /// No such document, or not the caller's.
    #[error("document not found")]
    DocumentNotFound,
    /// No such API key on this merchant.
    #[error("API key not found")]
    KeyNotFound,
    /// The owner already has a merchant with this name.
    #[error("you already have a merchant with this name")]
    NameTaken,
    /// No such user (admin applying for someone).
    #[error("user not found")]
    UserNotFound,
    /// The status change is not allowed from the current status.
    #[error("a {from} merchant cannot become {to}")]
    InvalidTransition {
        from: crate::service::MerchantStatus,
        to: crate::service::MerchantStatus,
    },
    /// The merchant is trashed; restore it first.
    #[error("the merchant is trashed; restore it first")]
    Trashed,
    /// A reviewed document cannot be edited.
    #[error("the document was already reviewed ({0}); submit a new one")]
    AlreadyReviewed(crate::documents::DocumentStatus),
    /// The key is revoked or expired and cannot be rotated.
    #[error("the API key is {0} and cannot be rotated")]
    KeyNotActive(&'static str),
    /// Permanent delete of a merchant or document that is not trashed.
    #[error("only trashed {0}s can be deleted permanently")]
    NotTrashed(&'static str),
    /// Permanent delete of a merchant whose settlement account holds money.
    #[error("the merchant's settlement account still holds {0} minor units")]
    HasBalance(i64),
    /// No such webhook endpoint on this merchant.
    #[error("webhook endpoint not found")]
    EndpointNotFound,
    /// No such webhook event of this merchant (or older than 30 days).
    #[error("event not found")]
    EventNotFound,
    /// A re-send to a disabled endpoint.
    #[error("the webhook endpoint is disabled; enable it first")]
    EndpointDisabled,
    /// The merchant has as many endpoints as allowed.
    #[error("a merchant may have at most {0} webhook endpoints")]
    TooManyEndpoints(i64),
    /// Unknown API key.
    #[error("invalid API key")]
    InvalidKey,
    /// The API key was revoked.
    #[error("the API key was revoked")]
    KeyRevoked,
    /// The API key expired after a rotation.
    #[error("the API key expired (it was rotated)")]
    KeyExpired,
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

impl DomainError for MerchantError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) => ErrorKind::InvalidArgument,
            Self::NotFound
            | Self::DocumentNotFound
            | Self::KeyNotFound
            | Self::UserNotFound
            | Self::EndpointNotFound
            | Self::EventNotFound => ErrorKind::NotFound,
            Self::NameTaken => ErrorKind::AlreadyExists,
            Self::InvalidTransition { .. }
            | Self::Trashed
            | Self::AlreadyReviewed(_)
            | Self::KeyNotActive(_)
            | Self::NotTrashed(_)
            | Self::HasBalance(_)
            | Self::EndpointDisabled
            | Self::TooManyEndpoints(_) => ErrorKind::FailedPrecondition,
            Self::InvalidKey | Self::KeyRevoked | Self::KeyExpired => ErrorKind::Unauthenticated,
            Self::Auth(e) => e.kind(),
            Self::Upstream(..) => ErrorKind::Unavailable,
            Self::Database(_) | Self::Internal(_) => ErrorKind::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "VALIDATION_FAILED",
            Self::NotFound => "MERCHANT_NOT_FOUND",
            Self::DocumentNotFound => "DOCUMENT_NOT_FOUND",
            Self::KeyNotFound => "API_KEY_NOT_FOUND",
            Self::NameTaken => "MERCHANT_NAME_TAKEN",
            Self::UserNotFound => "USER_NOT_FOUND",
            Self::InvalidTransition { .. } => "INVALID_STATUS_TRANSITION",
            Self::Trashed => "MERCHANT_TRASHED",
            Self::AlreadyReviewed(_) => "DOCUMENT_ALREADY_REVIEWED",
            Self::KeyNotActive(_) => "API_KEY_NOT_ACTIVE",
            Self::NotTrashed(_) => "NOT_TRASHED",
            Self::HasBalance(_) => "MERCHANT_HAS_BALANCE",
            Self::EndpointNotFound => "WEBHOOK_ENDPOINT_NOT_FOUND",
            Self::EventNotFound => "EVENT_NOT_FOUND",
            Self::EndpointDisabled => "WEBHOOK_ENDPOINT_DISABLED",
            Self::TooManyEndpoints(_) => "TOO_MANY_WEBHOOK_ENDPOINTS",
            Self::InvalidKey => "INVALID_API_KEY",
            Self::KeyRevoked => "API_KEY_REVOKED",
            Self::KeyExpired => "API_KEY_EXPIRED",
            Self::Auth(e) => e.reason(),
            Self::Upstream(..) => "UPSTREAM_UNAVAILABLE",
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

impl From<MerchantError> for tonic::Status {
    fn from(err: MerchantError) -> Self {
        platform::error::to_status("merchant", &err)
    }
}

impl From<FieldViolation> for MerchantError {
    fn from(v: FieldViolation) -> Self {
        Self::Invalid(vec![v])
    }
}
