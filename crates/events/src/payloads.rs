//! Event types and their `data` payloads: the contract between producers and consumers.
//! Adding a field is compatible; renaming or removing one needs a new `version`.
//!
//! Longer than most files on purpose: every payload of every event type is here, in one place,
//! so producers, consumers and the AsyncAPI document read one contract.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Events of the user service, on [`crate::topics::USER_EVENTS`], keyed by user id.
pub mod user {
    use super::*;

    /// A customer registered themselves; carries the id of the email-verification token
    /// (version 2; version 1 carried the token itself and is withdrawn).
    pub const REGISTERED: &str = "user.registered";
    /// An admin created an account.
    pub const CREATED: &str = "user.created";
    /// A new verification token was issued (resend, or email changed).
    pub const VERIFICATION_REQUESTED: &str = "user.verification_requested";
    /// The email address was verified.
    pub const VERIFIED: &str = "user.verified";
    /// A password reset was requested; carries the id of the reset token (version 2).
    pub const PASSWORD_RESET_REQUESTED: &str = "user.password_reset_requested";
    /// The password changed (reset or update).
    pub const PASSWORD_CHANGED: &str = "user.password_changed";
    /// Profile fields changed.
    pub const UPDATED: &str = "user.updated";
    /// Someone tried to register with the verified address of this account; its owner is
    /// told (registration itself answers alike for new and taken addresses).
    pub const REGISTRATION_ATTEMPTED: &str = "user.registration_attempted";
    /// The email address changed; the previous address is told (it may be a takeover).
    pub const EMAIL_CHANGED: &str = "user.email_changed";
    /// Soft-deleted.
    pub const TRASHED: &str = "user.trashed";
    /// Restored from the trash.
    pub const RESTORED: &str = "user.restored";
    /// Permanently deleted.
    pub const DELETED: &str = "user.deleted";

    /// Data of most user events: who, and their contact details.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct UserData {
        /// The user.
        pub user_id: Uuid,
        /// Their email address.
        pub email: String,
        /// First name, for greetings.
        pub first_name: String,
        /// Last name.
        pub last_name: String,
    }

    /// Version of the events that announce a one-time token ([`TokenIssued`]).
    pub const TOKEN_EVENT_VERSION: u32 = 2;

    /// The schema version `event_type` is published at.
    pub fn version_of(event_type: &str) -> u32 {
        match event_type {
            REGISTERED | CREATED | VERIFICATION_REQUESTED | PASSWORD_RESET_REQUESTED => {
                TOKEN_EVENT_VERSION
            }
            _ => 1,
        }
    }

    /// Data of events that announce a one-time token to be emailed (registered, created when
    /// unverified, verification requested, password reset requested). The token itself never
    /// travels: the email service derives it from `token_id` with the key it shares with the
    /// user service (`platform::link_token`).
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct TokenIssued {
        /// Who.
        #[serde(flatten)]
        pub user: UserData,
        /// The id the token is derived from; worthless without the key.
        pub token_id: Uuid,
        /// When the token stops working.
        pub expires_at: DateTime<Utc>,
    }

    /// Data of `user.email_changed`.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct EmailChanged {
        /// Who, with the new address.
        #[serde(flatten)]
        pub user: UserData,
        /// The address before the change, which gets the notice.
        pub previous_email: String,
    }

    /// Data of `user.deleted`.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct Deleted {
        /// The deleted user.
        pub user_id: Uuid,
    }
}

/// Events of the role service, on [`crate::topics::ROLE_EVENTS`].
pub mod role {
    use super::*;

    /// A role was assigned to a user (keyed by user id).
    pub const ASSIGNED: &str = "role.assigned";
    /// A role was revoked from a user (keyed by user id).
    pub const REVOKED: &str = "role.revoked";
    /// A role was created, updated, trashed, restored or deleted (keyed by role id).
    pub const CHANGED: &str = "role.changed";

    /// Data of `role.assigned` / `role.revoked`.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct Assignment {
        /// The user.
        pub user_id: Uuid,
        /// The role.
        pub role_id: Uuid,
        /// Its name.
        pub role_name: String,
    }

    /// Data of `role.changed`.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct Changed {
        /// The role.
        pub role_id: Uuid,
        /// Its name.
        pub name: String,
        /// `created`, `updated`, `trashed`, `restored` or `deleted`.
        pub change: String,
    }
}

/// Events of the card service, on [`crate::topics::CARD_EVENTS`], keyed by card id.
pub mod card {
    use super::*;

