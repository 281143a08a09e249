//! The error model shared by every service. A service's error enum implements [`DomainError`]:
//! a closed [`ErrorKind`], a stable machine-readable reason (`EMAIL_TAKEN`) and optional field
//! violations. [`to_status`] is the one place a domain error becomes a gRPC status; the
//! gateway maps gRPC codes to HTTP in its own single place.
//!
//! Internal errors never leak: their cause chain is logged once here and the caller gets an
//! opaque message.

use std::fmt;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The closed set of error categories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or a field is invalid (400).
    InvalidArgument,
    /// Authentication is missing or invalid (401).
    Unauthenticated,
    /// Authenticated but not allowed (403).
    PermissionDenied,
    /// The thing does not exist, or the caller may not know it exists (404).
    NotFound,
    /// A unique thing already exists (409).
    AlreadyExists,
    /// A concurrent operation conflicts, e.g. the same idempotency key in flight (409).
    Conflict,
    /// The state of the system does not allow the operation (422).
    FailedPrecondition,
    /// A limit was hit; retry later (429).
    ResourceExhausted,
    /// A dependency is unavailable; retry later (503).
    Unavailable,
    /// A bug or an unexpected failure (500).
    Internal,
}

impl ErrorKind {
    /// The gRPC code for this kind.
    pub fn grpc_code(self) -> Code {
        match self {
            Self::InvalidArgument => Code::InvalidArgument,
            Self::Unauthenticated => Code::Unauthenticated,
            Self::PermissionDenied => Code::PermissionDenied,
            Self::NotFound => Code::NotFound,
            Self::AlreadyExists => Code::AlreadyExists,
            Self::Conflict => Code::Aborted,
            Self::FailedPrecondition => Code::FailedPrecondition,
            Self::ResourceExhausted => Code::ResourceExhausted,
            Self::Unavailable => Code::Unavailable,
            Self::Internal => Code::Internal,
        }
    }
}

/// A problem with one field of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field name as the caller spelled it (`email`, `page_size`).
    pub field: String,
    /// Why it is wrong, for humans.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// The UUID in request field `field` (surrounding spaces ignored).
pub fn parse_uuid(field: &str, raw: &str) -> Result<uuid::Uuid, FieldViolation> {
    raw.trim()
        .parse()
        .map_err(|_| FieldViolation::new(field, "must be a UUID"))
}

/// The UUID in optional request field `field`: empty means not given.
pub fn parse_optional_uuid(field: &str, raw: &str) -> Result<Option<uuid::Uuid>, FieldViolation> {
    match raw.trim() {
        "" => Ok(None),
        raw => parse_uuid(field, raw).map(Some),
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// Implemented by every service's error enum.
pub trait DomainError: std::error::Error {
    /// The category.
    fn kind(&self) -> ErrorKind;
    /// A stable reason code, SCREAMING_SNAKE_CASE.
    fn reason(&self) -> &'static str;
    /// Field-level details for invalid requests.
    fn field_violations(&self) -> Vec<FieldViolation> {
        Vec::new()
    }
    /// Seconds after which a retry may succeed (rate limits, lockouts).
    fn retry_after_secs(&self) -> Option<u64> {
        None
    }
}

/// Metadata key carrying the retry hint on a status.
pub const RETRY_AFTER_METADATA: &str = "retry-after";

/// Converts a domain error to a gRPC status with `google.rpc.ErrorInfo` (reason, domain) and,
/// for invalid arguments, `google.rpc.BadRequest` field violations.
pub fn to_status<E: DomainError>(domain: &str, err: &E) -> Status {
    let kind = err.kind();
    let message = if kind == ErrorKind::Internal {
        tracing::error!(error = %DisplayChain(err), reason = err.reason(), "internal error");
        "internal error".to_owned()
    } else {
        err.to_string()
    };
    metrics::counter!("service_errors_total", "domain" => domain.to_owned(), "reason" => err.reason())
        .increment(1);
    let mut details = ErrorDetails::new();
    details.set_error_info(err.reason(), domain, std::collections::HashMap::new());
    for v in err.field_violations() {
        details.add_bad_request_violation(v.field, v.description);
    }
    let mut status = Status::with_error_details(kind.grpc_code(), message, details);
    if let Some(secs) = err.retry_after_secs()
        && let Ok(value) = secs.to_string().parse()
    {
        status.metadata_mut().insert(RETRY_AFTER_METADATA, value);
    }
    status
}

/// Displays an error with its whole `source()` chain: `a: b: c`.
pub struct DisplayChain<'a, E: ?Sized>(pub &'a E);

impl<E: std::error::Error + ?Sized> fmt::Display for DisplayChain<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// The reason code carried by a status, if any (used by callers of other services).
pub fn status_reason(status: &Status) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum TestError {
        #[error("email is invalid")]
        BadEmail,
        #[error("database exploded")]
        Db(#[source] std::io::Error),
    }

    impl DomainError for TestError {
        fn kind(&self) -> ErrorKind {
            match self {
                Self::BadEmail => ErrorKind::InvalidArgument,
                Self::Db(_) => ErrorKind::Internal,
            }
        }
        fn reason(&self) -> &'static str {
            match self {
                Self::BadEmail => "INVALID_EMAIL",
                Self::Db(_) => "INTERNAL",
            }
        }
        fn field_violations(&self) -> Vec<FieldViolation> {
            match self {
                Self::BadEmail => vec![FieldViolation::new("email", "is not an email address")],
                Self::Db(_) => vec![],
            }
        }
    }

    #[test]
    fn invalid_argument_carries_reason_and_fields() {
        let status = to_status("user", &TestError::BadEmail);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status_reason(&status).as_deref(), Some("INVALID_EMAIL"));
        let details = status.get_error_details();
        let bad = details.bad_request().unwrap();
        assert_eq!(bad.field_violations[0].field, "email");
    }

    #[test]
    fn internal_errors_are_opaque() {
        let status = to_status("user", &TestError::Db(std::io::Error::other("secret dsn")));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }
}

/// Why an `effective_at` was refused: the caller may not backdate, or the time is invalid.
#[derive(Debug, thiserror::Error)]
pub enum BackdateError {
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error("{0}")]
    Invalid(FieldViolation),
}

impl From<FieldViolation> for BackdateError {
    fn from(v: FieldViolation) -> Self {
        Self::Invalid(v)
    }
}
