//! Errors of the role service.

use platform::{DomainError, ErrorKind, FieldViolation};

/// Everything that can go wrong in the role service.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// Invalid request fields.
    #[error("invalid request: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldViolation>),
    /// Another role has this name.
    #[error("a role with this name already exists")]
    NameTaken,
    /// Unknown permission names.
    #[error("unknown permissions: {}", .0.join(", "))]
    UnknownPermissions(Vec<String>),
    /// No such role (or trashed, where an active one is needed).
    #[error("role not found")]
    NotFound,
    /// No such user.
    #[error("user not found")]
    UserNotFound,
    /// System roles cannot be renamed, trashed or deleted, and admin's permissions are fixed.
    #[error("system roles cannot be changed this way")]
    SystemRole,
    /// Permanent delete of a role that is not trashed.
    #[error("role must be trashed before it can be deleted permanently")]
    NotTrashed,
    /// Revoking the last admin would leave nobody able to administer the platform.
    #[error("cannot revoke the admin role from the last admin")]
    LastAdmin,
    /// Authentication or authorization failure.
    #[error(transparent)]
    Auth(#[from] platform::auth::AuthError),
    /// The user service failed.
    #[error("user service unavailable")]
    UserService(#[source] tonic::Status),
    /// Database failure.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Anything else unexpected.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl DomainError for RoleError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) | Self::UnknownPermissions(_) => ErrorKind::InvalidArgument,
            Self::NameTaken => ErrorKind::AlreadyExists,
            Self::NotFound | Self::UserNotFound => ErrorKind::NotFound,
            Self::SystemRole | Self::NotTrashed | Self::LastAdmin => ErrorKind::FailedPrecondition,
            Self::Auth(e) => e.kind(),
            Self::UserService(_) => ErrorKind::Unavailable,
            Self::Database(_) | Self::Internal(_) => ErrorKind::Internal,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "VALIDATION_FAILED",
            Self::NameTaken => "ROLE_NAME_TAKEN",
            Self::UnknownPermissions(_) => "UNKNOWN_PERMISSION",
            Self::NotFound => "ROLE_NOT_FOUND",
            Self::UserNotFound => "USER_NOT_FOUND",
            Self::SystemRole => "SYSTEM_ROLE",
            Self::NotTrashed => "ROLE_NOT_TRASHED",
            Self::LastAdmin => "LAST_ADMIN",
            Self::Auth(e) => e.reason(),
            Self::UserService(_) => "USER_SERVICE_UNAVAILABLE",
            Self::Database(_) | Self::Internal(_) => "INTERNAL",
        }
    }

    fn field_violations(&self) -> Vec<FieldViolation> {
        match self {
            Self::Invalid(v) => v.clone(),
            Self::NameTaken => vec![FieldViolation::new(
                "name",
                "is already used by another role",
            )],
            Self::UnknownPermissions(names) => vec![FieldViolation::new(
                "permissions",
                format!("unknown: {}", names.join(", ")),
            )],
            _ => Vec::new(),
        }
    }
}

impl From<RoleError> for tonic::Status {
    fn from(err: RoleError) -> Self {
        platform::error::to_status("role", &err)
    }
}

impl From<FieldViolation> for RoleError {
    fn from(v: FieldViolation) -> Self {
        Self::Invalid(vec![v])
    }
}

/// Maps the unique index on role names to [`RoleError::NameTaken`].
pub fn classify(err: sqlx::Error) -> RoleError {
    match platform::db::unique_violation(&err).as_deref() {
        Some("roles_name_key") => RoleError::NameTaken,
        _ => RoleError::Database(err),
    }
}
