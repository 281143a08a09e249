//! SQL of the role service.

use chrono::{DateTime, Utc};
use platform::pagination::{LifecycleFilter, Page};
use sqlx::PgConnection;
use uuid::Uuid;

/// Id of the system role `admin`.
pub const ADMIN_ROLE_ID: Uuid = Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0001);
/// Id of the system role `customer`.
pub const CUSTOMER_ROLE_ID: Uuid = Uuid::from_u128(0x0000_0000_0000_7000_8000_0000_0000_0002);

/// A role with its permissions.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RoleRow {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub is_system: bool,
    pub permissions: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

const ROLE_COLUMNS: &str = "SELECT r.id, r.name, r.description, r.is_system, r.created_at,
        r.updated_at, r.deleted_at,
        COALESCE((SELECT array_agg(rp.permission ORDER BY rp.permission)
                  FROM role_permissions rp WHERE rp.role_id = r.id), '{}') AS permissions";

pub async fn role_by_id(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<RoleRow>> {
    sqlx::query_as(&format!("{ROLE_COLUMNS} FROM roles r WHERE r.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn role_by_name(conn: &mut PgConnection, name: &str) -> sqlx::Result<Option<RoleRow>> {
    sqlx::query_as(&format!("{ROLE_COLUMNS} FROM roles r WHERE r.name = $1"))
        .bind(name)
        .fetch_optional(conn)
        .await
}

pub async fn insert_role(
    conn: &mut PgConnection,
    id: Uuid,
    name: &str,
    description: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO roles (id, name, description) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(name)
        .bind(description)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn update_role(
    conn: &mut PgConnection,
    id: Uuid,
    name: Option<&str>,
    description: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE roles SET name = COALESCE($2, name), description = COALESCE($3, description),
             updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(name)
    .bind(description)
    .execute(conn)
    .await?;
    Ok(())
}

/// Names among `names` that are not in the permission catalogue.
pub async fn unknown_permissions(
    conn: &mut PgConnection,
    names: &[String],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT n FROM unnest($1::text[]) AS n WHERE n NOT IN (SELECT name FROM permissions) ORDER BY n",
    )
    .bind(names)
    .fetch_all(conn)
    .await
}

pub async fn replace_permissions(
    conn: &mut PgConnection,
    role_id: Uuid,
    names: &[String],
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM role_permissions WHERE role_id = $1")
        .bind(role_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO role_permissions (role_id, permission)
         SELECT $1, n FROM unnest($2::text[]) AS n ON CONFLICT DO NOTHING",
    )
    .bind(role_id)
    .bind(names)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn list_roles(
    conn: &mut PgConnection,
    lifecycle: LifecycleFilter,
    search: &str,
    page: Page,
) -> sqlx::Result<(Vec<RoleRow>, i64)> {
    let pattern = platform::db::like_pattern(search);
    Ok(platform::count_and_page!(
        conn,
        select = ROLE_COLUMNS,
        from_where = format!(
            "FROM roles r WHERE r.{} AND ($1 = '' OR r.name ILIKE $2 OR r.description ILIKE $2)",
            lifecycle.sql_predicate()
        ),
        order = "ORDER BY r.created_at DESC, r.id DESC",
        page = page,
        binds = [search, pattern],
    ))
}

/// Trashes or restores a non-system role; returns whether it changed.
pub async fn set_trashed(conn: &mut PgConnection, id: Uuid, trashed: bool) -> sqlx::Result<bool> {
    let sql = if trashed {
        "UPDATE roles SET deleted_at = now(), updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL AND NOT is_system"
    } else {
        "UPDATE roles SET deleted_at = NULL, updated_at = now()
         WHERE id = $1 AND deleted_at IS NOT NULL"
    };
    Ok(sqlx::query(sql)
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected()
        == 1)
}

pub async fn delete_trashed(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    Ok(
        sqlx::query("DELETE FROM roles WHERE id = $1 AND deleted_at IS NOT NULL AND NOT is_system")
            .bind(id)
            .execute(conn)
            .await?
            .rows_affected()
            == 1,
    )
}

pub async fn restore_all(conn: &mut PgConnection) -> sqlx::Result<Vec<(Uuid, String)>> {
    sqlx::query_as(
        "UPDATE roles SET deleted_at = NULL, updated_at = now()
         WHERE deleted_at IS NOT NULL RETURNING id, name",
    )
    .fetch_all(conn)
    .await
}

pub async fn delete_all_trashed(conn: &mut PgConnection) -> sqlx::Result<Vec<(Uuid, String)>> {
    sqlx::query_as(
        "DELETE FROM roles WHERE deleted_at IS NOT NULL AND NOT is_system RETURNING id, name",
    )
    .fetch_all(conn)
    .await
}

pub async fn list_permissions(conn: &mut PgConnection) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as("SELECT name, description FROM permissions ORDER BY name")
        .fetch_all(conn)
        .await
}

/// Assigns a role; returns whether it was new.
pub async fn assign(
    conn: &mut PgConnection,
    user_id: Uuid,
    role_id: Uuid,
    by: &str,
) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "INSERT INTO user_roles (user_id, role_id, assigned_by) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(user_id)
    .bind(role_id)
    .bind(by)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Revokes a role; returns whether it was assigned.
pub async fn revoke(conn: &mut PgConnection, user_id: Uuid, role_id: Uuid) -> sqlx::Result<bool> {
    Ok(
        sqlx::query("DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2")
            .bind(user_id)
            .bind(role_id)
            .execute(conn)
            .await?
            .rows_affected()
            == 1,
    )
}

pub async fn remove_user(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM user_roles WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?
        .rows_affected())
}

/// Locks the admin assignments (serialising concurrent revocations); the admins' ids.
pub async fn lock_admins(conn: &mut PgConnection) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT user_id FROM user_roles WHERE role_id = $1 FOR UPDATE")
        .bind(ADMIN_ROLE_ID)
        .fetch_all(conn)
        .await
}

/// Every role of a user (trashed roles included, flagged by `deleted_at`).
pub async fn roles_of_user(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<Vec<RoleRow>> {
    sqlx::query_as(&format!(
        "{ROLE_COLUMNS} FROM roles r JOIN user_roles ur ON ur.role_id = r.id
         WHERE ur.user_id = $1 ORDER BY r.name"
    ))
    .bind(user_id)
    .fetch_all(conn)
    .await
}

/// Active role names and the union of their permissions.
pub async fn grants(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> sqlx::Result<(Vec<String>, Vec<String>)> {
    let roles: Vec<String> = sqlx::query_scalar(
        "SELECT r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id
         WHERE ur.user_id = $1 AND r.deleted_at IS NULL ORDER BY r.name",
    )
    .bind(user_id)
    .fetch_all(&mut *conn)
    .await?;
    let permissions: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT rp.permission FROM user_roles ur
         JOIN roles r ON r.id = ur.role_id AND r.deleted_at IS NULL
         JOIN role_permissions rp ON rp.role_id = r.id
         WHERE ur.user_id = $1 ORDER BY rp.permission",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await?;
    Ok((roles, permissions))
}
