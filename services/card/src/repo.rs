//! The card service's SQL, and only SQL: rows in, rows out. Numbers are stored sealed
//! ([`crate::keys`]) and found by their keyed hash; opening them, checking CVVs and deciding
//! who may do what are [`crate::service`]'s.

use chrono::{DateTime, Utc};
use platform::pagination::{LifecycleFilter, Page};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::keys::SealedPan;

/// The columns of a card as stored: the number sealed.
const CARD_COLUMNS: &str = "id, user_id, pan_ciphertext, pan_key, brand, card_type, currency,
        expiry_month, expiry_year, created_at, updated_at, deleted_at";

/// A card row as stored; the service opens its number.
#[derive(sqlx::FromRow)]
pub struct StoredCard {
    pub id: Uuid,
    pub user_id: Uuid,
    pub pan_ciphertext: Vec<u8>,
    pub pan_key: Vec<u8>,
    pub brand: String,
    pub card_type: String,
    pub currency: String,
    pub expiry_month: i16,
    pub expiry_year: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A card to insert.
pub struct NewCardRow<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub pan: &'a SealedPan,
    pub pan_hash: &'a [u8],
    pub number: &'a str,
    pub brand: &'a str,
    pub card_type: &'a str,
    pub currency: &'a str,
    pub expiry_month: i16,
    pub expiry_year: i32,
    /// The expiry the CVV is derived for (`yyyymm`).
    pub cvv_period: i32,
}

/// Inserts a card (a taken number is the unique violation `cards_pan_hash_key`).
pub async fn insert(db: impl PgExecutor<'_>, card: &NewCardRow<'_>) -> sqlx::Result<StoredCard> {
    sqlx::query_as(&format!(
        "INSERT INTO cards (id, user_id, pan_ciphertext, pan_key, pan_hash, pan_last4,
             brand, card_type, currency, expiry_month, expiry_year, cvv_period)
         VALUES ($1, $2, $3, $4, $5, right($6, 4), $7, $8, $9, $10, $11, $12)
         RETURNING {CARD_COLUMNS}"
    ))
    .bind(card.id)
    .bind(card.user_id)
    .bind(&card.pan.ciphertext)
    .bind(&card.pan.wrapped_key)
    .bind(card.pan_hash)
    .bind(card.number)
    .bind(card.brand)
    .bind(card.card_type)
    .bind(card.currency)
    .bind(card.expiry_month)
    .bind(card.expiry_year)
    .bind(card.cvv_period)
    .fetch_one(db)
    .await
}

pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<StoredCard>> {
    sqlx::query_as(&format!("SELECT {CARD_COLUMNS} FROM cards WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

pub async fn by_pan_hash(
    db: impl PgExecutor<'_>,
    pan_hash: &[u8],
) -> sqlx::Result<Option<StoredCard>> {
    sqlx::query_as(&format!(
        "SELECT {CARD_COLUMNS} FROM cards WHERE pan_hash = $1"
    ))
    .bind(pan_hash)
    .fetch_optional(db)
    .await
}

/// A page of cards, newest first, and how many match: one owner's or everyone's, searched by
/// last four digits, brand or currency.
pub async fn list(
    conn: &mut sqlx::PgConnection,
    owner: Option<Uuid>,
    search: &str,
    lifecycle: LifecycleFilter,
    page: Page,
) -> sqlx::Result<(Vec<StoredCard>, i64)> {
    let pattern = platform::db::like_pattern(search);
    Ok(platform::count_and_page!(
        conn,
        select = format!("SELECT {CARD_COLUMNS}"),
        from_where = format!(
            "FROM cards WHERE {} AND ($1::uuid IS NULL OR user_id = $1)
               AND ($2 = '' OR pan_last4 = $2 OR brand ILIKE $3 OR currency ILIKE $3)",
            lifecycle.sql_predicate()
        ),
        order = "ORDER BY created_at DESC, id",
        page = page,
        binds = [owner, search, pattern],
    ))
}

/// Changes a card's type and expiry (each when given).
pub async fn update(
    db: impl PgExecutor<'_>,
    id: Uuid,
    card_type: Option<String>,
    expiry: Option<(i16, i32)>,
) -> sqlx::Result<StoredCard> {
    sqlx::query_as(&format!(
        "UPDATE cards SET card_type = COALESCE($2, card_type),
             expiry_month = COALESCE($3, expiry_month), expiry_year = COALESCE($4, expiry_year),
             updated_at = now()
         WHERE id = $1
         RETURNING {CARD_COLUMNS}"
    ))
    .bind(id)
    .bind(card_type)
    .bind(expiry.map(|(month, _)| month))
    .bind(expiry.map(|(_, year)| year))
    .fetch_one(db)
    .await
}

/// Whether an admin (rather than the owner) trashed the card.
pub async fn trashed_by_admin(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT trashed_by_admin FROM cards WHERE id = $1")
        .bind(id)
        .fetch_one(db)
        .await
}

/// Trashes (`trash`) or restores a card, recording whether an admin trashed it.
pub async fn set_trashed(
    db: impl PgExecutor<'_>,
    id: Uuid,
    trash: bool,
    by_admin: bool,
) -> sqlx::Result<StoredCard> {
    sqlx::query_as(&format!(
        "UPDATE cards SET deleted_at = CASE WHEN $2 THEN now() END,
             trashed_by_admin = $2 AND $3, updated_at = now()
         WHERE id = $1
         RETURNING {CARD_COLUMNS}"
    ))
    .bind(id)
    .bind(trash)
    .bind(by_admin)
    .fetch_one(db)
    .await
}

/// Deletes a trashed card; whether it did.
pub async fn delete_trashed(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<bool> {
    let deleted = sqlx::query("DELETE FROM cards WHERE id = $1 AND deleted_at IS NOT NULL")
        .bind(id)
        .execute(db)
        .await?
        .rows_affected();
    Ok(deleted == 1)
}

/// Restores every trashed card.
pub async fn restore_all(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<StoredCard>> {
    sqlx::query_as(&format!(
        "UPDATE cards SET deleted_at = NULL, updated_at = now() WHERE deleted_at IS NOT NULL
         RETURNING {CARD_COLUMNS}"
    ))
    .fetch_all(db)
    .await
}

pub async fn trashed(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<StoredCard>> {
    sqlx::query_as(&format!(
        "SELECT {CARD_COLUMNS} FROM cards WHERE deleted_at IS NOT NULL"
    ))
    .fetch_all(db)
    .await
}

/// The expiry a card's CVV is derived for.
pub async fn cvv_period(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<i32> {
    sqlx::query_scalar("SELECT cvv_period FROM cards WHERE id = $1")
        .bind(id)
        .fetch_one(db)
        .await
}

/// What a CVV check needs of the card with `pan_hash`: its id, CVV period and lock.
pub async fn cvv_state(
    db: impl PgExecutor<'_>,
    pan_hash: &[u8],
) -> sqlx::Result<Option<(Uuid, i32, Option<DateTime<Utc>>)>> {
    sqlx::query_as("SELECT id, cvv_period, cvv_locked_until FROM cards WHERE pan_hash = $1")
        .bind(pan_hash)
        .fetch_optional(db)
        .await
}

/// A matching CVV clears the card's mismatch count and lock.
pub async fn clear_cvv_failures(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE cards SET cvv_failed_attempts = 0, cvv_locked_until = NULL
         WHERE id = $1 AND (cvv_failed_attempts <> 0 OR cvv_locked_until IS NOT NULL)",
    )
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

/// Counts a mismatch; the `max_attempts`-th locks the card for `lock_secs` and resets the
/// count. Returns the count and the lock.
pub async fn record_cvv_mismatch(
    db: impl PgExecutor<'_>,
    id: Uuid,
    max_attempts: i32,
    lock_secs: f64,
) -> sqlx::Result<(i32, Option<DateTime<Utc>>)> {
    sqlx::query_as(
        "UPDATE cards SET
             cvv_failed_attempts = CASE WHEN cvv_failed_attempts + 1 >= $2 THEN 0
                                        ELSE cvv_failed_attempts + 1 END,
             cvv_locked_until = CASE WHEN cvv_failed_attempts + 1 >= $2
                                     THEN now() + make_interval(secs => $3)
                                     ELSE cvv_locked_until END
         WHERE id = $1
         RETURNING cvv_failed_attempts, cvv_locked_until",
    )
    .bind(id)
    .bind(max_attempts)
    .bind(lock_secs)
    .fetch_one(db)
    .await
}

/// Reserves one CVV check of a merchant key in its window (a new window starts when the
/// last is over); returns the checks reserved in the window and when it started.
pub async fn reserve_key_check(
    db: impl PgExecutor<'_>,
    key: Uuid,
    window_secs: f64,
) -> sqlx::Result<(i32, DateTime<Utc>)> {
    sqlx::query_as(
        "INSERT INTO cvv_key_attempts AS a (api_key_id, window_started_at, reserved)
         VALUES ($1, now(), 1)
         ON CONFLICT (api_key_id) DO UPDATE SET
             window_started_at = CASE
                 WHEN a.window_started_at < now() - make_interval(secs => $2) THEN now()
                 ELSE a.window_started_at END,
             reserved = CASE
                 WHEN a.window_started_at < now() - make_interval(secs => $2) THEN 1
                 ELSE a.reserved + 1 END
         RETURNING reserved, window_started_at",
    )
    .bind(key)
    .bind(window_secs)
    .fetch_one(db)
    .await
}

/// Gives a reserved check back (a matching CVV does not count against the key).
pub async fn release_key_check(db: impl PgExecutor<'_>, key: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE cvv_key_attempts SET reserved = greatest(reserved - 1, 0)
         WHERE api_key_id = $1",
    )
    .bind(key)
    .execute(db)
    .await?;
    Ok(())
}

/// Claims up to 500 cards stored before encryption at rest (skipping rows another replica
/// holds): their ids and clear numbers.
pub async fn legacy_numbers(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(Uuid, String)>> {
    sqlx::query_as(
        "SELECT id, number FROM cards WHERE pan_ciphertext IS NULL AND number IS NOT NULL
         ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(db)
    .await
}

/// Stores a legacy card's number sealed and drops the clear number and CVV hash.
pub async fn seal_number(
    db: impl PgExecutor<'_>,
    id: Uuid,
    pan: &SealedPan,
    pan_hash: &[u8],
    number: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE cards SET pan_ciphertext = $2, pan_key = $3, pan_hash = $4,
             pan_last4 = right($5, 4), number = NULL, cvv_hash = NULL
         WHERE id = $1",
    )
    .bind(id)
    .bind(&pan.ciphertext)
    .bind(&pan.wrapped_key)
    .bind(pan_hash)
    .bind(number)
    .execute(db)
    .await?;
    Ok(())
}
