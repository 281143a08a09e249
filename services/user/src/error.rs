//! Errors of the user service, each with a kind and a stable reason code.

use platform::{DomainError, ErrorKind, FieldViolation};

/// Everything that can go wrong in the user service.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// One or more request fields are invalid.
    #[error("invalid request: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldViolation>),
    /// The email belongs to another account.
    #[error("email is already registered")]
    EmailTaken,
    /// Unknown email or wrong password (deliberately not told apart).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// Too many failed logins.
    #[error("too many failed logins; try again in {retry_after_secs} seconds")]
    AccountLocked {
        /// Seconds until the lock lifts.
        retry_after_secs: u64,
    },
    /// Too many password hashes are running or waiting; retry shortly.
    #[error("the service is busy; try again in {retry_after_secs} seconds")]
    Busy {
        /// Seconds after which a retry is likely to be admitted.
        retry_after_secs: u64,
    },
    /// Login before verifying the email address.
    #[error("email address is not verified")]
    EmailNotVerified,
    /// Unknown or revoked refresh token.
    #[error("refresh token is invalid or revoked")]
    InvalidRefreshToken,
    /// A refresh token was presented twice; its family is now revoked.
    #[error("refresh token was already used; all sessions of this login were revoked")]
    RefreshTokenReused,
    /// The refresh token expired.
    #[error("refresh token expired")]
    RefreshTokenExpired,
    /// A verification or reset token is unknown, used or expired.
    #[error("token is invalid, already used or expired")]
    InvalidOneTimeToken,
    /// No such (active) user, or the caller may not see it.
    #[error("user not found")]
    NotFound,
    /// Permanent delete of a user that is not trashed.
    #[error("user must be trashed before it can be deleted permanently")]
    NotTrashed,
    /// An admin trying to trash or delete their own account.
    #[error("you cannot trash or delete your own account")]
    SelfDelete,
    /// Authentication or authorization failure.
    #[error(transparent)]
    Auth(#[from] platform::auth::AuthError),
    /// The role service failed.
    #[error("role service unavailable")]
    RoleService(#[source] tonic::Status),
    /// Database failure.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Anything else unexpected.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl DomainError for UserError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) | Self::InvalidOneTimeToken => ErrorKind::InvalidArgument,
            Self::EmailTaken => ErrorKind::AlreadyExists,
            Self::InvalidCredentials
            | Self::InvalidRefreshToken
            | Self::RefreshTokenReused
            | Self::RefreshTokenExpired => ErrorKind::Unauthenticated,
            Self::AccountLocked { .. } => ErrorKind::ResourceExhausted,
            Self::EmailNotVerified => ErrorKind::PermissionDenied,
            Self::NotFound => ErrorKind::NotFound,
            Self::NotTrashed | Self::SelfDelete => ErrorKind::FailedPrecondition,
            Self::Auth(e) => e.kind(),
            Self::RoleService(_) | Self::Busy { .. } => ErrorKind::Unavailable,
            Self::Database(_) | Self::Internal(_) => ErrorKind::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "VALIDATION_FAILED",
            Self::EmailTaken => "EMAIL_TAKEN",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::AccountLocked { .. } => "ACCOUNT_LOCKED",
            Self::Busy { .. } => "BUSY",
            Self::EmailNotVerified => "EMAIL_NOT_VERIFIED",
            Self::InvalidRefreshToken => "INVALID_REFRESH_TOKEN",
            Self::RefreshTokenReused => "REFRESH_TOKEN_REUSED",
            Self::RefreshTokenExpired => "REFRESH_TOKEN_EXPIRED",
            Self::InvalidOneTimeToken => "INVALID_TOKEN",
            Self::NotFound => "USER_NOT_FOUND",
            Self::NotTrashed => "USER_NOT_TRASHED",
            Self::SelfDelete => "CANNOT_DELETE_SELF",
            Self::Auth(e) => e.reason(),
            Self::RoleService(_) => "ROLE_SERVICE_UNAVAILABLE",
            Self::Database(_) | Self::Internal(_) => "INTERNAL",
        }
    }

    fn field_violations(&self) -> Vec<FieldViolation> {
        match self {
            Self::Invalid(v) => v.clone(),
            Self::EmailTaken => vec![FieldViolation::new("email", "is already registered")],
            Self::InvalidOneTimeToken => {
                vec![FieldViolation::new(
                    "token",
                    "is invalid, already used or expired",
                )]
            }
            _ => Vec::new(),
        }
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::AccountLocked { retry_after_secs } | Self::Busy { retry_after_secs } => {
                Some(*retry_after_secs)
            }
            _ => None,
        }
    }
}

impl From<UserError> for tonic::Status {
    fn from(err: UserError) -> Self {
        platform::error::to_status("user", &err)
    }
}

impl From<FieldViolation> for UserError {
    fn from(v: FieldViolation) -> Self {
        Self::Invalid(vec![v])
    }
}

/// Maps a unique violation on the email index to [`UserError::EmailTaken`].
pub fn classify(err: sqlx::Error) -> UserError {
    match platform::db::unique_violation(&err).as_deref() {
        Some("users_email_key") => UserError::EmailTaken,
        _ => UserError::Database(err),
    }
}