    /// A card was issued; the saldo service opens its account.
    pub const CREATED: &str = "card.created";
    /// Type or expiry changed.
    pub const UPDATED: &str = "card.updated";
    /// Soft-deleted: no money moves on it until restored.
    pub const TRASHED: &str = "card.trashed";
    /// Restored from the trash.
    pub const RESTORED: &str = "card.restored";
    /// Permanently deleted (its account was empty); the saldo service closes the account.
    pub const DELETED: &str = "card.deleted";

    /// Data of every card event. The number is masked; the CVV never leaves the service.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct CardData {
        /// The card.
        pub card_id: Uuid,
        /// Its owner.
        pub user_id: Uuid,
        /// `**** **** **** 4242`.
        pub masked_number: String,
        /// visa, mastercard, ...
        pub brand: String,
        /// debit or credit.
        pub card_type: String,
        /// ISO 4217.
        pub currency: String,
        /// Expiry month (1..=12).
        pub expiry_month: u32,
        /// Expiry year.
        pub expiry_year: i32,
    }
}

/// Events of the saldo service (the ledger), on [`crate::topics::SALDO_EVENTS`], keyed by
/// account id so each account's changes stay in order.
pub mod saldo {
    use super::*;

    /// An account was opened (a card's, from `card.created`).
    pub const ACCOUNT_OPENED: &str = "account.opened";
    /// A posting changed an account's balance; one event per card or merchant account touched.
    pub const BALANCE_CHANGED: &str = "balance.changed";

    /// Data of `account.opened`.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct AccountOpened {
        /// The account.
        pub account_id: Uuid,
        /// The card, for card accounts.
        pub card_id: Option<Uuid>,
        /// The merchant, for merchant settlement accounts.
        #[serde(default)]
        pub merchant_id: Option<Uuid>,
        /// The owner, for card and merchant accounts.
        pub owner_user_id: Option<Uuid>,
        /// ISO 4217.
        pub currency: String,
    }

    /// Data of `balance.changed`.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct BalanceChanged {
        /// The account.
        pub account_id: Uuid,
        /// The card, for card accounts.
        pub card_id: Option<Uuid>,
        /// The merchant, for merchant settlement accounts.
        #[serde(default)]
        pub merchant_id: Option<Uuid>,
        /// The owner, for card and merchant accounts.
        pub owner_user_id: Option<Uuid>,
        /// The posting that changed it.
        pub posting_id: Uuid,
        /// topup, withdraw, transfer, payment, refund.
        pub kind: String,
        /// Signed change in minor units (negative = money left the account).
        pub delta: i64,
        /// Balance after the change.
        pub balance: i64,
        /// ISO 4217.
        pub currency: String,
        /// When the posting was made.
        pub occurred_at: DateTime<Utc>,
    }
}

/// The events of money movements: `topup.succeeded`, `topup.failed`, `withdraw.*`,
/// `transfer.*`, on their service's topic, keyed by the movement id; and `topup.pending` /
/// `withdraw.pending` when a provider-backed movement waits for the provider's word.
pub mod movement {
    use super::*;

    /// Event type for a movement kind (`topup`) and outcome (`succeeded` / `failed`).
    pub fn event_type(kind: &str, succeeded: bool) -> String {
        format!("{kind}.{}", if succeeded { "succeeded" } else { "failed" })
    }

    /// Event type of a movement waiting for its provider (`topup.pending`).
    pub fn pending_event_type(kind: &str) -> String {
        format!("{kind}.pending")
    }

    /// Data of a movement's completion event.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct Movement {
        /// The topup, withdraw or transfer id (also the ledger posting id).
        pub id: Uuid,
        /// topup, withdraw or transfer.
        pub kind: String,
        /// succeeded or failed (pending in `*.pending`).
        pub status: String,
        /// Why it failed (INSUFFICIENT_FUNDS, ...).
        pub failure_reason: Option<String>,
        /// Minor units.
        pub amount: i64,
        /// ISO 4217.
        pub currency: String,
        /// Top-up or withdraw method.
        pub method: Option<String>,
        /// The card (the sender's, for transfers).
        pub card_id: Uuid,
        /// Its owner.
        pub user_id: Uuid,
        /// The card, masked.
        pub masked_card_number: String,
        /// The receiving card of a transfer.
        pub to_card_id: Option<Uuid>,
        /// Its owner.
        pub to_user_id: Option<Uuid>,
        /// The receiving card, masked.
        pub masked_to_card_number: Option<String>,
        /// When it was requested.
        pub created_at: DateTime<Utc>,
        /// When it completed (in `*.pending`: when the provider took it).
        pub completed_at: DateTime<Utc>,
        /// Top-ups (and next withdrawals): the payment provider that took the operation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub provider: Option<String>,
        /// Declined by the provider (failure_reason PROVIDER_DECLINED): the provider's code
        /// (insufficient_funds, do_not_honor, ...).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub provider_failure_code: Option<String>,
    }
}

