//! Merchant documents: the owner submits (and, while pending, corrects) them; an admin
//! approves or rejects each with a note. Every change is a `merchant_document.*` event; the
//! review reaches the owner by email.

use chrono::{DateTime, Utc};
use events::payloads::merchant as ev;
use events::{Envelope, topics};
use platform::FieldViolation;
use platform::auth::Principal;
use platform::pagination::{LifecycleFilter, Page};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::MerchantError;
use crate::repo;
use crate::service::{
    MERCHANTS_DELETE, MERCHANTS_READ, MERCHANTS_REVIEW, MERCHANTS_WRITE, MerchantRow, Merchants,
    SOURCE,
};

/// Document types a merchant can submit.
pub const DOCUMENT_TYPES: &[&str] = &[
    "business_license",
    "tax_id",
    "identity",
    "bank_statement",
    "other",
];

platform::text_enum! {
    /// Where a merchant document is in its review. Reviews are final.
    pub enum DocumentStatus {
        Pending = "pending",
        Approved = "approved",
        Rejected = "rejected",
    }
}

/// A document row, with its merchant's owner and name for permission checks and events.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DocumentRow {
    pub id: Uuid,
    pub merchant_id: Uuid,
    pub document_type: String,
    pub document_url: String,
    pub status: DocumentStatus,
    pub note: Option<String>,
    pub reviewed_by: Option<Uuid>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub owner_id: Uuid,
    pub merchant_name: String,
}

fn check_type(value: &str, violations: &mut Vec<FieldViolation>) {
    if !DOCUMENT_TYPES.contains(&value) {
        violations.push(FieldViolation::new(
            "document_type",
            format!("must be one of {}", DOCUMENT_TYPES.join(", ")),
        ));
    }
}

fn check_url(value: &str, violations: &mut Vec<FieldViolation>) {
    if !(value.starts_with("https://")
        && value.len() > "https://".len()
        && value.len() <= 2048
        && !value.contains(char::is_whitespace))
    {
        violations.push(FieldViolation::new(
            "document_url",
            "must be an https URL of at most 2048 characters",
        ));
    }
}

/// Documents of merchants.
#[derive(Clone)]
pub struct Documents {
    pool: PgPool,
    merchants: Merchants,
}

impl Documents {
    pub fn new(merchants: Merchants) -> Self {
        Self {
            pool: merchants.pool().clone(),
            merchants,
        }
    }

    pub fn authenticator(&self) -> &platform::auth::Authenticator {
        self.merchants.authenticator()
    }

    async fn load(conn: &mut PgConnection, id: Uuid) -> Result<DocumentRow, MerchantError> {
        repo::document(conn, id)
            .await?
            .ok_or(MerchantError::DocumentNotFound)
    }

    fn visible(
        caller: &Principal,
        doc: DocumentRow,
        permission: &str,
    ) -> Result<DocumentRow, MerchantError> {
        if caller.user_id() == Some(doc.owner_id) || caller.has(permission) {
            Ok(doc)
        } else if caller.has(MERCHANTS_READ) {
            Err(platform::auth::AuthError::MissingPermission(permission.to_owned()).into())
        } else {
            Err(MerchantError::DocumentNotFound)
        }
    }

    pub async fn submit(
        &self,
        caller: &Principal,
        merchant_id: Uuid,
        document_type: &str,
        document_url: &str,
    ) -> Result<DocumentRow, MerchantError> {
        let mut violations = Vec::new();
        check_type(document_type, &mut violations);
        check_url(document_url, &mut violations);
        if !violations.is_empty() {
            return Err(MerchantError::Invalid(violations));
        }
        let mut tx = self.pool.begin().await?;
        let merchant: MerchantRow = Merchants::load(&mut tx, merchant_id, false).await?;
        let merchant = Merchants::visible(caller, merchant, MERCHANTS_WRITE)?;
        if merchant.deleted_at.is_some() {
            return Err(MerchantError::Trashed);
        }
        let id = Uuid::now_v7();
        repo::insert_document(&mut *tx, id, merchant_id, document_type, document_url).await?;
        let doc = Self::load(&mut tx, id).await?;
        emit(&mut tx, ev::DOCUMENT_SUBMITTED, &doc, None).await?;
        tx.commit().await?;
        tracing::info!(document_id = %id, merchant_id = %merchant_id, "document submitted");
        Ok(doc)
    }

