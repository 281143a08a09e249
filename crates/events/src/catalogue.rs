//! The event catalogue: every event type the platform produces, with its version, topic, key
//! and a JSON Schema (draft 2020-12) of the whole message (envelope + `data`), and the
//! AsyncAPI 3.1 document built from it, which the gateway serves at `/api/v1/asyncapi.json`.
//!
//! The schemas are derived from the payload types in [`crate::payloads`] (what producers
//! serialize), so the document cannot drift from the code; the platform tests validate every
//! event their platform published against its schema here, and fail on an event type that is
//! missing from the catalogue.
//!
//! Compatibility: adding an optional field to `data` keeps the version; removing or renaming a
//! field, changing its type or meaning, or making an optional field required is a new version
//! (`version` in the envelope), published beside the old one for a deprecation period.
//!
//! Longer than most files on purpose: the whole catalogue (every event type with its topic,
//! version and schema) is one table that must be read and reviewed as one.
//!
//! Why one file of ~500 lines: the catalogue is one table (every event type, its version, topic
//! and payload type) plus the document builder; splitting the table would hide which events exist.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::payloads::{card, merchant, movement, reconciliation, role, saldo, transaction, user};
use crate::topics;

/// One event type at one version.
#[derive(Clone, Copy, Debug)]
pub struct EventSpec {
    /// `noun.verb`.
    pub event_type: &'static str,
    /// Schema version of `data`.
    pub version: u32,
    /// The (logical) topic it is published on.
    pub topic: &'static str,
    /// What the Kafka key (and the envelope's `subject`) is.
    pub key: &'static str,
    /// What happened.
    pub summary: &'static str,
    data: fn(&mut SchemaGenerator) -> Schema,
}

fn of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// `user.created`: with the verification token's id when the admin left the account unverified.
fn user_created(generator: &mut SchemaGenerator) -> Schema {
    let issued = generator.subschema_for::<user::TokenIssued>();
    let plain = generator.subschema_for::<user::UserData>();
    schemars::json_schema!({ "anyOf": [issued, plain] })
}

macro_rules! spec {
    (@version $version:literal, $type:expr, $topic:expr, $key:expr, $data:expr, $summary:expr) => {
        EventSpec {
            event_type: $type,
            version: $version,
            topic: $topic,
            key: $key,
            summary: $summary,
            data: $data,
        }
    };
    ($type:expr, $topic:expr, $key:expr, $data:expr, $summary:expr) => {
        spec!(@version 1, $type, $topic, $key, $data, $summary)
    };
}

