//! Use cases of merchants (their SQL is [`crate::repo`]'s, their API keys
//! [`crate::api_keys`]'). Every change commits together with its outbox event; the saldo
//! service opens the settlement account when a merchant becomes active, the email service
//! tells the owner about status changes.
//!
//! Over 400 lines on purpose: a merchant's lifecycle (apply, update, review, trash, restore,
//! delete) and the ownership rules each step applies read best together.

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
use sqlx::{PgConnection, PgPool};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::error::MerchantError;
use crate::repo;

pub const MERCHANTS_READ: &str = "merchants.read";
pub const MERCHANTS_WRITE: &str = "merchants.write";
pub const MERCHANTS_REVIEW: &str = "merchants.review";
pub const MERCHANTS_DELETE: &str = "merchants.delete";
/// Services that resolve API keys (the transaction service).
pub const MERCHANTS_AUTHENTICATE: &str = "merchants.authenticate";

pub(crate) const SOURCE: &str = "merchant-service";

const DEFAULT_OVERLAP_SECS: u32 = 86_400;
const MAX_OVERLAP_SECS: u32 = 604_800;

/// A rotation's overlap (an API key's, a webhook secret's): how long the old one keeps
/// working; default a day, at most 7 days, 0 = it ends now.
pub(crate) fn overlap_seconds(requested: Option<u32>) -> Result<u32, FieldViolation> {
    let overlap = requested.unwrap_or(DEFAULT_OVERLAP_SECS);
    if overlap > MAX_OVERLAP_SECS {
        return Err(FieldViolation::new(
            "overlap_seconds",
            format!("must be at most {MAX_OVERLAP_SECS} (7 days)"),
        ));
    }
    Ok(overlap)
}
const CALL_DEADLINE: Duration = Duration::from_secs(5);

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
    pub(crate) pool: PgPool,
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
        let inserted = repo::insert_merchant(
            &mut *tx,
            owner,
            input.name.trim(),
            input.description.trim(),
            input.website.trim(),
            &input.currency,
        )
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
        repo::merchant(conn, id, lock)
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
        let mut conn = self.pool.acquire().await?;
        let (rows, total) = repo::list_merchants(
            &mut conn,
            filter.owner,
            filter.status,
            filter.search.trim(),
            filter.lifecycle,
            page,
        )
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
        let updated = repo::update_merchant(
            &mut *tx,
            id,
            change.name.as_deref().map(str::trim),
            change.description.as_deref().map(str::trim),
            change.website.as_deref().map(str::trim),
        )
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
        let updated = repo::set_status(&mut *tx, id, status, reason).await?;
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
        let updated = repo::set_trashed(&mut *tx, id, trash).await?;
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
        let deleted = repo::delete_trashed(&mut *tx, merchant.id).await?;
        if deleted {
            emit(&mut tx, ev::DELETED, merchant, None).await?;
        }
        tx.commit().await?;
        Ok(deleted)
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
        let restored = repo::restore_all(&mut *tx).await?;
        for merchant in &restored {
            emit(&mut tx, ev::RESTORED, merchant, None).await?;
        }
        tx.commit().await?;
        Ok(restored.len() as u64)
    }

    /// Deletes every trashed merchant with an empty settlement account.
    pub async fn delete_all_trashed(&self, caller: &Principal) -> Result<u64, MerchantError> {
        caller.require(MERCHANTS_DELETE)?;
        let trashed = repo::trashed(&self.pool).await?;
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