/// Settlement reconciliation of the provider-backed movements (run by the topup and withdraw
/// services), on [`crate::topics::RECONCILIATION_EVENTS`], keyed by the exception's id.
pub mod reconciliation {
    use super::*;

    /// A reconciliation run found a mismatch between a provider's settlement report and the
    /// books.
    pub const EXCEPTION_OPENED: &str = "reconciliation.exception_opened";
    /// An operator resolved an exception, with a note.
    pub const EXCEPTION_RESOLVED: &str = "reconciliation.exception_resolved";

    /// Data of both events: the exception as it now stands.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct Exception {
        /// The exception's id.
        pub id: Uuid,
        /// topup or withdraw: whose books were compared.
        pub movement_kind: String,
        /// The settlement day (UTC) of the report.
        pub settlement_date: chrono::NaiveDate,
        /// Our name of the provider.
        pub provider: String,
        /// missing_on_our_side, missing_at_provider, amount_mismatch, currency_mismatch,
        /// duplicate or ledger_mismatch.
        pub kind: String,
        /// Our id of the top-up / withdrawal, when known.
        pub reference: Option<String>,
        /// The provider's id of the operation.
        pub provider_reference: String,
        /// What we booked (minor units), when we booked it.
        pub expected_amount: Option<i64>,
        pub expected_currency: Option<String>,
        /// What the provider reported, when it reported it.
        pub reported_amount: Option<i64>,
        pub reported_currency: Option<String>,
        /// open or resolved.
        pub state: String,
        /// The operator's note (resolved).
        pub note: Option<String>,
        /// Who resolved it.
        pub resolved_by: Option<String>,
    }
}

/// Events of the merchant service, on [`crate::topics::MERCHANT_EVENTS`], keyed by merchant
/// id.
pub mod merchant {
    use super::*;

    /// A user applied to become a merchant (status pending).
    pub const APPLIED: &str = "merchant.applied";
    /// Name, description or website changed.
    pub const UPDATED: &str = "merchant.updated";
    /// An admin approved, rejected, deactivated or reactivated the merchant.
    pub const STATUS_CHANGED: &str = "merchant.status_changed";
    /// Soft-deleted.
    pub const TRASHED: &str = "merchant.trashed";
    /// Restored from the trash.
    pub const RESTORED: &str = "merchant.restored";
    /// Permanently deleted.
    pub const DELETED: &str = "merchant.deleted";
    /// An API key was created (or created by a rotation).
    pub const API_KEY_CREATED: &str = "merchant.api_key_created";
    /// An API key was revoked.
    pub const API_KEY_REVOKED: &str = "merchant.api_key_revoked";
    /// A webhook endpoint was disabled after a long run of failed deliveries.
    pub const WEBHOOK_ENDPOINT_DISABLED: &str = "merchant.webhook_endpoint_disabled";
    /// A document was submitted (or changed and sent back to review).
    pub const DOCUMENT_SUBMITTED: &str = "merchant_document.submitted";
    /// A document was approved or rejected.
    pub const DOCUMENT_REVIEWED: &str = "merchant_document.reviewed";
    /// A document was trashed, restored or deleted.
    pub const DOCUMENT_CHANGED: &str = "merchant_document.changed";

    /// Data of merchant lifecycle and status events.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct MerchantData {
        /// The merchant.
        pub merchant_id: Uuid,
        /// Its owner.
        pub user_id: Uuid,
        /// Its name.
        pub name: String,
        /// Settlement currency.
        pub currency: String,
        /// pending, active, rejected, inactive.
        pub status: String,
        /// The status before a status change.
        pub previous_status: Option<String>,
        /// Why it was rejected or deactivated.
        pub reason: Option<String>,
    }

    /// Data of API-key events. Never the key itself.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct ApiKeyData {
        /// The merchant.
        pub merchant_id: Uuid,
        /// The key.
        pub key_id: Uuid,
        /// Its visible prefix.
        pub prefix: String,
        /// The key a rotation replaced.
        pub replaces_key_id: Option<Uuid>,
    }

    /// Data of `merchant.webhook_endpoint_disabled`.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct WebhookEndpointDisabled {
        /// The merchant.
        pub merchant_id: Uuid,
        /// Its owner, who is told.
        pub user_id: Uuid,
        /// Its name.
        pub merchant_name: String,
        /// The endpoint.
        pub endpoint_id: Uuid,
        /// Its URL.
        pub url: String,
        /// Failed attempts in a row.
        pub failures: i32,
        /// What the last attempt came to.
        pub last_error: String,
    }

    /// Data of document events.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct DocumentData {
        /// The document.
        pub document_id: Uuid,
        /// Its merchant.
        pub merchant_id: Uuid,
        /// The merchant's owner.
        pub user_id: Uuid,
        /// The merchant's name.
        pub merchant_name: String,
        /// business_license, tax_id, ...
        pub document_type: String,
        /// pending, approved, rejected.
        pub status: String,
        /// The reviewer's note.
        pub note: Option<String>,
        /// trashed, restored or deleted, for `merchant_document.changed`.
        pub change: Option<String>,
    }
}