/// Every event the platform produces.
pub fn all() -> Vec<EventSpec> {
    use topics::*;
    vec![
        spec!(
            @version 2,
            user::REGISTERED,
            USER_EVENTS,
            "user id",
            of::<user::TokenIssued>,
            "A customer registered; carries the id of the email-verification token (v2: never the token)."
        ),
        spec!(
            @version 2,
            user::CREATED,
            USER_EVENTS,
            "user id",
            user_created,
            "An admin created an account (with a verification token id when unverified)."
        ),
        spec!(
            @version 2,
            user::VERIFICATION_REQUESTED,
            USER_EVENTS,
            "user id",
            of::<user::TokenIssued>,
            "A new verification token was issued (its id, never the token)."
        ),
        spec!(
            user::VERIFIED,
            USER_EVENTS,
            "user id",
            of::<user::UserData>,
            "The email address was verified."
        ),
        spec!(
            @version 2,
            user::PASSWORD_RESET_REQUESTED,
            USER_EVENTS,
            "user id",
            of::<user::TokenIssued>,
            "A password reset was requested; carries the reset token's id (v2: never the token)."
        ),
        spec!(
            user::PASSWORD_CHANGED,
            USER_EVENTS,
            "user id",
            of::<user::UserData>,
            "The password changed."
        ),
        spec!(
            user::UPDATED,
            USER_EVENTS,
            "user id",
            of::<user::UserData>,
            "Profile fields changed."
        ),
        spec!(
            user::REGISTRATION_ATTEMPTED,
            USER_EVENTS,
            "user id",
            of::<user::UserData>,
            "Someone tried to register with this account's verified address; the owner is told."
        ),
        spec!(
            user::EMAIL_CHANGED,
            USER_EVENTS,
            "user id",
            of::<user::EmailChanged>,
            "The email address changed; the previous address gets a notice."
        ),
        spec!(
            user::TRASHED,
            USER_EVENTS,
            "user id",
            of::<user::UserData>,
            "The user was soft-deleted."
        ),
        spec!(
            user::RESTORED,
            USER_EVENTS,
            "user id",
            of::<user::UserData>,
            "The user was restored from the trash."
        ),
        spec!(
            user::DELETED,
            USER_EVENTS,
            "user id",
            of::<user::Deleted>,
            "The user was deleted permanently."
        ),
        spec!(
            role::ASSIGNED,
            ROLE_EVENTS,
            "user id",
            of::<role::Assignment>,
            "A role was assigned to a user."
        ),
        spec!(
            role::REVOKED,
            ROLE_EVENTS,
            "user id",
            of::<role::Assignment>,
            "A role was revoked from a user."
        ),
        spec!(
            role::CHANGED,
            ROLE_EVENTS,
            "role id",
            of::<role::Changed>,
            "A role was created, renamed, changed or deleted."
        ),
        spec!(
            card::CREATED,
            CARD_EVENTS,
            "card id",
            of::<card::CardData>,
            "A card was issued (number masked)."
        ),
        spec!(
            card::UPDATED,
            CARD_EVENTS,
            "card id",
            of::<card::CardData>,
            "A card was updated or renewed."
        ),
        spec!(
            card::TRASHED,
            CARD_EVENTS,
            "card id",
            of::<card::CardData>,
            "A card was soft-deleted."
        ),
        spec!(
            card::RESTORED,
            CARD_EVENTS,
            "card id",
            of::<card::CardData>,
            "A card was restored."
        ),
        spec!(
            card::DELETED,
            CARD_EVENTS,
            "card id",
            of::<card::CardData>,
            "A card was deleted permanently."
        ),
        spec!(
            saldo::ACCOUNT_OPENED,
            SALDO_EVENTS,
            "account id",
            of::<saldo::AccountOpened>,
            "A ledger account was opened for a card or a merchant."
        ),
        spec!(
            saldo::BALANCE_CHANGED,
            SALDO_EVENTS,
            "account id",
            of::<saldo::BalanceChanged>,
            "A posting changed an account's balance."
        ),
        spec!(
            merchant::APPLIED,
            MERCHANT_EVENTS,
            "merchant id",
            of::<merchant::MerchantData>,
            "A user applied as a merchant."
        ),
        spec!(
            merchant::UPDATED,
            MERCHANT_EVENTS,
            "merchant id",
            of::<merchant::MerchantData>,
            "Merchant details changed."
        ),
        spec!(
            merchant::STATUS_CHANGED,
            MERCHANT_EVENTS,
            "merchant id",
            of::<merchant::MerchantData>,
            "A merchant was approved, rejected, deactivated or reactivated."
        ),
        spec!(
            merchant::TRASHED,
            MERCHANT_EVENTS,
            "merchant id",
            of::<merchant::MerchantData>,
            "A merchant was soft-deleted."
        ),
        spec!(
            merchant::RESTORED,
            MERCHANT_EVENTS,
            "merchant id",
            of::<merchant::MerchantData>,
            "A merchant was restored."
        ),
        spec!(
            merchant::DELETED,
            MERCHANT_EVENTS,
            "merchant id",
            of::<merchant::MerchantData>,
            "A merchant was deleted permanently."
        ),
        spec!(
            merchant::API_KEY_CREATED,
            MERCHANT_EVENTS,
            "merchant id",
            of::<merchant::ApiKeyData>,
            "An API key was created (prefix only)."
        ),
        spec!(
            merchant::API_KEY_REVOKED,
            MERCHANT_EVENTS,
            "merchant id",
            of::<merchant::ApiKeyData>,
            "An API key was revoked."
        ),
        spec!(
            merchant::WEBHOOK_ENDPOINT_DISABLED,
            MERCHANT_EVENTS,
            "merchant id",
            of::<merchant::WebhookEndpointDisabled>,
            "A webhook endpoint was disabled after a long run of failed deliveries (the owner is emailed)."
        ),
        spec!(
            merchant::DOCUMENT_SUBMITTED,
            MERCHANT_EVENTS,
            "merchant id",
            of::<merchant::DocumentData>,
            "A merchant document was submitted or corrected."
        ),
        spec!(
            merchant::DOCUMENT_REVIEWED,
            MERCHANT_EVENTS,
            "merchant id",
            of::<merchant::DocumentData>,
            "A merchant document was approved or rejected."
        ),
        spec!(
            merchant::DOCUMENT_CHANGED,
            MERCHANT_EVENTS,
            "merchant id",
            of::<merchant::DocumentData>,
            "A merchant document was trashed, restored or deleted."
        ),
        spec!(
            "payment.succeeded",
            TRANSACTION_EVENTS,
            "payment id",
            of::<transaction::Payment>,
            "A payment moved money from a card to a merchant."
        ),
        spec!(
            "payment.failed",
            TRANSACTION_EVENTS,
            "payment id",
            of::<transaction::Payment>,
            "A payment was refused (failure_reason says why)."
        ),
        spec!(
            transaction::PAYMENT_AUTHORIZED,
            TRANSACTION_EVENTS,
            "payment id",
            of::<transaction::Payment>,
            "A manual-capture payment was authorized: its amount is held on the card until it is captured, voided, cancelled or expires (expires_at)."
        ),
        spec!(
            transaction::PAYMENT_CAPTURED,
            TRANSACTION_EVENTS,
            "payment id",
            of::<transaction::Payment>,
            "An authorization was captured: captured_amount moved from the card to the merchant (less fee_amount), the rest of the hold was released."
        ),
        spec!(
            transaction::PAYMENT_VOIDED,
            TRANSACTION_EVENTS,
            "payment id",
            of::<transaction::Payment>,
            "An authorization was released without a capture: state is voided (by the merchant), cancelled (by the customer) or expired."
        ),
        spec!(
            "refund.succeeded",
            TRANSACTION_EVENTS,
            "payment id",
            of::<transaction::Refund>,
            "A refund returned money to the card."
        ),
        spec!(
            "refund.failed",
            TRANSACTION_EVENTS,
            "payment id",
            of::<transaction::Refund>,
            "A refund was refused."
        ),
        spec!(
            "topup.pending",
            TOPUP_EVENTS,
            "top-up id",
            of::<movement::Movement>,
            "A top-up is with its payment provider, waiting for its word (completed_at: when the provider took it)."
        ),
        spec!(
            "topup.succeeded",
            TOPUP_EVENTS,
            "top-up id",
            of::<movement::Movement>,
            "A top-up completed."
        ),
        spec!(
            "topup.failed",
            TOPUP_EVENTS,
            "top-up id",
            of::<movement::Movement>,
            "A top-up was refused (failure_reason says why)."
        ),
        spec!(
            "withdraw.pending",
            WITHDRAW_EVENTS,
            "withdraw id",
            of::<movement::Movement>,
            "A withdrawal's amount is held off the card while its payout is with the provider (completed_at: when the provider took it)."
        ),
        spec!(
            "withdraw.succeeded",
            WITHDRAW_EVENTS,
            "withdraw id",
            of::<movement::Movement>,
            "A withdrawal completed."
        ),
        spec!(
            "withdraw.failed",
            WITHDRAW_EVENTS,
            "withdraw id",
            of::<movement::Movement>,
            "A withdrawal was refused (failure_reason says why)."
        ),
        spec!(
            reconciliation::EXCEPTION_OPENED,
            RECONCILIATION_EVENTS,
            "exception id",
            of::<reconciliation::Exception>,
            "Reconciling a provider's settlement report with the top-ups or withdrawals found a mismatch."
        ),
        spec!(
            reconciliation::EXCEPTION_RESOLVED,
            RECONCILIATION_EVENTS,
            "exception id",
            of::<reconciliation::Exception>,
            "An operator resolved a reconciliation exception, with a note."
        ),
        spec!(
            "transfer.succeeded",
            TRANSFER_EVENTS,
            "transfer id",
            of::<movement::Movement>,
            "A transfer completed."
        ),
        spec!(
            "transfer.failed",
            TRANSFER_EVENTS,
            "transfer id",
            of::<movement::Movement>,
            "A transfer was refused (failure_reason says why)."
        ),
    ]
}

