//! Use cases of the role service: role administration and the permission catalogue (user-role
//! assignments and grants are [`crate::assignments`]'). Changes and their outbox events
//! commit together.

use events::payloads::role as ev;
use events::{Envelope, topics};
use platform::FieldViolation;
use platform::auth::{Authenticator, Principal, TokenIssuer};
use platform::pagination::{LifecycleFilter, Page};
use proto::user::v1::user_service_client::UserServiceClient;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::error::{RoleError, classify};
use crate::repo::{self, ADMIN_ROLE_ID, RoleRow};

pub const ROLES_READ: &str = "roles.read";
pub const ROLES_WRITE: &str = "roles.write";
pub const ROLES_ASSIGN: &str = "roles.assign";
pub const ROLES_GRANTS_READ: &str = "roles.grants.read";

pub(crate) const SOURCE: &str = "role-service";

/// Input of create and update.
#[derive(Default)]
pub struct RoleInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub permissions: Option<Vec<String>>,
}

/// The role service.
#[derive(Clone)]
pub struct Roles {
    pub(crate) pool: PgPool,
    pub(crate) redis: deadpool_redis::Pool,
    pub(crate) authenticator: Authenticator,
    pub(crate) issuer: TokenIssuer,
    pub(crate) users: UserServiceClient<Channel>,
}

/// Nobody grants more than they hold: a user may assign or revoke a role only if they hold
/// every permission it carries, and only admins hand out or take away `admin`. Services
/// (the seeder) act with the permissions of their token.
pub(crate) fn require_may_grant(caller: &Principal, role: &RoleRow) -> Result<(), RoleError> {
    if caller.user_id().is_none() || caller.roles.contains("admin") {
        return Ok(());
    }
    if role.id == ADMIN_ROLE_ID {
        return Err(platform::auth::AuthError::MissingPermission("admin".to_owned()).into());
    }
    if let Some(missing) = role
        .permissions
        .iter()
        .find(|p| !caller.permissions.contains(p.as_str()))
    {
        return Err(platform::auth::AuthError::MissingPermission(missing.clone()).into());
    }
    Ok(())
}

fn check_name(name: &str) -> Result<String, FieldViolation> {
    let name = name.trim().to_lowercase();
    let ok = (2..=50).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(name)
    } else {
        Err(FieldViolation::new(
            "name",
            "must be 2-50 characters: a lower-case letter, then letters, digits, '_' or '-'",
        ))
    }
}

fn check_description(description: &str) -> Result<String, FieldViolation> {
    if description.chars().count() > 500 {
        return Err(FieldViolation::new(
            "description",
            "must be at most 500 characters",
        ));
    }
    Ok(description.trim().to_owned())
}

pub(crate) fn parse_user_id(raw: &str) -> Result<Uuid, RoleError> {
    raw.parse()
        .map_err(|_| FieldViolation::new("user_id", "must be a UUID").into())
}

impl Roles {
    pub fn new(
        pool: PgPool,
        redis: deadpool_redis::Pool,
        authenticator: Authenticator,
        issuer: TokenIssuer,
        users: UserServiceClient<Channel>,
    ) -> Self {
        Self {
            pool,
            redis,
            authenticator,
            issuer,
            users,
        }
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.authenticator
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) async fn check_permissions(
        &self,
        conn: &mut PgConnection,
        names: &[String],
    ) -> Result<Vec<String>, RoleError> {
        let mut names: Vec<String> = names.iter().map(|n| n.trim().to_owned()).collect();
        names.sort();
        names.dedup();
        let unknown = repo::unknown_permissions(conn, &names).await?;
        if unknown.is_empty() {
            Ok(names)
        } else {
            Err(RoleError::UnknownPermissions(unknown))
        }
    }

    /// Creates a role.
    #[tracing::instrument(skip_all)]
    pub async fn create(&self, caller: &Principal, input: RoleInput) -> Result<RoleRow, RoleError> {
        caller.require(ROLES_WRITE)?;
        let mut violations = Vec::new();
        let name = match check_name(input.name.as_deref().unwrap_or_default()) {
            Ok(n) => Some(n),
            Err(v) => {
                violations.push(v);
                None
            }
        };
        let description = match check_description(input.description.as_deref().unwrap_or_default())
        {
            Ok(d) => Some(d),
            Err(v) => {
                violations.push(v);
                None
            }
        };
        let (Some(name), Some(description)) = (name, description) else {
            return Err(RoleError::Invalid(violations));
        };
        let mut tx = self.pool.begin().await?;
        let permissions = self
            .check_permissions(&mut tx, input.permissions.as_deref().unwrap_or_default())
            .await?;
        let id = Uuid::now_v7();
        repo::insert_role(&mut tx, id, &name, &description)
            .await
            .map_err(classify)?;
        repo::replace_permissions(&mut tx, id, &permissions).await?;
        let role = repo::role_by_id(&mut tx, id)
            .await?
            .ok_or(RoleError::NotFound)?;
        emit_changed(&mut tx, &role, "created").await?;
        tx.commit().await?;
        Ok(role)
    }