/// Events of the transaction service, on [`crate::topics::TRANSACTION_EVENTS`], keyed by
/// payment id (refunds too, so a payment's history stays in order).
pub mod transaction {
    use super::*;

    /// `payment.succeeded` / `payment.failed` / `refund.succeeded` / `refund.failed`.
    pub fn event_type(kind: &str, succeeded: bool) -> String {
        super::movement::event_type(kind, succeeded)
    }

    /// Data of a payment's completion event.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct Payment {
        /// The payment (also the ledger posting id).
        pub id: Uuid,
        /// succeeded or failed (pending in `*.pending`).
        pub status: String,
        /// Why it failed.
        pub failure_reason: Option<String>,
        /// The merchant paid.
        pub merchant_id: Uuid,
        /// Its name.
        pub merchant_name: String,
        /// The API key used.
        pub api_key_id: Uuid,
        /// The customer's card.
        pub card_id: Uuid,
        /// The card's owner.
        pub user_id: Uuid,
        /// The card, masked.
        pub masked_card_number: String,
        /// Minor units.
        pub amount: i64,
        /// ISO 4217.
        pub currency: String,
        /// Payment method.
        pub method: String,
        /// The merchant's description.
        pub description: String,
        /// When it was requested.
        pub created_at: DateTime<Utc>,
        /// When it completed (was authorized, for an authorization).
        pub completed_at: DateTime<Utc>,
        /// automatic (captured when created) or manual (authorized, then captured or
        /// voided); absent in events before two-phase payments = automatic.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub capture_method: Option<String>,
        /// Where the payment is: pending, authorized, succeeded, failed, voided, cancelled,
        /// expired.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub state: Option<String>,
        /// What moved to the merchant (the whole amount of an automatic payment, the captured
        /// part of an authorization; 0 while authorized or when voided).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub captured_amount: Option<i64>,
        /// The platform's fee, booked in the same posting (the merchant receives
        /// captured_amount - fee_amount).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub fee_amount: Option<i64>,
        /// An authorization's deadline: released by the expiry job unless captured before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub expires_at: Option<DateTime<Utc>>,
    }

    /// `payment.authorized`: a manual-capture payment's money is held on the card.
    pub const PAYMENT_AUTHORIZED: &str = "payment.authorized";
    /// `payment.captured`: an authorization was captured, in full or in part.
    pub const PAYMENT_CAPTURED: &str = "payment.captured";
    /// `payment.voided`: an authorization was released (state: voided by the merchant,
    /// cancelled by the customer, or expired).
    pub const PAYMENT_VOIDED: &str = "payment.voided";

    /// Data of a refund's completion event.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct Refund {
        /// The refund (also the ledger posting id).
        pub id: Uuid,
        /// The refunded payment.
        pub payment_id: Uuid,
        /// succeeded or failed (pending in `*.pending`).
        pub status: String,
        /// Why it failed.
        pub failure_reason: Option<String>,
        /// The merchant.
        pub merchant_id: Uuid,
        /// Its name.
        pub merchant_name: String,
        /// The customer's card.
        pub card_id: Uuid,
        /// The card's owner.
        pub user_id: Uuid,
        /// The card, masked.
        pub masked_card_number: String,
        /// Minor units.
        pub amount: i64,
        /// ISO 4217.
        pub currency: String,
        /// Why the merchant refunded.
        pub reason: String,
        /// The share of the payment's fee this refund returned from the platform's revenue
        /// (the merchant paid amount - fee_returned).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub fee_returned: Option<i64>,
        /// When it was requested.
        pub created_at: DateTime<Utc>,
        /// When it completed.
        pub completed_at: DateTime<Utc>,
    }
}
