//! Use cases of merchants and their API keys, with their SQL. Every change commits together
//! with its outbox event; the saldo service opens the settlement account when a merchant
//! becomes active, the email service tells the owner about status changes.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::payloads::merchant as ev;
use events::{Envelope, topics};
use platform::FieldViolation;
use platform::auth::{Authenticator, Principal, ServiceToken};
use platform::pagination::{LifecycleFilter, Page};
use proto::saldo::v1::MerchantAccountRequest;
use proto::saldo::v1::saldo_service_client::SaldoServiceClient;
use proto::user::v1::GetUserRequest;
use proto::user::v1::user_service_client::UserServiceClient;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::error::MerchantError;

pub const MERCHANTS_READ: &str = "merchants.read";
pub const MERCHANTS_WRITE: &str = "merchants.write";
pub const MERCHANTS_REVIEW: &str = "merchants.review";
pub const MERCHANTS_DELETE: &str = "merchants.delete";
/// Services that resolve API keys (the transaction service).
pub const MERCHANTS_AUTHENTICATE: &str = "merchants.authenticate";

const SOURCE: &str = "merchant-service";
const CALL_DEADLINE: Duration = Duration::from_secs(5);
/// Keys look like `mk_<48 hex chars>`; the prefix shown in lists is its first 11 characters.
const KEY_PREFIX: &str = "mk_";
const SHOWN_PREFIX_LEN: usize = 11;
const DEFAULT_OVERLAP_SECS: u32 = 86_400;
const MAX_OVERLAP_SECS: u32 = 604_800;

platform::text_enum! {
    /// Where a merchant is in its review workflow.
    pub enum MerchantStatus {
        /// Applied, not reviewed yet.
        Pending = "pending",
        /// Approved: its keys may charge cards.
        Active = "active",
        Rejected = "rejected",
        /// Deactivated by an admin: refunds only.
        Inactive = "inactive",
    }
}

impl MerchantStatus {
    /// The admin decisions: approve or reject a pending merchant, deactivate an active one,
    /// reactivate an inactive one. A rejection is final.
    pub fn may_become(self, to: Self) -> bool {
        use MerchantStatus::{Active, Inactive, Pending, Rejected};
        matches!(
            (self, to),
            (Pending, Active | Rejected) | (Active, Inactive) | (Inactive, Active)
        )
    }
}

platform::text_enum! {
    /// Whether an API key works.
    pub enum KeyStatus {
        Active = "active",
        /// Rotated: works until its overlap window ends.
        Expiring = "expiring",
        Expired = "expired",
        Revoked = "revoked",
    }
}

/// A merchant row.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MerchantRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub description: String,
    pub website: String,
    pub currency: String,
    pub status: MerchantStatus,
    pub status_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

pub const MERCHANT_COLUMNS: &str = "id, user_id, name, description, website, currency, status,
        status_reason, created_at, updated_at, deleted_at";

/// An API key row (never the key).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub merchant_id: Uuid,
    pub prefix: String,
    pub replaces_key_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const KEY_COLUMNS: &str =
    "id, merchant_id, prefix, replaces_key_id, created_at, expires_at, revoked_at";

impl ApiKeyRow {
    /// Its status at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> KeyStatus {
        match (self.revoked_at, self.expires_at) {
            (Some(_), _) => KeyStatus::Revoked,
            (None, Some(at)) if at <= now => KeyStatus::Expired,
            (None, Some(_)) => KeyStatus::Expiring,
            (None, None) => KeyStatus::Active,
        }
    }
}

/// Input of apply.
#[derive(Debug, Default)]
pub struct NewMerchant {
    pub user_id: Option<Uuid>,
    pub name: String,
    pub description: String,
    pub website: String,
    pub currency: String,
}

/// Input of update.
#[derive(Debug, Default)]
pub struct MerchantChange {
    pub name: Option<String>,
    pub description: Option<String>,
    pub website: Option<String>,
}

