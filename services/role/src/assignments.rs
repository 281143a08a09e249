//! User-role assignments and the grants that go into access tokens: assign and revoke
//! (nobody grants more than they hold; the last active admin stays), a user's roles, and
//! their grants for the user service when it signs a token.

use std::time::Duration;

use events::payloads::role as ev;
use platform::FieldViolation;
use platform::auth::Principal;
use proto::user::v1::GetUserRequest;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::RoleError;
use crate::repo::{self, ADMIN_ROLE_ID, RoleRow};
use crate::service::{
    ROLES_ASSIGN, ROLES_GRANTS_READ, ROLES_READ, Roles, emit, parse_user_id, require_may_grant,
};

impl Roles {
    pub(crate) async fn resolve_role(
        &self,
        conn: &mut PgConnection,
        role: &str,
    ) -> Result<RoleRow, RoleError> {
        let role = role.trim();
        if role.is_empty() {
            return Err(FieldViolation::new("role", "is required (a role id or name)").into());
        }
        let found = match role.parse::<Uuid>() {
            Ok(id) => repo::role_by_id(conn, id).await?,
            Err(_) => repo::role_by_name(conn, &role.to_lowercase()).await?,
        };
        found.ok_or(RoleError::NotFound)
    }

    pub(crate) async fn ensure_user_exists(&self, user_id: Uuid) -> Result<(), RoleError> {
        if self.user_is_active(user_id).await? {
            Ok(())
        } else {
            Err(RoleError::UserNotFound)
        }
    }

    /// Whether the user exists and is not trashed.
    pub(crate) async fn user_is_active(&self, user_id: Uuid) -> Result<bool, RoleError> {
        let token = self
            .issuer
            .service_token(&["users.read"])
            .map_err(RoleError::Internal)?;
        let request = platform::grpc::outgoing(
            GetUserRequest {
                id: user_id.to_string(),
            },
            Some(token.token.expose()),
            Duration::from_secs(5),
        );
        match self.users.clone().get_user(request).await {
            Ok(user) => Ok(user.get_ref().deleted_at.is_none()),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(false),
            Err(status) => Err(RoleError::UserService(status)),
        }
    }

    /// Assigns a role (by id or name) to an existing, active user. Idempotent.
    #[tracing::instrument(skip_all)]
    pub async fn assign(
        &self,
        caller: &Principal,
        user_id: &str,
        role: &str,
    ) -> Result<Vec<RoleRow>, RoleError> {
        caller.require(ROLES_ASSIGN)?;
        let user_id = parse_user_id(user_id)?;
        self.ensure_user_exists(user_id).await?;
        let mut tx = self.pool.begin().await?;
        let role = self.resolve_role(&mut tx, role).await?;
        if role.deleted_at.is_some() {
            return Err(RoleError::NotFound);
        }
        require_may_grant(caller, &role)?;
        let by = caller
            .user_id()
            .map_or_else(|| "service".to_owned(), |id| id.to_string());
        if repo::assign(&mut tx, user_id, role.id, &by).await? {
            emit_assignment(&mut tx, ev::ASSIGNED, user_id, &role).await?;
        }
        let roles = repo::roles_of_user(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(roles)
    }

    /// Revokes a role from a user; never the last admin's admin role.
    #[tracing::instrument(skip_all)]
    pub async fn revoke(
        &self,
        caller: &Principal,
        user_id: &str,
        role: &str,
    ) -> Result<Vec<RoleRow>, RoleError> {
        caller.require(ROLES_ASSIGN)?;
        let user_id = parse_user_id(user_id)?;
        let mut tx = self.pool.begin().await?;
        let role = self.resolve_role(&mut tx, role).await?;
        require_may_grant(caller, &role)?;
        if role.id == ADMIN_ROLE_ID {
            let admins = repo::lock_admins(&mut tx).await?;
            if admins.contains(&user_id) {
                // Another admin must remain whose account is active: a trashed admin cannot
                // administer anything.
                let mut another_active = false;
                for other in admins.iter().filter(|a| **a != user_id) {
                    if self.user_is_active(*other).await? {
                        another_active = true;
                        break;
                    }
                }
                if !another_active {
                    return Err(RoleError::LastAdmin);
                }
            }
        }
        let revoked = repo::revoke(&mut tx, user_id, role.id).await?;
        if revoked {
            emit_assignment(&mut tx, ev::REVOKED, user_id, &role).await?;
        }
        let roles = repo::roles_of_user(&mut tx, user_id).await?;
        tx.commit().await?;
        if revoked {
            // The user's access tokens carry the revoked role's permissions: end them now,
            // not when they expire. The next refresh signs the grants that are left.
            platform::auth::end_all_sessions(&self.redis, user_id, self.issuer.access_ttl())
                .await
                .map_err(RoleError::Internal)?;
        }
        Ok(roles)
    }

    /// A user's roles: their own, or anyone's with `roles.read`.
    pub async fn user_roles(
        &self,
        caller: &Principal,
        user_id: &str,
    ) -> Result<Vec<RoleRow>, RoleError> {
        let user_id = parse_user_id(user_id)?;
        caller.require_self_or(user_id, ROLES_READ)?;
        let mut conn = self.pool.acquire().await?;
        Ok(repo::roles_of_user(&mut conn, user_id).await?)
    }

    /// Active role names and permissions of a user, for access tokens.
    pub async fn grants(
        &self,
        caller: &Principal,
        user_id: &str,
    ) -> Result<(Vec<String>, Vec<String>), RoleError> {
        caller.require(ROLES_GRANTS_READ)?;
        let user_id = parse_user_id(user_id)?;
        let mut conn = self.pool.acquire().await?;
        Ok(repo::grants(&mut conn, user_id).await?)
    }
}

/// Records an assignment change in the outbox (also used by the event consumer).
pub async fn emit_assignment(
    conn: &mut PgConnection,
    event_type: &str,
    user_id: Uuid,
    role: &RoleRow,
) -> Result<(), RoleError> {
    emit(
        conn,
        event_type,
        user_id,
        &ev::Assignment {
            user_id,
            role_id: role.id,
            role_name: role.name.clone(),
        },
    )
    .await
}
