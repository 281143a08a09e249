//! JSON shapes of merchants, API keys, documents, payments and refunds.

use serde::Serialize;
use utoipa::ToSchema;

use super::views::{PageView, non_empty, rfc3339};

/// A merchant.
#[derive(Debug, Serialize, ToSchema)]
pub struct MerchantView {
    pub id: String,
    /// The owner.
    pub user_id: String,
    pub name: String,
    pub description: String,
    pub website: String,
    /// Settlement currency; payments must be in it.
    pub currency: String,
    /// `pending`, `active`, `rejected` or `inactive`.
    pub status: String,
    /// Why it was rejected or deactivated.
    pub status_reason: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub deleted_at: Option<String>,
}

impl From<proto::merchant::v1::Merchant> for MerchantView {
    fn from(m: proto::merchant::v1::Merchant) -> Self {
        use proto::merchant::v1::MerchantStatus;
        Self {
            id: m.id,
            user_id: m.user_id,
            name: m.name,
            description: m.description,
            website: m.website,
            currency: m.currency,
            status: match MerchantStatus::try_from(m.status) {
                Ok(MerchantStatus::Pending) => "pending",
                Ok(MerchantStatus::Active) => "active",
                Ok(MerchantStatus::Rejected) => "rejected",
                Ok(MerchantStatus::Inactive) => "inactive",
                _ => "unknown",
            }
            .to_owned(),
            status_reason: non_empty(m.status_reason),
            created_at: rfc3339(m.created_at),
            updated_at: rfc3339(m.updated_at),
            deleted_at: rfc3339(m.deleted_at),
        }
    }
}

/// A page of merchants.
#[derive(Debug, Serialize, ToSchema)]
pub struct MerchantPage {
    pub items: Vec<MerchantView>,
    pub page: PageView,
}

/// An API key (never the secret, except once in [`CreatedApiKeyView`]).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub merchant_id: String,
    /// The first characters of the key.
    pub prefix: String,
    /// `active`, `expiring` (rotated, still valid), `expired` or `revoked`.
    pub status: String,
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    /// The key this one replaced, if it came from a rotation.
    pub replaces_key_id: Option<String>,
}

impl From<proto::merchant::v1::ApiKey> for ApiKeyView {
    fn from(k: proto::merchant::v1::ApiKey) -> Self {
        use proto::merchant::v1::ApiKeyStatus;
        Self {
            id: k.id,
            merchant_id: k.merchant_id,
            prefix: k.prefix,
            status: match ApiKeyStatus::try_from(k.status) {
                Ok(ApiKeyStatus::Active) => "active",
                Ok(ApiKeyStatus::Expiring) => "expiring",
                Ok(ApiKeyStatus::Expired) => "expired",
                Ok(ApiKeyStatus::Revoked) => "revoked",
                _ => "unknown",
            }
            .to_owned(),
            created_at: rfc3339(k.created_at),
            expires_at: rfc3339(k.expires_at),
            revoked_at: rfc3339(k.revoked_at),
            replaces_key_id: non_empty(k.replaces_key_id),
        }
    }
}

/// A new API key with its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKeyView {
    pub key: ApiKeyView,
    /// Send it as `X-Api-Key`. Store it now: only its hash is kept.
    pub api_key: String,
}

impl From<proto::merchant::v1::CreatedApiKey> for CreatedApiKeyView {
    fn from(c: proto::merchant::v1::CreatedApiKey) -> Self {
        Self {
            key: c.key.unwrap_or_default().into(),
            api_key: c.api_key,
        }
    }
}

/// The keys of a merchant.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKeyView>,
}

/// A merchant document.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentView {
    pub id: String,
    pub merchant_id: String,
    /// business_license, tax_id, identity, bank_statement or other.
    pub document_type: String,
    pub document_url: String,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    pub note: Option<String>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub deleted_at: Option<String>,
}

impl From<proto::merchant::v1::MerchantDocument> for DocumentView {
    fn from(d: proto::merchant::v1::MerchantDocument) -> Self {
        use proto::merchant::v1::DocumentStatus;
        Self {
            id: d.id,
            merchant_id: d.merchant_id,
            document_type: d.document_type,
            document_url: d.document_url,
            status: match DocumentStatus::try_from(d.status) {
                Ok(DocumentStatus::Pending) => "pending",
                Ok(DocumentStatus::Approved) => "approved",
                Ok(DocumentStatus::Rejected) => "rejected",
                _ => "unknown",
            }
            .to_owned(),
            note: non_empty(d.note),
            reviewed_by: non_empty(d.reviewed_by),
            reviewed_at: rfc3339(d.reviewed_at),
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
            deleted_at: rfc3339(d.deleted_at),
        }
    }
}