/// Filters of a merchant list.
#[derive(Debug)]
pub struct MerchantFilter {
    /// `None` = everyone's (needs `merchants.read`).
    pub owner: Option<Uuid>,
    pub status: Option<MerchantStatus>,
    pub search: String,
    pub lifecycle: LifecycleFilter,
}

/// The merchant service (merchants and keys; documents live in [`crate::documents`]).
#[derive(Clone)]
pub struct Merchants {
    pool: PgPool,
    authenticator: Authenticator,
    currencies: Arc<Vec<String>>,
    token: Arc<ServiceToken>,
    saldo: SaldoServiceClient<Channel>,
    users: UserServiceClient<Channel>,
}

fn check_name(name: &str, violations: &mut Vec<FieldViolation>) {
    let len = name.chars().count();
    if !(2..=100).contains(&len) {
        violations.push(FieldViolation::new("name", "must be 2-100 characters"));
    }
}

fn check_website(website: &str, violations: &mut Vec<FieldViolation>) {
    if !website.is_empty()
        && !(website.len() <= 255
            && (website.starts_with("https://") || website.starts_with("http://"))
            && !website.contains(char::is_whitespace))
    {
        violations.push(FieldViolation::new(
            "website",
            "must be an http(s) URL of at most 255 characters",
        ));
    }
}

fn check_description(description: &str, violations: &mut Vec<FieldViolation>) {
    if description.chars().count() > 1000 {
        violations.push(FieldViolation::new(
            "description",
            "must be at most 1000 characters",
        ));
    }
}

