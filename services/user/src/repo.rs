//! SQL of the user service. Functions take a connection so use cases decide the transaction
//! boundaries; nothing here knows about gRPC or tokens' meaning.

use chrono::{DateTime, Utc};
use platform::pagination::{LifecycleFilter, Page};
use sqlx::PgConnection;
use uuid::Uuid;

/// A row of `users`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub first_name: String,
    pub last_name: String,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl UserRow {
    /// The contact data used in events.
    pub fn event_data(&self) -> events::payloads::user::UserData {
        events::payloads::user::UserData {
            user_id: self.id,
            email: self.email.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
        }
    }
}

const USER_COLUMNS: &str = "id, email, password_hash, first_name, last_name, email_verified_at, \
                            created_at, updated_at, deleted_at";

/// Fields of a new user.
pub struct NewUser<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub verified: bool,
}

pub async fn insert_user(conn: &mut PgConnection, user: &NewUser<'_>) -> sqlx::Result<UserRow> {
    sqlx::query_as(&format!(
        "INSERT INTO users (id, email, password_hash, first_name, last_name, email_verified_at)
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN now() END)
         RETURNING {USER_COLUMNS}"
    ))
    .bind(user.id)
    .bind(user.email)
    .bind(user.password_hash)
    .bind(user.first_name)
    .bind(user.last_name)
    .bind(user.verified)
    .fetch_one(conn)
    .await
}

/// An active (not trashed) user by email.
pub async fn active_user_by_email(
    conn: &mut PgConnection,
    email: &str,
) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE email = $1 AND deleted_at IS NULL"
    ))
    .bind(email)
    .fetch_optional(conn)
    .await
}

/// A user by id, trashed or not; `for_update` locks the row.
pub async fn user_by_id(
    conn: &mut PgConnection,
    id: Uuid,
    for_update: bool,
) -> sqlx::Result<Option<UserRow>> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id = $1{lock}"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Optional profile changes; `None` leaves a column as it is.
#[derive(Default)]
pub struct UserChanges {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub password_hash: Option<String>,
    pub unverify: bool,
}

pub async fn update_user(
    conn: &mut PgConnection,
    id: Uuid,
    changes: &UserChanges,
) -> sqlx::Result<UserRow> {
    sqlx::query_as(&format!(
        "UPDATE users SET
             email = COALESCE($2, email),
             first_name = COALESCE($3, first_name),
             last_name = COALESCE($4, last_name),
             password_hash = COALESCE($5, password_hash),
             email_verified_at = CASE WHEN $6 THEN NULL ELSE email_verified_at END,
             updated_at = now()
         WHERE id = $1
         RETURNING {USER_COLUMNS}"
    ))
    .bind(id)
    .bind(&changes.email)
    .bind(&changes.first_name)
    .bind(&changes.last_name)
    .bind(&changes.password_hash)
    .bind(changes.unverify)
    .fetch_one(conn)
    .await
}