    /// Updates name, description and/or permissions. System roles keep their names, and the
    /// admin role keeps every permission.
    #[tracing::instrument(skip_all, fields(role_id = %id))]
    pub async fn update(
        &self,
        caller: &Principal,
        id: Uuid,
        input: RoleInput,
    ) -> Result<RoleRow, RoleError> {
        caller.require(ROLES_WRITE)?;
        let name = input.name.as_deref().map(check_name).transpose()?;
        let description = input
            .description
            .as_deref()
            .map(check_description)
            .transpose()?;
        let mut tx = self.pool.begin().await?;
        let current = repo::role_by_id(&mut tx, id)
            .await?
            .filter(|r| r.deleted_at.is_none())
            .ok_or(RoleError::NotFound)?;
        // System roles keep their names and permission sets: adding a permission to
        // `customer` would hand it to every customer at once.
        if current.is_system
            && (name.as_ref().is_some_and(|n| *n != current.name) || input.permissions.is_some())
        {
            return Err(RoleError::SystemRole);
        }
        repo::update_role(&mut tx, id, name.as_deref(), description.as_deref())
            .await
            .map_err(classify)?;
        if let Some(permissions) = &input.permissions {
            let permissions = self.check_permissions(&mut tx, permissions).await?;
            repo::replace_permissions(&mut tx, id, &permissions).await?;
        }
        let role = repo::role_by_id(&mut tx, id)
            .await?
            .ok_or(RoleError::NotFound)?;
        emit_changed(&mut tx, &role, "updated").await?;
        tx.commit().await?;
        Ok(role)
    }

    pub async fn get(&self, caller: &Principal, id: Uuid) -> Result<RoleRow, RoleError> {
        caller.require(ROLES_READ)?;
        let mut conn = self.pool.acquire().await?;
        repo::role_by_id(&mut conn, id)
            .await?
            .ok_or(RoleError::NotFound)
    }

    pub async fn list(
        &self,
        caller: &Principal,
        lifecycle: LifecycleFilter,
        search: &str,
        page: Page,
    ) -> Result<(Vec<RoleRow>, i64), RoleError> {
        caller.require(ROLES_READ)?;
        if search.chars().count() > 100 {
            return Err(FieldViolation::new("search", "must be at most 100 characters").into());
        }
        let mut conn = self.pool.acquire().await?;
        Ok(repo::list_roles(&mut conn, lifecycle, search.trim(), page).await?)
    }

    /// Trashes (`true`) or restores (`false`) a role.
    pub async fn set_trashed(
        &self,
        caller: &Principal,
        id: Uuid,
        trashed: bool,
    ) -> Result<RoleRow, RoleError> {
        caller.require(ROLES_WRITE)?;
        let mut tx = self.pool.begin().await?;
        let role = repo::role_by_id(&mut tx, id)
            .await?
            .ok_or(RoleError::NotFound)?;
        if role.is_system {
            return Err(RoleError::SystemRole);
        }
        if !repo::set_trashed(&mut tx, id, trashed).await? {
            return Err(RoleError::NotFound);
        }
        let role = repo::role_by_id(&mut tx, id)
            .await?
            .ok_or(RoleError::NotFound)?;
        emit_changed(&mut tx, &role, if trashed { "trashed" } else { "restored" }).await?;
        tx.commit().await?;
        Ok(role)
    }

    pub async fn delete(&self, caller: &Principal, id: Uuid) -> Result<(), RoleError> {
        caller.require(ROLES_WRITE)?;
        let mut tx = self.pool.begin().await?;
        let role = repo::role_by_id(&mut tx, id)
            .await?
            .ok_or(RoleError::NotFound)?;
        if role.is_system {
            return Err(RoleError::SystemRole);
        }
        if role.deleted_at.is_none() {
            return Err(RoleError::NotTrashed);
        }
        repo::delete_trashed(&mut tx, id).await?;
        emit_changed(&mut tx, &role, "deleted").await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn restore_all(&self, caller: &Principal) -> Result<u64, RoleError> {
        caller.require(ROLES_WRITE)?;
        let mut tx = self.pool.begin().await?;
        let restored = repo::restore_all(&mut tx).await?;
        for (id, name) in &restored {
            emit(
                &mut tx,
                ev::CHANGED,
                *id,
                &ev::Changed {
                    role_id: *id,
                    name: name.clone(),
                    change: "restored".into(),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(restored.len() as u64)
    }

    pub async fn delete_all_trashed(&self, caller: &Principal) -> Result<u64, RoleError> {
        caller.require(ROLES_WRITE)?;
        let mut tx = self.pool.begin().await?;
        let deleted = repo::delete_all_trashed(&mut tx).await?;
        for (id, name) in &deleted {
            emit(
                &mut tx,
                ev::CHANGED,
                *id,
                &ev::Changed {
                    role_id: *id,
                    name: name.clone(),
                    change: "deleted".into(),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(deleted.len() as u64)
    }

    pub async fn permissions(
        &self,
        caller: &Principal,
    ) -> Result<Vec<(String, String)>, RoleError> {
        caller.require(ROLES_READ)?;
        let mut conn = self.pool.acquire().await?;
        Ok(repo::list_permissions(&mut conn).await?)
    }
}

pub(crate) async fn emit(
    conn: &mut PgConnection,
    event_type: &str,
    subject: Uuid,
    data: &impl Serialize,
) -> Result<(), RoleError> {
    let event = Envelope::new(SOURCE, event_type, subject, data)
        .map_err(|e| RoleError::Internal(e.into()))?;
    events::outbox::enqueue(conn, topics::ROLE_EVENTS, &event).await?;
    Ok(())
}

async fn emit_changed(
    conn: &mut PgConnection,
    role: &RoleRow,
    change: &str,
) -> Result<(), RoleError> {
    emit(
        conn,
        ev::CHANGED,
        role.id,
        &ev::Changed {
            role_id: role.id,
            name: role.name.clone(),
            change: change.to_owned(),
        },
    )
    .await
}