/// A fresh key and its stored hash.
fn generate_key() -> (String, Vec<u8>) {
    let mut bytes = [0_u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    let key = format!("{KEY_PREFIX}{}", hex::encode(bytes));
    let hash = hash_key(&key);
    (key, hash)
}

/// The stored form of a key.
pub fn hash_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

impl Merchants {
    pub fn new(
        pool: PgPool,
        authenticator: Authenticator,
        currencies: Vec<String>,
        token: ServiceToken,
        saldo: SaldoServiceClient<Channel>,
        users: UserServiceClient<Channel>,
    ) -> Self {
        Self {
            pool,
            authenticator,
            currencies: Arc::new(currencies),
            token: Arc::new(token),
            saldo,
            users,
        }
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.authenticator
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn bearer(&self) -> Result<String, MerchantError> {
        self.token.bearer().map_err(MerchantError::Internal)
    }

    async fn ensure_user_exists(&self, user_id: Uuid) -> Result<(), MerchantError> {
        let request = platform::grpc::outgoing(
            GetUserRequest {
                id: user_id.to_string(),
            },
            Some(&self.bearer()?),
            CALL_DEADLINE,
        );
        match self.users.clone().get_user(request).await {
            Ok(user) if user.get_ref().deleted_at.is_none() => Ok(()),
            Ok(_) => Err(MerchantError::UserNotFound),
            Err(s) if s.code() == tonic::Code::NotFound => Err(MerchantError::UserNotFound),
            Err(s) => Err(MerchantError::Upstream("user service", s)),
        }
    }

    /// A user applies to become a merchant; the merchant starts `pending`.
    #[tracing::instrument(skip_all)]
    pub async fn apply(
        &self,
        caller: &Principal,
        input: NewMerchant,
    ) -> Result<MerchantRow, MerchantError> {
        let mut violations = Vec::new();
        check_name(&input.name, &mut violations);
        check_description(&input.description, &mut violations);
        check_website(&input.website, &mut violations);
        if !self.currencies.contains(&input.currency) {
            violations.push(FieldViolation::new(
                "currency",
                format!("must be one of {}", self.currencies.join(", ")),
            ));
        }
        let owner = match (input.user_id, caller.user_id()) {
            (Some(owner), me) if Some(owner) != me => {
                caller.require(MERCHANTS_WRITE)?;
                owner
            }
            (Some(owner), _) => owner,
            (None, Some(me)) => me,
            (None, None) => {
                violations.push(FieldViolation::new(
                    "user_id",
                    "is required when a service applies",
                ));
                Uuid::nil()
            }
        };
        if !violations.is_empty() {
            return Err(MerchantError::Invalid(violations));
        }
        if caller.user_id() != Some(owner) {
            self.ensure_user_exists(owner).await?;
        }
        let mut tx = self.pool.begin().await?;
        let inserted: Result<MerchantRow, sqlx::Error> = sqlx::query_as(&format!(
            "INSERT INTO merchants (id, user_id, name, description, website, currency)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {MERCHANT_COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(owner)
        .bind(input.name.trim())
        .bind(input.description.trim())
        .bind(input.website.trim())
        .bind(&input.currency)
        .fetch_one(&mut *tx)
        .await;
        let merchant = match inserted {
            Ok(m) => m,
            Err(e)
                if platform::db::unique_violation(&e).as_deref()
                    == Some("merchants_user_name_key") =>
            {
                return Err(MerchantError::NameTaken);
            }
            Err(e) => return Err(e.into()),
        };
        emit(&mut tx, ev::APPLIED, &merchant, None).await?;
        tx.commit().await?;
        metrics::counter!("merchants_applied_total").increment(1);
        tracing::info!(merchant_id = %merchant.id, user_id = %owner, "merchant applied");
        Ok(merchant)
    }

    pub async fn load(
        conn: &mut PgConnection,
        id: Uuid,
        lock: bool,
    ) -> Result<MerchantRow, MerchantError> {
        let lock = if lock { " FOR UPDATE" } else { "" };
        sqlx::query_as(&format!(
            "SELECT {MERCHANT_COLUMNS} FROM merchants WHERE id = $1{lock}"
        ))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(MerchantError::NotFound)
    }

    /// The merchant if the caller owns it or holds `permission`; others get NOT_FOUND so
    /// merchant ids of other users are not confirmed.
    pub fn visible(
        caller: &Principal,
        merchant: MerchantRow,
        permission: &str,
    ) -> Result<MerchantRow, MerchantError> {
        if caller.user_id() == Some(merchant.user_id) || caller.has(permission) {
            Ok(merchant)
        } else if caller.has(MERCHANTS_READ) {
            // They may see it, just not change it.
            Err(platform::auth::AuthError::MissingPermission(permission.to_owned()).into())
        } else {
            Err(MerchantError::NotFound)
        }
    }

    pub async fn get(&self, caller: &Principal, id: Uuid) -> Result<MerchantRow, MerchantError> {
        let mut conn = self.pool.acquire().await?;
        let merchant = Self::load(&mut conn, id, false).await?;
        Self::visible(caller, merchant, MERCHANTS_READ)
    }

    pub async fn list(
        &self,
        caller: &Principal,
        filter: MerchantFilter,
        page: Page,
    ) -> Result<(Vec<MerchantRow>, i64), MerchantError> {
        match filter.owner {
            Some(owner) => caller.require_self_or(owner, MERCHANTS_READ)?,
            None => caller.require(MERCHANTS_READ)?,
        }
        let search = filter.search.trim();
        let pattern = platform::db::like_pattern(search);
        let predicate = format!(
            "WHERE {} AND ($1::uuid IS NULL OR user_id = $1) AND ($2::text IS NULL OR status = $2)
               AND ($3 = '' OR name ILIKE $4)",
            filter.lifecycle.sql_predicate()
        );
        let mut conn = self.pool.acquire().await?;
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM merchants {predicate}"))
            .bind(filter.owner)
            .bind(filter.status)
            .bind(search)
            .bind(&pattern)
            .fetch_one(&mut *conn)
            .await?;
        let rows = sqlx::query_as(&format!(
            "SELECT {MERCHANT_COLUMNS} FROM merchants {predicate}
             ORDER BY created_at DESC, id LIMIT $5 OFFSET $6"
        ))
        .bind(filter.owner)
        .bind(filter.status)
        .bind(search)
        .bind(&pattern)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&mut *conn)
        .await?;
        Ok((rows, total))
    }

    pub async fn update(
        &self,
        caller: &Principal,
        id: Uuid,
        change: MerchantChange,
    ) -> Result<MerchantRow, MerchantError> {
        let mut violations = Vec::new();
        if let Some(name) = &change.name {
            check_name(name.trim(), &mut violations);
        }
        if let Some(d) = &change.description {
            check_description(d, &mut violations);
        }
        if let Some(w) = &change.website {
            check_website(w.trim(), &mut violations);
        }
        if !violations.is_empty() {
            return Err(MerchantError::Invalid(violations));
        }
        let mut tx = self.pool.begin().await?;
        let merchant = Self::load(&mut tx, id, true).await?;
        let merchant = Self::visible(caller, merchant, MERCHANTS_WRITE)?;
        if merchant.deleted_at.is_some() {
            return Err(MerchantError::Trashed);
        }
        let updated: Result<MerchantRow, sqlx::Error> = sqlx::query_as(&format!(
            "UPDATE merchants SET name = COALESCE($2, name),
                 description = COALESCE($3, description), website = COALESCE($4, website),
                 updated_at = now()
             WHERE id = $1 RETURNING {MERCHANT_COLUMNS}"
        ))
        .bind(id)
        .bind(change.name.as_deref().map(str::trim))
        .bind(change.description.as_deref().map(str::trim))
        .bind(change.website.as_deref().map(str::trim))
        .fetch_one(&mut *tx)
        .await;
        let updated = match updated {
            Ok(m) => m,
            Err(e)
                if platform::db::unique_violation(&e).as_deref()
                    == Some("merchants_user_name_key") =>
            {
                return Err(MerchantError::NameTaken);
            }
            Err(e) => return Err(e.into()),
        };
        emit(&mut tx, ev::UPDATED, &updated, None).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// An admin's decision: approve (`active`), reject, deactivate (`inactive`) or
    /// reactivate (`active` again).
    #[tracing::instrument(skip_all, fields(merchant_id = %id, status))]
    pub async fn set_status(
        &self,
        caller: &Principal,
        id: Uuid,
        status: MerchantStatus,
        reason: &str,
    ) -> Result<MerchantRow, MerchantError> {
        caller.require(MERCHANTS_REVIEW)?;
        let reason = reason.trim();
        if matches!(status, MerchantStatus::Rejected | MerchantStatus::Inactive)
            && reason.is_empty()
        {
            return Err(FieldViolation::new(
                "reason",
                "is required when rejecting or deactivating a merchant",
            )
            .into());
        }
        if reason.chars().count() > 500 {
            return Err(FieldViolation::new("reason", "must be at most 500 characters").into());
        }
        let mut tx = self.pool.begin().await?;
        let merchant = Self::load(&mut tx, id, true).await?;
        if merchant.deleted_at.is_some() {
            return Err(MerchantError::Trashed);
        }
        if !merchant.status.may_become(status) {
            return Err(MerchantError::InvalidTransition {
                from: merchant.status,
                to: status,
            });
        }
        let updated: MerchantRow = sqlx::query_as(&format!(
            "UPDATE merchants SET status = $2, status_reason = NULLIF($3, ''), updated_at = now()
             WHERE id = $1 RETURNING {MERCHANT_COLUMNS}"
        ))
        .bind(id)
        .bind(status)
        .bind(reason)
        .fetch_one(&mut *tx)
        .await?;
        emit(&mut tx, ev::STATUS_CHANGED, &updated, Some(merchant.status)).await?;
        tx.commit().await?;
        metrics::counter!("merchant_status_changes_total", "status" => status.as_str())
            .increment(1);
        tracing::info!(from = %merchant.status, "merchant status changed");
        Ok(updated)
    }

    /// Trashes (`trash = true`) or restores a merchant. A trashed merchant's keys stop
    /// working (authentication checks `deleted_at`).
    pub async fn set_trashed(
        &self,
        caller: &Principal,
        id: Uuid,
        trash: bool,
    ) -> Result<MerchantRow, MerchantError> {
        caller.require(MERCHANTS_DELETE)?;
        let mut tx = self.pool.begin().await?;
        let merchant = Self::load(&mut tx, id, true).await?;
        if merchant.deleted_at.is_some() == trash {
            return Ok(merchant);
        }
        let updated: MerchantRow = sqlx::query_as(&format!(
            "UPDATE merchants SET deleted_at = CASE WHEN $2 THEN now() END, updated_at = now()
             WHERE id = $1 RETURNING {MERCHANT_COLUMNS}"
        ))
        .bind(id)
        .bind(trash)
        .fetch_one(&mut *tx)
        .await?;
        let event = if trash { ev::TRASHED } else { ev::RESTORED };
        emit(&mut tx, event, &updated, None).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// The settlement account's balance (0 when none was opened).
    async fn balance(&self, merchant_id: Uuid) -> Result<i64, MerchantError> {
        let request = platform::grpc::outgoing(
            MerchantAccountRequest {
                merchant_id: merchant_id.to_string(),
            },
            Some(&self.bearer()?),
            CALL_DEADLINE,
        );
        match self.saldo.clone().get_merchant_account(request).await {
            Ok(account) => Ok(account.into_inner().balance),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(0),
            Err(s) => Err(MerchantError::Upstream("saldo service", s)),
        }
    }

    async fn delete_trashed(&self, merchant: &MerchantRow) -> Result<bool, MerchantError> {
        let balance = self.balance(merchant.id).await?;
        if balance != 0 {
            return Err(MerchantError::HasBalance(balance));
        }
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query("DELETE FROM merchants WHERE id = $1 AND deleted_at IS NOT NULL")
            .bind(merchant.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 1 {
            emit(&mut tx, ev::DELETED, merchant, None).await?;
        }
        tx.commit().await?;
        Ok(deleted == 1)
    }

    /// Deletes a trashed merchant whose settlement account is empty, with its keys and
    /// documents. Its payments stay in the transaction service's books.
    pub async fn delete(&self, caller: &Principal, id: Uuid) -> Result<(), MerchantError> {
        caller.require(MERCHANTS_DELETE)?;
        let mut conn = self.pool.acquire().await?;
        let merchant = Self::load(&mut conn, id, false).await?;
        drop(conn);
        if merchant.deleted_at.is_none() {
            return Err(MerchantError::NotTrashed("merchant"));
        }
        if self.delete_trashed(&merchant).await? {
            tracing::info!(merchant_id = %id, "merchant deleted permanently");
            Ok(())
        } else {
            Err(MerchantError::NotFound)
        }
    }

    pub async fn restore_all(&self, caller: &Principal) -> Result<u64, MerchantError> {
        caller.require(MERCHANTS_DELETE)?;
        let mut tx = self.pool.begin().await?;
        let restored: Vec<MerchantRow> = sqlx::query_as(&format!(
            "UPDATE merchants SET deleted_at = NULL, updated_at = now()
             WHERE deleted_at IS NOT NULL RETURNING {MERCHANT_COLUMNS}"
        ))
        .fetch_all(&mut *tx)
        .await?;
        for merchant in &restored {
            emit(&mut tx, ev::RESTORED, merchant, None).await?;
        }
        tx.commit().await?;
        Ok(restored.len() as u64)
    }

    /// Deletes every trashed merchant with an empty settlement account.
    pub async fn delete_all_trashed(&self, caller: &Principal) -> Result<u64, MerchantError> {
        caller.require(MERCHANTS_DELETE)?;
        let trashed: Vec<MerchantRow> = sqlx::query_as(&format!(
            "SELECT {MERCHANT_COLUMNS} FROM merchants WHERE deleted_at IS NOT NULL"
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut deleted = 0;
        for merchant in &trashed {
            match self.delete_trashed(merchant).await {
                Ok(true) => deleted += 1,
                Ok(false) => {}
                Err(MerchantError::HasBalance(balance)) => {
                    tracing::info!(merchant_id = %merchant.id, balance,
                        "trashed merchant kept: its account holds money");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    async fn owned_for_keys(
        &self,
        conn: &mut PgConnection,
        caller: &Principal,
        merchant_id: Uuid,
        permission: &str,
    ) -> Result<MerchantRow, MerchantError> {
        let merchant = Self::load(conn, merchant_id, true).await?;
        let merchant = Self::visible(caller, merchant, permission)?;
        if merchant.deleted_at.is_some() {
            return Err(MerchantError::Trashed);
        }
        Ok(merchant)
    }

    async fn insert_key(
        conn: &mut PgConnection,
        merchant: &MerchantRow,
        replaces: Option<Uuid>,
    ) -> Result<(ApiKeyRow, String), MerchantError> {
        let (key, hash) = generate_key();
        let row: ApiKeyRow = sqlx::query_as(&format!(
            "INSERT INTO api_keys (id, merchant_id, prefix, key_hash, replaces_key_id)
             VALUES ($1, $2, $3, $4, $5) RETURNING {KEY_COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(merchant.id)
        .bind(&key[..SHOWN_PREFIX_LEN])
        .bind(&hash)
        .bind(replaces)
        .fetch_one(&mut *conn)
        .await?;
        let data = ev::ApiKeyData {
            merchant_id: merchant.id,
            key_id: row.id,
            prefix: row.prefix.clone(),
            replaces_key_id: replaces,
        };
        let event = Envelope::new(SOURCE, ev::API_KEY_CREATED, merchant.id, &data)
            .map_err(|e| MerchantError::Internal(e.into()))?;
        events::outbox::enqueue(conn, topics::MERCHANT_EVENTS, &event).await?;
        Ok((row, key))
    }

    /// A new API key for the merchant (any status but trashed: a pending merchant can
    /// prepare its integration; only active merchants can charge).
    pub async fn create_key(
        &self,
        caller: &Principal,
        merchant_id: Uuid,
    ) -> Result<(ApiKeyRow, String), MerchantError> {
        let mut tx = self.pool.begin().await?;
        let merchant = self
            .owned_for_keys(&mut tx, caller, merchant_id, MERCHANTS_WRITE)
            .await?;
        let created = Self::insert_key(&mut tx, &merchant, None).await?;
        tx.commit().await?;
        tracing::info!(merchant_id = %merchant_id, key_id = %created.0.id, "api key created");
        Ok(created)
    }

    /// Replaces `key_id` with a new key; the old one keeps working for `overlap` seconds.
    pub async fn rotate_key(
        &self,
        caller: &Principal,
        merchant_id: Uuid,
        key_id: Uuid,
        overlap: Option<u32>,
    ) -> Result<(ApiKeyRow, String), MerchantError> {
        let overlap = overlap.unwrap_or(DEFAULT_OVERLAP_SECS);
        if overlap > MAX_OVERLAP_SECS {
            return Err(FieldViolation::new(
                "overlap_seconds",
                format!("must be at most {MAX_OVERLAP_SECS} (7 days)"),
            )
            .into());
        }
        let mut tx = self.pool.begin().await?;
        let merchant = self
            .owned_for_keys(&mut tx, caller, merchant_id, MERCHANTS_WRITE)
            .await?;
        let old: ApiKeyRow = sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 AND merchant_id = $2 FOR UPDATE"
        ))
        .bind(key_id)
        .bind(merchant_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(MerchantError::KeyNotFound)?;
        match old.status(Utc::now()) {
            status @ (KeyStatus::Revoked | KeyStatus::Expired) => {
                return Err(MerchantError::KeyNotActive(status.as_str()));
            }
            KeyStatus::Active | KeyStatus::Expiring => {}
        }
        sqlx::query(
            "UPDATE api_keys SET expires_at = LEAST(COALESCE(expires_at, 'infinity'),
                 now() + make_interval(secs => $2))
             WHERE id = $1",
        )
        .bind(key_id)
        .bind(f64::from(overlap))
        .execute(&mut *tx)
        .await?;
        let created = Self::insert_key(&mut tx, &merchant, Some(key_id)).await?;
        tx.commit().await?;
        tracing::info!(merchant_id = %merchant_id, old = %key_id, new = %created.0.id, overlap,
            "api key rotated");
        Ok(created)
    }

    pub async fn revoke_key(
        &self,
        caller: &Principal,
        merchant_id: Uuid,
        key_id: Uuid,
    ) -> Result<ApiKeyRow, MerchantError> {
        let mut tx = self.pool.begin().await?;
        let merchant = Self::load(&mut tx, merchant_id, true).await?;
        let merchant = Self::visible(caller, merchant, MERCHANTS_WRITE)?;
        let revoked: ApiKeyRow = sqlx::query_as(&format!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())
             WHERE id = $1 AND merchant_id = $2 RETURNING {KEY_COLUMNS}"
        ))
        .bind(key_id)
        .bind(merchant.id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(MerchantError::KeyNotFound)?;
        let data = ev::ApiKeyData {
            merchant_id,
            key_id,
            prefix: revoked.prefix.clone(),
            replaces_key_id: revoked.replaces_key_id,
        };
        let event = Envelope::new(SOURCE, ev::API_KEY_REVOKED, merchant_id, &data)
            .map_err(|e| MerchantError::Internal(e.into()))?;
        events::outbox::enqueue(&mut tx, topics::MERCHANT_EVENTS, &event).await?;
        tx.commit().await?;
        tracing::info!(merchant_id = %merchant_id, key_id = %key_id, "api key revoked");
        Ok(revoked)
    }

    pub async fn list_keys(
        &self,
        caller: &Principal,
        merchant_id: Uuid,
    ) -> Result<Vec<ApiKeyRow>, MerchantError> {
        let merchant = self.get(caller, merchant_id).await?;
        Ok(sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE merchant_id = $1
             ORDER BY created_at DESC, id"
        ))
        .bind(merchant.id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The merchant behind `key` (services only). The merchant's status is the caller's
    /// business; a trashed merchant's keys are invalid.
    pub async fn authenticate_key(
        &self,
        caller: &Principal,
        key: &str,
    ) -> Result<(MerchantRow, Uuid), MerchantError> {
        caller.require(MERCHANTS_AUTHENTICATE)?;
        if !key.starts_with(KEY_PREFIX) || key.len() != KEY_PREFIX.len() + 48 {
            return Err(MerchantError::InvalidKey);
        }
        let key_row: ApiKeyRow = sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1"
        ))
        .bind(hash_key(key))
        .fetch_optional(&self.pool)
        .await?
        .ok_or(MerchantError::InvalidKey)?;
        match key_row.status(Utc::now()) {
            KeyStatus::Revoked => return Err(MerchantError::KeyRevoked),
            KeyStatus::Expired => return Err(MerchantError::KeyExpired),
            KeyStatus::Active | KeyStatus::Expiring => {}
        }
        let (merchant_id, key_id) = (key_row.merchant_id, key_row.id);
        let mut conn = self.pool.acquire().await?;
        let merchant = Self::load(&mut conn, merchant_id, false).await?;
        if merchant.deleted_at.is_some() {
            return Err(MerchantError::InvalidKey);
        }
        Ok((merchant, key_id))
    }
}

/// Queues a merchant event.
pub async fn emit(
    conn: &mut PgConnection,
    event_type: &str,
    merchant: &MerchantRow,
    previous_status: Option<MerchantStatus>,
) -> Result<(), MerchantError> {
    let data = ev::MerchantData {
        merchant_id: merchant.id,
        user_id: merchant.user_id,
        name: merchant.name.clone(),
        currency: merchant.currency.clone(),
        status: merchant.status.as_str().to_owned(),
        previous_status: previous_status.map(|s| s.as_str().to_owned()),
        reason: merchant.status_reason.clone(),
    };
    let event = Envelope::new(SOURCE, event_type, merchant.id, &data)
        .map_err(|e| MerchantError::Internal(e.into()))?;
    events::outbox::enqueue(conn, topics::MERCHANT_EVENTS, &event).await?;
    Ok(())
}