pub async fn mark_verified(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<UserRow> {
    sqlx::query_as(&format!(
        "UPDATE users SET email_verified_at = COALESCE(email_verified_at, now()), updated_at = now()
         WHERE id = $1 RETURNING {USER_COLUMNS}"
    ))
    .bind(id)
    .fetch_one(conn)
    .await
}

/// Sets or clears `deleted_at` if the row is in the opposite state; `None` if nothing changed.
pub async fn set_trashed(
    conn: &mut PgConnection,
    id: Uuid,
    trashed: bool,
) -> sqlx::Result<Option<UserRow>> {
    let sql = if trashed {
        format!(
            "UPDATE users SET deleted_at = now(), updated_at = now()
             WHERE id = $1 AND deleted_at IS NULL RETURNING {USER_COLUMNS}"
        )
    } else {
        format!(
            "UPDATE users SET deleted_at = NULL, updated_at = now()
             WHERE id = $1 AND deleted_at IS NOT NULL RETURNING {USER_COLUMNS}"
        )
    };
    sqlx::query_as(&sql).bind(id).fetch_optional(conn).await
}

/// Deletes a trashed user; returns whether a row was deleted.
pub async fn delete_trashed(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let result = sqlx::query("DELETE FROM users WHERE id = $1 AND deleted_at IS NOT NULL")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Restores every trashed user; returns them.
pub async fn restore_all(conn: &mut PgConnection) -> sqlx::Result<Vec<UserRow>> {
    sqlx::query_as(&format!(
        "UPDATE users SET deleted_at = NULL, updated_at = now()
         WHERE deleted_at IS NOT NULL RETURNING {USER_COLUMNS}"
    ))
    .fetch_all(conn)
    .await
}

/// Deletes every trashed user except `keep`; returns the deleted ids.
pub async fn delete_all_trashed(conn: &mut PgConnection) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("DELETE FROM users WHERE deleted_at IS NOT NULL RETURNING id")
        .fetch_all(conn)
        .await
}

/// One page of users matching `search` (email, first, last or full name) in `lifecycle`.
pub async fn list_users(
    conn: &mut PgConnection,
    lifecycle: LifecycleFilter,
    search: &str,
    page: Page,
) -> sqlx::Result<(Vec<UserRow>, i64)> {
    let pattern = platform::db::like_pattern(search);
    Ok(platform::count_and_page!(
        conn,
        select = format!("SELECT {USER_COLUMNS}"),
        from_where = format!(
            "FROM users WHERE {} AND ($1 = '' OR email ILIKE $2 OR first_name ILIKE $2
                 OR last_name ILIKE $2 OR (first_name || ' ' || last_name) ILIKE $2)",
            lifecycle.sql_predicate()
        ),
        order = "ORDER BY created_at DESC, id DESC",
        page = page,
        binds = [search, pattern],
    ))
}

/// Purposes of one-time tokens.
#[derive(Clone, Copy, Debug)]
pub enum TokenPurpose {
    VerifyEmail,
    ResetPassword,
}

impl TokenPurpose {
    /// The stored name, also the purpose a link token is derived for.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => platform::link_token::VERIFY_EMAIL,
            Self::ResetPassword => platform::link_token::RESET_PASSWORD,
        }
    }
}

/// Stores a new one-time token, invalidating earlier unused ones of the same purpose.
pub async fn replace_one_time_token(
    conn: &mut PgConnection,
    user_id: Uuid,
    purpose: TokenPurpose,
    hash: &[u8],
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE one_time_tokens SET used_at = now()
         WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(purpose.as_str())
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO one_time_tokens (token_hash, user_id, purpose, expires_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(hash)
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Consumes a valid (unused, unexpired) token; returns its user.
pub async fn consume_one_time_token(
    conn: &mut PgConnection,
    purpose: TokenPurpose,
    hash: &[u8],
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "UPDATE one_time_tokens SET used_at = now()
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
         RETURNING user_id",
    )
    .bind(hash)
    .bind(purpose.as_str())
    .fetch_optional(conn)
    .await
}

/// A row of `refresh_tokens`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RefreshTokenRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn insert_refresh_token(
    conn: &mut PgConnection,
    user_id: Uuid,
    family_id: Uuid,
    hash: &[u8],
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::now_v7())
    .bind(user_id)
    .bind(family_id)
    .bind(hash)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks a refresh token row by its hash.
pub async fn refresh_token_for_update(
    conn: &mut PgConnection,
    hash: &[u8],
) -> sqlx::Result<Option<RefreshTokenRow>> {
    sqlx::query_as(
        "SELECT id, user_id, family_id, expires_at, used_at, revoked_at
         FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(hash)
    .fetch_optional(conn)
    .await
}

pub async fn mark_refresh_used(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn revoke_family(
    conn: &mut PgConnection,
    family_id: Uuid,
    reason: &str,
) -> sqlx::Result<u64> {
    let result = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now(), revoked_reason = $2
         WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family_id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

pub async fn revoke_all_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    reason: &str,
) -> sqlx::Result<u64> {
    let result = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now(), revoked_reason = $2
         WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}
