//! Event types and their `data` payloads: the contract between producers and consumers.
//! Adding a field is compatible; renaming or removing one needs a new `version`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Events of the user service, on [`crate::topics::USER_EVENTS`], keyed by user id.
pub mod user {
    use super::*;

    /// A customer registered themselves; carries the email-verification token for the email
    /// service.
    pub const REGISTERED: &str = "user.registered";
    /// An admin created an account.
    pub const CREATED: &str = "user.created";
    /// A new verification token was issued (resend, or email changed).
    pub const VERIFICATION_REQUESTED: &str = "user.verification_requested";
    /// The email address was verified.
    pub const VERIFIED: &str = "user.verified";
    /// A password reset was requested; carries the reset token for the email service.
    pub const PASSWORD_RESET_REQUESTED: &str = "user.password_reset_requested";
    /// The password changed (reset or update).
    pub const PASSWORD_CHANGED: &str = "user.password_changed";
    /// Profile fields changed.
    pub const UPDATED: &str = "user.updated";
    /// Soft-deleted.
    pub const TRASHED: &str = "user.trashed";
    /// Restored from the trash.
    pub const RESTORED: &str = "user.restored";
    /// Permanently deleted.
    pub const DELETED: &str = "user.deleted";

    /// Data of most user events: who, and their contact details.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct UserData {
        /// The user.
        pub user_id: Uuid,
        /// Their email address.
        pub email: String,
        /// First name, for greetings.
        pub first_name: String,
        /// Last name.
        pub last_name: String,
    }

    /// Data of events that carry a one-time token to be emailed (registered, created when
    /// unverified, verification requested, password reset requested).
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct TokenIssued {
        /// Who.
        #[serde(flatten)]
        pub user: UserData,
        /// The token to put into the link; only its hash is stored.
        pub token: String,
        /// When the token stops working.
        pub expires_at: DateTime<Utc>,
    }

    /// Data of `user.deleted`.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Deleted {
        /// The deleted user.
        pub user_id: Uuid,
    }
}

/// Events of the role service, on [`crate::topics::ROLE_EVENTS`].
pub mod role {
    use super::*;

    /// A role was assigned to a user (keyed by user id).
    pub const ASSIGNED: &str = "role.assigned";
    /// A role was revoked from a user (keyed by user id).
    pub const REVOKED: &str = "role.revoked";
    /// A role was created, updated, trashed, restored or deleted (keyed by role id).
    pub const CHANGED: &str = "role.changed";

    /// Data of `role.assigned` / `role.revoked`.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Assignment {
        /// The user.
        pub user_id: Uuid,
        /// The role.
        pub role_id: Uuid,
        /// Its name.
        pub role_name: String,
    }

    /// Data of `role.changed`.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Changed {
        /// The role.
        pub role_id: Uuid,
        /// Its name.
        pub name: String,
        /// `created`, `updated`, `trashed`, `restored` or `deleted`.
        pub change: String,
    }
}