/// The spec of `event_type` at `version`.
pub fn find(event_type: &str, version: u32) -> Option<EventSpec> {
    all()
        .into_iter()
        .find(|s| s.event_type == event_type && s.version == version)
}

impl EventSpec {
    /// The message's name in the AsyncAPI document (`payment.succeeded.v1`).
    pub fn name(&self) -> String {
        format!("{}.v{}", self.event_type, self.version)
    }

    /// The JSON Schema of a whole message of this type: the envelope, with `type` and
    /// `version` fixed and `data` described.
    pub fn schema(&self) -> Value {
        // Inlined, without `$defs`: each schema stands alone, in the AsyncAPI document too.
        let mut generator = SchemaSettings::draft2020_12()
            .with(|settings| settings.inline_subschemas = true)
            .into_generator();
        let data = (self.data)(&mut generator).to_value();
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": format!("urn:payments-platform:event:{}", self.name()),
            "title": self.event_type,
            "description": self.summary,
            "type": "object",
            "additionalProperties": false,
            "required": ["id", "type", "version", "occurred_at", "source", "subject", "data"],
            "properties": {
                "id": {"type": "string", "format": "uuid", "description": "Unique; consumers deduplicate on it."},
                "type": {"const": self.event_type},
                "version": {"const": self.version},
                "occurred_at": {"type": "string", "format": "date-time"},
                "source": {"type": "string", "description": "The producing service."},
                "subject": {"type": "string", "description": self.key},
                "data": data,
            },
        })
    }
}

