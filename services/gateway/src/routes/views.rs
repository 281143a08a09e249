//! JSON shapes of responses.

use serde::Serialize;
use utoipa::ToSchema;

/// A protobuf timestamp as RFC 3339 with milliseconds (`None` stays `None`).
pub(crate) fn rfc3339(ts: Option<prost_types::Timestamp>) -> Option<String> {
    ts.as_ref()
        .and_then(platform::time::from_proto)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// An empty protobuf string as an absent JSON field.
pub(crate) fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// A user account.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub email_verified: bool,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    /// Set when the user is trashed.
    pub deleted_at: Option<String>,
}

impl From<proto::user::v1::User> for UserView {
    fn from(u: proto::user::v1::User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            email_verified: u.email_verified,
            created_at: rfc3339(u.created_at),
            updated_at: rfc3339(u.updated_at),
            deleted_at: rfc3339(u.deleted_at),
        }
    }
}

/// Tokens of a session.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPairView {
    pub access_token: String,
    /// Seconds.
    pub access_expires_in: u32,
    pub refresh_token: String,
    /// Seconds.
    pub refresh_expires_in: u32,
    /// Always `Bearer`.
    pub token_type: String,
}

impl From<proto::user::v1::TokenPair> for TokenPairView {
    fn from(t: proto::user::v1::TokenPair) -> Self {
        Self {
            access_token: t.access_token,
            access_expires_in: t.access_expires_in,
            refresh_token: t.refresh_token,
            refresh_expires_in: t.refresh_expires_in,
            token_type: t.token_type,
        }
    }
}

/// The caller's account and grants.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeView {
    pub user: Option<UserView>,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
}

/// Page description.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageView {
    pub page: u32,
    pub page_size: u32,
    pub total_items: u64,
    pub total_pages: u32,
}

impl From<Option<proto::common::v1::PageInfo>> for PageView {
    fn from(p: Option<proto::common::v1::PageInfo>) -> Self {
        let p = p.unwrap_or_default();
        Self {
            page: p.page,
            page_size: p.page_size,
            total_items: p.total_items,
            total_pages: p.total_pages,
        }
    }
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub items: Vec<UserView>,
    pub page: PageView,
}

/// A role.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
    /// System roles cannot be renamed or deleted.
    pub system: bool,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub deleted_at: Option<String>,
}

impl From<proto::role::v1::Role> for RoleView {
    fn from(r: proto::role::v1::Role) -> Self {
        Self {
            id: r.id,
            name: r.name,
            description: r.description,
            permissions: r.permissions,
            system: r.system,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            deleted_at: rfc3339(r.deleted_at),
        }
    }
}

/// A page of roles.
#[derive(Debug, Serialize, ToSchema)]
pub struct RolePage {
    pub items: Vec<RoleView>,
    pub page: PageView,
}

/// A user's roles.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserRolesView {
    pub user_id: String,
    pub roles: Vec<RoleView>,
}

impl From<proto::role::v1::UserRoles> for UserRolesView {
    fn from(r: proto::role::v1::UserRoles) -> Self {
        Self {
            user_id: r.user_id,
            roles: r.roles.into_iter().map(RoleView::from).collect(),
        }
    }
}

/// A permission.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionView {
    pub name: String,
    pub description: String,
}

/// Result of a bulk operation.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkView {
    /// Rows affected.
    pub affected: u64,
}

/// Acknowledgement of an asynchronous request (emails).
#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedView {
    /// Always `accepted`.
    pub status: &'static str,
}

impl AcceptedView {
    pub fn new() -> Self {
        Self { status: "accepted" }
    }
}

impl Default for AcceptedView {
    fn default() -> Self {
        Self::new()
    }
}