/// A page of documents.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentPage {
    pub items: Vec<DocumentView>,
    pub page: PageView,
}

fn status_name(status: i32) -> String {
    use proto::common::v1::MovementStatus;
    match MovementStatus::try_from(status) {
        Ok(MovementStatus::Pending) => "pending",
        Ok(MovementStatus::Succeeded) => "succeeded",
        Ok(MovementStatus::Failed) => "failed",
        _ => "unknown",
    }
    .to_owned()
}

/// A merchant payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentView {
    pub id: String,
    pub merchant_id: String,
    pub merchant_name: String,
    pub api_key_id: String,
    pub card_id: String,
    pub masked_card_number: String,
    /// The card's owner.
    pub user_id: String,
    pub amount: i64,
    pub currency: String,
    pub method: String,
    pub description: String,
    /// `pending`, `succeeded` or `failed`; an authorization (`capture_method` manual) is
    /// `authorized` until it is captured (`succeeded`), `voided` (by the merchant),
    /// `cancelled` (by the customer) or `expired` (`capturing` / `releasing` while the ledger
    /// is being asked).
    pub status: String,
    pub failure_reason: Option<String>,
    /// Sum of succeeded refunds.
    pub refunded_amount: i64,
    /// `automatic` or `manual`.
    pub capture_method: String,
    /// What moved to the merchant before the fee: the amount of a succeeded automatic
    /// payment, the captured part of an authorization.
    pub captured_amount: i64,
    /// The platform's fee, booked in the payment's own posting.
    pub fee_amount: i64,
    /// captured_amount - fee_amount: what the merchant received.
    pub net_amount: i64,
    /// An authorization's deadline: released by the expiry job unless captured before.
    pub expires_at: Option<String>,
    /// When an authorization was captured or released.
    pub settled_at: Option<String>,
    pub created_at: Option<String>,
    pub completed_at: Option<String>,
}

impl From<proto::transaction::v1::Payment> for PaymentView {
    fn from(p: proto::transaction::v1::Payment) -> Self {
        Self {
            id: p.id,
            merchant_id: p.merchant_id,
            merchant_name: p.merchant_name,
            api_key_id: p.api_key_id,
            card_id: p.card_id,
            masked_card_number: p.masked_card_number,
            user_id: p.user_id,
            amount: p.amount,
            currency: p.currency,
            method: p.method,
            description: p.description,
            status: if p.state.is_empty() {
                status_name(p.status)
            } else {
                p.state
            },
            failure_reason: non_empty(p.failure_reason),
            refunded_amount: p.refunded_amount,
            capture_method: p.capture_method,
            captured_amount: p.captured_amount,
            fee_amount: p.fee_amount,
            net_amount: p.net_amount,
            expires_at: rfc3339(p.expires_at),
            settled_at: rfc3339(p.settled_at),
            created_at: rfc3339(p.created_at),
            completed_at: rfc3339(p.completed_at),
        }
    }
}

/// A page of payments.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentPage {
    pub items: Vec<PaymentView>,
    pub page: PageView,
}

/// A refund of (part of) a payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundView {
    pub id: String,
    pub payment_id: String,
    pub merchant_id: String,
    pub card_id: String,
    pub user_id: String,
    pub amount: i64,
    pub currency: String,
    pub reason: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub failure_reason: Option<String>,
    /// The share of the payment's fee the refund returned (by the merchant's plan); the
    /// merchant paid amount - fee_returned.
    pub fee_returned: i64,
    pub created_at: Option<String>,
    pub completed_at: Option<String>,
}

impl From<proto::transaction::v1::Refund> for RefundView {
    fn from(r: proto::transaction::v1::Refund) -> Self {
        Self {
            id: r.id,
            payment_id: r.payment_id,
            merchant_id: r.merchant_id,
            card_id: r.card_id,
            user_id: r.user_id,
            amount: r.amount,
            currency: r.currency,
            reason: r.reason,
            status: status_name(r.status),
            failure_reason: non_empty(r.failure_reason),
            fee_returned: r.fee_returned,
            created_at: rfc3339(r.created_at),
            completed_at: rfc3339(r.completed_at),
        }
    }
}

/// A page of refunds.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundPage {
    pub items: Vec<RefundView>,
    pub page: PageView,
}