/// The AsyncAPI 3.1 document of the platform's events.
pub fn asyncapi() -> Value {
    let specs = all();
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    let mut schemas = Map::new();
    for topic in topics::ALL {
        let names: Vec<String> = specs
            .iter()
            .filter(|s| s.topic == topic.name)
            .map(EventSpec::name)
            .collect();
        if names.is_empty() {
            continue;
        }
        let channel = topic.name.replace('.', "_");
        let refs: Map<String, Value> = names
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    json!({"$ref": format!("#/components/messages/{n}")}),
                )
            })
            .collect();
        channels.insert(
            channel.clone(),
            json!({
                "address": topic.name,
                "description": format!("{} partitions; the Kafka key is the envelope's subject.", topic.partitions),
                "messages": refs,
            }),
        );
        operations.insert(
            format!("receive_{channel}"),
            json!({
                "action": "receive",
                "channel": {"$ref": format!("#/channels/{channel}")},
                "summary": format!("Consume {}", topic.name),
            }),
        );
    }
    for spec in &specs {
        let name = spec.name();
        messages.insert(
            name.clone(),
            json!({
                "name": spec.event_type,
                "title": spec.event_type,
                "summary": spec.summary,
                "contentType": "application/json",
                "headers": {
                    "type": "object",
                    "properties": {
                        "event-type": {"type": "string", "const": spec.event_type},
                        "traceparent": {"type": "string", "description": "W3C trace context"},
                    },
                },
                "payload": {"$ref": format!("#/components/schemas/{name}")},
            }),
        );
        schemas.insert(name, spec.schema());
    }
    json!({
        "asyncapi": "3.1.0",
        "info": {
            "title": "Payment platform events",
            "version": "1.0.0",
            "description": "Every event the platform publishes to Kafka. Delivery is at least once: deduplicate on the envelope's id. Order holds per key (the subject). Adding an optional field keeps an event's version; any other change of `data` is a new version.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {"host": "127.0.0.1:9092", "protocol": "kafka", "description": "make run"},
            "kubernetes": {"host": "kafka:9092", "protocol": "kafka", "description": "inside the cluster"},
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    })
}
