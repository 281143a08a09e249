//! The merchant service's SQL, and only SQL: rows in, rows
//! out, for merchants, their API keys and their documents. Deciding who may do what, and the
//! events, are [`crate::service`]'s, [`crate::api_keys`]' and [`crate::documents`]'.
//!
//! Why one file of ~400 lines: one repo per service, as everywhere; its three tables' SQL.

use platform::pagination::{LifecycleFilter, Page};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::documents::{DocumentRow, DocumentStatus};
use crate::service::{ApiKeyRow, MerchantRow, MerchantStatus};

const MERCHANT_COLUMNS: &str = "id, user_id, name, description, website, currency, status,
        status_reason, created_at, updated_at, deleted_at";

const KEY_COLUMNS: &str =
    "id, merchant_id, prefix, replaces_key_id, created_at, expires_at, revoked_at";

/// Inserts a pending merchant (a name the owner already uses is the unique violation
/// `merchants_user_name_key`).
pub async fn insert_merchant(
    db: impl PgExecutor<'_>,
    owner: Uuid,
    name: &str,
    description: &str,
    website: &str,
    currency: &str,
) -> sqlx::Result<MerchantRow> {
    sqlx::query_as(&format!(
        "INSERT INTO merchants (id, user_id, name, description, website, currency)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {MERCHANT_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(owner)
    .bind(name)
    .bind(description)
    .bind(website)
    .bind(currency)
    .fetch_one(db)
    .await
}

/// One merchant; `lock` holds its row until the transaction ends.
pub async fn merchant(
    db: impl PgExecutor<'_>,
    id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<MerchantRow>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    sqlx::query_as(&format!(
        "SELECT {MERCHANT_COLUMNS} FROM merchants WHERE id = $1{lock}"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// A page of merchants, newest first, and how many match.
pub async fn list_merchants(
    conn: &mut sqlx::PgConnection,
    owner: Option<Uuid>,
    status: Option<MerchantStatus>,
    search: &str,
    lifecycle: LifecycleFilter,
    page: Page,
) -> sqlx::Result<(Vec<MerchantRow>, i64)> {
    let pattern = platform::db::like_pattern(search);
    Ok(platform::count_and_page!(
        conn,
        select = format!("SELECT {MERCHANT_COLUMNS}"),
        from_where = format!(
            "FROM merchants WHERE {} AND ($1::uuid IS NULL OR user_id = $1)
               AND ($2::text IS NULL OR status = $2) AND ($3 = '' OR name ILIKE $4)",
            lifecycle.sql_predicate()
        ),
        order = "ORDER BY created_at DESC, id",
        page = page,
        binds = [owner, status, search, pattern],
    ))
}

/// Changes a merchant's name, description and website (each when given).
pub async fn update_merchant(
    db: impl PgExecutor<'_>,
    id: Uuid,
    name: Option<&str>,
    description: Option<&str>,
    website: Option<&str>,
) -> sqlx::Result<MerchantRow> {
    sqlx::query_as(&format!(
        "UPDATE merchants SET name = COALESCE($2, name),
             description = COALESCE($3, description), website = COALESCE($4, website),
             updated_at = now()
         WHERE id = $1 RETURNING {MERCHANT_COLUMNS}"
    ))
    .bind(id)
    .bind(name)
    .bind(description)
    .bind(website)
    .fetch_one(db)
    .await
}

pub async fn set_status(
    db: impl PgExecutor<'_>,
    id: Uuid,
    status: MerchantStatus,
    reason: &str,
) -> sqlx::Result<MerchantRow> {
    sqlx::query_as(&format!(
        "UPDATE merchants SET status = $2, status_reason = NULLIF($3, ''), updated_at = now()
         WHERE id = $1 RETURNING {MERCHANT_COLUMNS}"
    ))
    .bind(id)
    .bind(status)
    .bind(reason)
    .fetch_one(db)
    .await
}

/// Trashes (`trash`) or restores a merchant.
pub async fn set_trashed(
    db: impl PgExecutor<'_>,
    id: Uuid,
    trash: bool,
) -> sqlx::Result<MerchantRow> {
    sqlx::query_as(&format!(
        "UPDATE merchants SET deleted_at = CASE WHEN $2 THEN now() END, updated_at = now()
         WHERE id = $1 RETURNING {MERCHANT_COLUMNS}"
    ))
    .bind(id)
    .bind(trash)
    .fetch_one(db)
    .await
}

/// Deletes a trashed merchant (its keys and documents go with it); whether it did.
pub async fn delete_trashed(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    let deleted = sqlx::query("DELETE FROM merchants WHERE id = $1 AND deleted_at IS NOT NULL")
        .bind(id)
        .execute(db)
        .await?
        .rows_affected();
    Ok(deleted == 1)
}

/// Restores every trashed merchant.
pub async fn restore_all(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<MerchantRow>> {
    sqlx::query_as(&format!(
        "UPDATE merchants SET deleted_at = NULL, updated_at = now()
         WHERE deleted_at IS NOT NULL RETURNING {MERCHANT_COLUMNS}"
    ))
    .fetch_all(db)
    .await
}

pub async fn trashed(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<MerchantRow>> {
    sqlx::query_as(&format!(
        "SELECT {MERCHANT_COLUMNS} FROM merchants WHERE deleted_at IS NOT NULL"
    ))
    .fetch_all(db)
    .await
}

/// Stores a key by its hash and shown prefix.
pub async fn insert_key(
    db: impl PgExecutor<'_>,
    merchant_id: Uuid,
    prefix: &str,
    hash: &[u8],
    replaces: Option<Uuid>,
) -> sqlx::Result<ApiKeyRow> {
    sqlx::query_as(&format!(
        "INSERT INTO api_keys (id, merchant_id, prefix, key_hash, replaces_key_id)
         VALUES ($1, $2, $3, $4, $5) RETURNING {KEY_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(merchant_id)
    .bind(prefix)
    .bind(hash)
    .bind(replaces)
    .fetch_one(db)
    .await
}

/// One of a merchant's keys, locked until the transaction ends.
pub async fn key_for_update(
    db: impl PgExecutor<'_>,
    key_id: Uuid,
    merchant_id: Uuid,
) -> sqlx::Result<Option<ApiKeyRow>> {
    sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 AND merchant_id = $2 FOR UPDATE"
    ))
    .bind(key_id)
    .bind(merchant_id)
    .fetch_optional(db)
    .await
}

/// Lets a key expire in `overlap_secs` (or sooner, if it already expires sooner).
pub async fn expire_key(
    db: impl PgExecutor<'_>,
    key_id: Uuid,
    overlap_secs: f64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE api_keys SET expires_at = LEAST(COALESCE(expires_at, 'infinity'),
             now() + make_interval(secs => $2))
         WHERE id = $1",
    )
    .bind(key_id)
    .bind(overlap_secs)
    .execute(db)
    .await?;
    Ok(())
}

/// Revokes one of a merchant's keys (once: a revoked key keeps its time).
pub async fn revoke_key(
    db: impl PgExecutor<'_>,
    key_id: Uuid,
    merchant_id: Uuid,
) -> sqlx::Result<Option<ApiKeyRow>> {
    sqlx::query_as(&format!(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())
         WHERE id = $1 AND merchant_id = $2 RETURNING {KEY_COLUMNS}"
    ))
    .bind(key_id)
    .bind(merchant_id)
    .fetch_optional(db)
    .await
}

/// A merchant's keys, newest first.
pub async fn keys_of(db: impl PgExecutor<'_>, merchant_id: Uuid) -> sqlx::Result<Vec<ApiKeyRow>> {
    sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE merchant_id = $1
         ORDER BY created_at DESC, id"
    ))
    .bind(merchant_id)
    .fetch_all(db)
    .await
}

/// The key stored with `hash`.
pub async fn key_by_hash(db: impl PgExecutor<'_>, hash: &[u8]) -> sqlx::Result<Option<ApiKeyRow>> {
    sqlx::query_as(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1"
    ))
    .bind(hash)
    .fetch_optional(db)
    .await
}

const SELECT_DOCUMENT_COLUMNS: &str = "SELECT d.id, d.merchant_id, d.document_type,
        d.document_url, d.status, d.note, d.reviewed_by, d.reviewed_at, d.created_at,
        d.updated_at, d.deleted_at, m.user_id AS owner_id, m.name AS merchant_name";
const DOCUMENTS_FROM: &str = "FROM merchant_documents d JOIN merchants m ON m.id = d.merchant_id";

/// One document, with its merchant's owner and name.
pub async fn document(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<DocumentRow>> {
    sqlx::query_as(&format!(
        "{SELECT_DOCUMENT_COLUMNS} {DOCUMENTS_FROM} WHERE d.id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
}

pub async fn insert_document(
    db: impl PgExecutor<'_>,
    id: Uuid,
    merchant_id: Uuid,
    document_type: &str,
    document_url: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO merchant_documents (id, merchant_id, document_type, document_url)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(merchant_id)
    .bind(document_type)
    .bind(document_url)
    .execute(db)
    .await?;
    Ok(())
}

/// Corrects a document while it is pending; whether it was.
pub async fn update_pending_document(
    db: impl PgExecutor<'_>,
    id: Uuid,
    document_type: Option<String>,
    document_url: Option<String>,
) -> sqlx::Result<bool> {
    let updated = sqlx::query(
        "UPDATE merchant_documents SET document_type = COALESCE($2, document_type),
             document_url = COALESCE($3, document_url), updated_at = now()
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(document_type)
    .bind(document_url)
    .execute(db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Records the review of a pending document; whether it was pending.
pub async fn review_pending_document(
    db: impl PgExecutor<'_>,
    id: Uuid,
    status: DocumentStatus,
    note: &str,
    reviewer: Option<Uuid>,
) -> sqlx::Result<bool> {
    let reviewed = sqlx::query(
        "UPDATE merchant_documents SET status = $2, note = NULLIF($3, ''), reviewed_by = $4,
             reviewed_at = now(), updated_at = now()
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(id)
    .bind(status)
    .bind(note)
    .bind(reviewer)
    .execute(db)
    .await?
    .rows_affected();
    Ok(reviewed == 1)
}

/// A page of documents (of one merchant, of one owner's merchants, or all), newest first,
/// and how many match.
pub async fn list_documents(
    conn: &mut sqlx::PgConnection,
    merchant_id: Option<Uuid>,
    status: Option<DocumentStatus>,
    owner: Option<Uuid>,
    lifecycle: LifecycleFilter,
    page: Page,
) -> sqlx::Result<(Vec<DocumentRow>, i64)> {
    Ok(platform::count_and_page!(
        conn,
        select = SELECT_DOCUMENT_COLUMNS,
        from_where = format!(
            "{DOCUMENTS_FROM} WHERE d.{} AND ($1::uuid IS NULL OR d.merchant_id = $1)
               AND ($2::text IS NULL OR d.status = $2) AND ($3::uuid IS NULL OR m.user_id = $3)",
            lifecycle.sql_predicate()
        ),
        order = "ORDER BY d.created_at DESC, d.id",
        page = page,
        binds = [merchant_id, status, owner],
    ))
}

/// Trashes (`trash`) or restores a document.
pub async fn set_document_trashed(
    db: impl PgExecutor<'_>,
    id: Uuid,
    trash: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE merchant_documents SET deleted_at = CASE WHEN $2 THEN now() END,
             updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(trash)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn delete_document(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM merchant_documents WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Restores every trashed document; their ids.
pub async fn restore_all_documents(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "UPDATE merchant_documents SET deleted_at = NULL, updated_at = now()
         WHERE deleted_at IS NOT NULL RETURNING id",
    )
    .fetch_all(db)
    .await
}

pub async fn trashed_documents(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<DocumentRow>> {
    sqlx::query_as(&format!(
        "{SELECT_DOCUMENT_COLUMNS} {DOCUMENTS_FROM} WHERE d.deleted_at IS NOT NULL"
    ))
    .fetch_all(db)
    .await
}

pub async fn delete_trashed_documents(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM merchant_documents WHERE deleted_at IS NOT NULL")
        .execute(db)
        .await?;
    Ok(())
}