    /// Corrects a pending document.
    pub async fn update(
        &self,
        caller: &Principal,
        id: Uuid,
        document_type: Option<String>,
        document_url: Option<String>,
    ) -> Result<DocumentRow, MerchantError> {
        let mut violations = Vec::new();
        if let Some(t) = &document_type {
            check_type(t, &mut violations);
        }
        if let Some(u) = &document_url {
            check_url(u, &mut violations);
        }
        if !violations.is_empty() {
            return Err(MerchantError::Invalid(violations));
        }
        let mut tx = self.pool.begin().await?;
        let doc = Self::load(&mut tx, id).await?;
        let doc = Self::visible(caller, doc, MERCHANTS_WRITE)?;
        if doc.deleted_at.is_some() {
            return Err(MerchantError::DocumentNotFound);
        }
        if !repo::update_pending_document(&mut *tx, id, document_type, document_url).await? {
            return Err(MerchantError::AlreadyReviewed(doc.status));
        }
        let doc = Self::load(&mut tx, id).await?;
        emit(&mut tx, ev::DOCUMENT_SUBMITTED, &doc, None).await?;
        tx.commit().await?;
        Ok(doc)
    }

    pub async fn get(&self, caller: &Principal, id: Uuid) -> Result<DocumentRow, MerchantError> {
        let mut conn = self.pool.acquire().await?;
        let doc = Self::load(&mut conn, id).await?;
        Self::visible(caller, doc, MERCHANTS_READ)
    }

    pub async fn list(
        &self,
        caller: &Principal,
        merchant_id: Option<Uuid>,
        status: Option<DocumentStatus>,
        lifecycle: LifecycleFilter,
        page: Page,
    ) -> Result<(Vec<DocumentRow>, i64), MerchantError> {
        // Without `merchants.read` a caller sees the documents of their own merchants.
        let owner = if caller.has(MERCHANTS_READ) {
            None
        } else {
            Some(caller.user_id().ok_or_else(|| {
                platform::auth::AuthError::MissingPermission(MERCHANTS_READ.to_owned())
            })?)
        };
        if let Some(merchant_id) = merchant_id {
            self.merchants.get(caller, merchant_id).await?;
        }
        let mut conn = self.pool.acquire().await?;
        let (rows, total) =
            repo::list_documents(&mut conn, merchant_id, status, owner, lifecycle, page).await?;
        Ok((rows, total))
    }

    /// An admin approves or rejects a pending document (a rejection needs a note).
    pub async fn review(
        &self,
        caller: &Principal,
        id: Uuid,
        status: DocumentStatus,
        note: &str,
    ) -> Result<DocumentRow, MerchantError> {
        caller.require(MERCHANTS_REVIEW)?;
        let note = note.trim();
        if status == DocumentStatus::Pending {
            return Err(FieldViolation::new("status", "must be APPROVED or REJECTED").into());
        }
        if status == DocumentStatus::Rejected && note.is_empty() {
            return Err(
                FieldViolation::new("note", "is required when rejecting a document").into(),
            );
        }
        if note.chars().count() > 1000 {
            return Err(FieldViolation::new("note", "must be at most 1000 characters").into());
        }
        let mut tx = self.pool.begin().await?;
        let doc = Self::load(&mut tx, id).await?;
        if doc.deleted_at.is_some() {
            return Err(MerchantError::DocumentNotFound);
        }
        if !repo::review_pending_document(&mut *tx, id, status, note, caller.user_id()).await? {
            return Err(MerchantError::AlreadyReviewed(doc.status));
        }
        let doc = Self::load(&mut tx, id).await?;
        emit(&mut tx, ev::DOCUMENT_REVIEWED, &doc, None).await?;
        tx.commit().await?;
        tracing::info!(document_id = %id, %status, "document reviewed");
        Ok(doc)
    }

