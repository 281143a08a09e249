//! Merchants' API keys: created and rotated (shown once, stored as a hash), revoked, listed,
//! and resolved to their merchant for the services that take payments. Every change is a
//! `merchant.api_key_*` event.

use chrono::Utc;
use events::payloads::merchant as ev;
use events::{Envelope, topics};
use platform::auth::Principal;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::MerchantError;
use crate::pricing::PlanRow;
use crate::repo;
use crate::service::{
    ApiKeyRow, KeyStatus, MERCHANTS_AUTHENTICATE, MERCHANTS_WRITE, MerchantRow, Merchants, SOURCE,
};

/// Keys look like `mk_<48 hex chars>`; the prefix shown in lists is its first 11 characters.
const KEY_PREFIX: &str = "mk_";
const SHOWN_PREFIX_LEN: usize = 11;

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
    /// The merchant, if `caller` owns it or holds `permission`, and it is not trashed.
    pub(crate) async fn owned_for_change(
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
        let row = repo::insert_key(
            &mut *conn,
            merchant.id,
            &key[..SHOWN_PREFIX_LEN],
            &hash,
            replaces,
        )
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
            .owned_for_change(&mut tx, caller, merchant_id, MERCHANTS_WRITE)
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
        let overlap = crate::service::overlap_seconds(overlap)?;
        let mut tx = self.pool.begin().await?;
        let merchant = self
            .owned_for_change(&mut tx, caller, merchant_id, MERCHANTS_WRITE)
            .await?;
        let old = repo::key_for_update(&mut *tx, key_id, merchant_id)
            .await?
            .ok_or(MerchantError::KeyNotFound)?;
        match old.status(Utc::now()) {
            status @ (KeyStatus::Revoked | KeyStatus::Expired) => {
                return Err(MerchantError::KeyNotActive(status.as_str()));
            }
            KeyStatus::Active | KeyStatus::Expiring => {}
        }
        repo::expire_key(&mut *tx, key_id, f64::from(overlap)).await?;
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
        let revoked = repo::revoke_key(&mut *tx, key_id, merchant.id)
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
        Ok(repo::keys_of(&self.pool, merchant.id).await?)
    }

    /// The merchant behind `key` (services only). The merchant's status is the caller's
    /// business; a trashed merchant's keys are invalid.
    pub async fn authenticate_key(
        &self,
        caller: &Principal,
        key: &str,
    ) -> Result<(MerchantRow, Uuid, Option<PlanRow>), MerchantError> {
        caller.require(MERCHANTS_AUTHENTICATE)?;
        if !key.starts_with(KEY_PREFIX) || key.len() != KEY_PREFIX.len() + 48 {
            return Err(MerchantError::InvalidKey);
        }
        let key_row = repo::key_by_hash(&self.pool, &hash_key(key))
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
        // on the same connection: a second one per request starves the pool under load
        let plan = crate::pricing::plan_of(&mut conn, merchant_id, &merchant.currency).await?;
        Ok((merchant, key_id, plan))
    }
}