    pub async fn set_trashed(
        &self,
        caller: &Principal,
        id: Uuid,
        trash: bool,
    ) -> Result<DocumentRow, MerchantError> {
        let mut tx = self.pool.begin().await?;
        let doc = Self::load(&mut tx, id).await?;
        let doc = Self::visible(caller, doc, MERCHANTS_DELETE)?;
        Self::require_not_reviewed_unless_admin(caller, &doc)?;
        if doc.deleted_at.is_some() == trash {
            return Ok(doc);
        }
        repo::set_document_trashed(&mut *tx, id, trash).await?;
        let doc = Self::load(&mut tx, id).await?;
        let change = if trash { "trashed" } else { "restored" };
        emit(&mut tx, ev::DOCUMENT_CHANGED, &doc, Some(change)).await?;
        tx.commit().await?;
        Ok(doc)
    }

    /// A reviewed document is part of an admin's decision: its owner can no longer trash,
    /// restore or delete it (only `merchants.delete` holders can).
    fn require_not_reviewed_unless_admin(
        caller: &Principal,
        doc: &DocumentRow,
    ) -> Result<(), MerchantError> {
        if doc.status != DocumentStatus::Pending && !caller.has(MERCHANTS_DELETE) {
            return Err(MerchantError::AlreadyReviewed(doc.status));
        }
        Ok(())
    }

    pub async fn delete(&self, caller: &Principal, id: Uuid) -> Result<(), MerchantError> {
        let mut tx = self.pool.begin().await?;
        let doc = Self::load(&mut tx, id).await?;
        let doc = Self::visible(caller, doc, MERCHANTS_DELETE)?;
        Self::require_not_reviewed_unless_admin(caller, &doc)?;
        if doc.deleted_at.is_none() {
            return Err(MerchantError::NotTrashed("document"));
        }
        repo::delete_document(&mut *tx, id).await?;
        emit(&mut tx, ev::DOCUMENT_CHANGED, &doc, Some("deleted")).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn restore_all(&self, caller: &Principal) -> Result<u64, MerchantError> {
        caller.require(MERCHANTS_DELETE)?;
        let mut tx = self.pool.begin().await?;
        let ids = repo::restore_all_documents(&mut *tx).await?;
        for id in &ids {
            let doc = Self::load(&mut tx, *id).await?;
            emit(&mut tx, ev::DOCUMENT_CHANGED, &doc, Some("restored")).await?;
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    pub async fn delete_all_trashed(&self, caller: &Principal) -> Result<u64, MerchantError> {
        caller.require(MERCHANTS_DELETE)?;
        let mut tx = self.pool.begin().await?;
        let docs = repo::trashed_documents(&mut *tx).await?;
        repo::delete_trashed_documents(&mut *tx).await?;
        for doc in &docs {
            emit(&mut tx, ev::DOCUMENT_CHANGED, doc, Some("deleted")).await?;
        }
        tx.commit().await?;
        Ok(docs.len() as u64)
    }
}

async fn emit(
    conn: &mut PgConnection,
    event_type: &str,
    doc: &DocumentRow,
    change: Option<&str>,
) -> Result<(), MerchantError> {
    let data = ev::DocumentData {
        document_id: doc.id,
        merchant_id: doc.merchant_id,
        user_id: doc.owner_id,
        merchant_name: doc.merchant_name.clone(),
        document_type: doc.document_type.clone(),
        status: doc.status.as_str().to_owned(),
        note: doc.note.clone(),
        change: change.map(str::to_owned),
    };
    let event = Envelope::new(SOURCE, event_type, doc.merchant_id, &data)
        .map_err(|e| MerchantError::Internal(e.into()))?;
    events::outbox::enqueue(conn, topics::MERCHANT_EVENTS, &event).await?;
    Ok(())
}
