//! From platform events to webhook events: the consumer of the transaction, merchant and
//! ledger topics that makes one event object per merchant-relevant platform event (its id is
//! the platform event's id) and one delivery per enabled endpoint subscribed to its type that
//! existed when the event happened (however late this consumer sees it). Both are written in the consumer's transaction, with the processed-event record, and
//! under unique keys: a message Kafka delivers twice makes nothing twice.
//!
//! The data merchants receive is theirs to see: a payment's amount, status, method and masked
//! card — never the customer's user or card id.

use chrono::{DateTime, Utc};
use events::payloads::{merchant as merchant_ev, saldo as saldo_ev, transaction as tx_ev};
use events::{Envelope, EventHandler, HandlerError};
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::API_VERSION;

/// Events are kept, listed and sent for 30 days; older imports (backdated history) make none.
pub const RETENTION_DAYS: i64 = 30;

/// A webhook event about to be stored.
#[derive(Debug, PartialEq)]
pub struct Made {
    pub merchant_id: Uuid,
    pub event_type: String,
    /// Deliveries of one endpoint with the same key go out in order.
    pub ordering_key: String,
    pub data: Value,
    pub created_at: DateTime<Utc>,
}

fn data<T: serde::de::DeserializeOwned>(event: &Envelope) -> Result<T, HandlerError> {
    event
        .data_as()
        .map_err(|e| HandlerError::Permanent(e.into()))
}

/// The webhook event a platform event makes, if it concerns a merchant.
pub fn webhook_event(event: &Envelope) -> Result<Option<Made>, HandlerError> {
    let t = event.event_type.as_str();
    let made = match t {
        "payment.succeeded" | "payment.failed" | "payment.authorized" | "payment.captured"
        | "payment.voided" => {
            let p: tx_ev::Payment = data(event)?;
            // A payment's `status` is where it is now (authorized, succeeded, voided, …);
            // events from before two-phase payments have no state: their status is it.
            let status = p.state.clone().unwrap_or_else(|| p.status.clone());
            let captured =
                p.captured_amount
                    .unwrap_or(if status == "succeeded" { p.amount } else { 0 });
            let fee = p.fee_amount.unwrap_or(0);
            Made {
                merchant_id: p.merchant_id,
                event_type: t.to_owned(),
                ordering_key: p.id.to_string(),
                data: json!({
                    "object": "payment",
                    "id": p.id,
                    "status": status,
                    "capture_method": p.capture_method.as_deref().unwrap_or("automatic"),
                    "failure_reason": p.failure_reason,
                    "amount": p.amount,
                    "captured_amount": captured,
                    "fee_amount": fee,
                    "net_amount": captured - fee,
                    "currency": p.currency,
                    "method": p.method,
                    "description": p.description,
                    "masked_card_number": p.masked_card_number,
                    "api_key_id": p.api_key_id,
                    "created_at": p.created_at,
                    "completed_at": p.completed_at,
                    "expires_at": p.expires_at,
                }),
                // a settlement's time is the event's; a completion's the payment's
                created_at: if matches!(t, "payment.captured" | "payment.voided") {
                    event.occurred_at
                } else {
                    p.completed_at
                },
            }
        }
        "refund.succeeded" | "refund.failed" => {
            let r: tx_ev::Refund = data(event)?;
            Made {
                merchant_id: r.merchant_id,
                event_type: t.to_owned(),
                // a payment's refunds go out after the payment's own events
                ordering_key: r.payment_id.to_string(),
                data: json!({
                    "object": "refund",
                    "id": r.id,
                    "payment_id": r.payment_id,
                    "status": r.status,
                    "failure_reason": r.failure_reason,
                    "amount": r.amount,
                    "fee_returned": r.fee_returned.unwrap_or(0),
                    "currency": r.currency,
                    "reason": r.reason,
                    "masked_card_number": r.masked_card_number,
                    "created_at": r.created_at,
                    "completed_at": r.completed_at,
                }),
                created_at: r.completed_at,
            }
        }
        saldo_ev::BALANCE_CHANGED => {
            let b: saldo_ev::BalanceChanged = data(event)?;
            let Some(merchant_id) = b.merchant_id else {
                return Ok(None);
            };
            Made {
                merchant_id,
                event_type: "settlement.balance_changed".to_owned(),
                ordering_key: format!("settlement:{}", b.currency),
                data: json!({
                    "object": "settlement_account",
                    "account_id": b.account_id,
                    "posting_id": b.posting_id,
                    "kind": b.kind,
                    "delta": b.delta,
                    "balance": b.balance,
                    "currency": b.currency,
                    "occurred_at": b.occurred_at,
                }),
                created_at: b.occurred_at,
            }
        }
        merchant_ev::STATUS_CHANGED => {
            let m: merchant_ev::MerchantData = data(event)?;
            Made {
                merchant_id: m.merchant_id,
                event_type: t.to_owned(),
                ordering_key: "merchant".to_owned(),
                data: json!({
                    "object": "merchant",
                    "id": m.merchant_id,
                    "name": m.name,
                    "status": m.status,
                    "previous_status": m.previous_status,
                    "reason": m.reason,
                }),
                created_at: event.occurred_at,
            }
        }
        merchant_ev::API_KEY_CREATED | merchant_ev::API_KEY_REVOKED => {
            let k: merchant_ev::ApiKeyData = data(event)?;
            Made {
                merchant_id: k.merchant_id,
                event_type: t.to_owned(),
                ordering_key: "api_keys".to_owned(),
                data: json!({
                    "object": "api_key",
                    "id": k.key_id,
                    "prefix": k.prefix,
                    "replaces_key_id": k.replaces_key_id,
                }),
                created_at: event.occurred_at,
            }
        }
        _ => return Ok(None),
    };
    if made.created_at < Utc::now() - chrono::Duration::days(RETENTION_DAYS) {
        return Ok(None);
    }
    Ok(Some(made))
}

/// The intake consumer's handler.
#[derive(Clone, Copy, Debug, Default)]
pub struct Intake;

impl EventHandler for Intake {
    /// Every ledger event comes by; only what [`webhook_event`] makes an event of concerns
    /// merchants (one that cannot be read is taken, so that it is dead-lettered).
    fn accepts(&self, event: &Envelope) -> bool {
        webhook_event(event).map_or(true, |made| made.is_some())
    }

    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        let Some(made) = webhook_event(event)? else {
            return Ok(());
        };
        let deliveries: Option<i64> = sqlx::query_scalar(
            "WITH e AS (
                 INSERT INTO webhook_events (id, merchant_id, type, api_version, ordering_key,
                     data, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (id) DO NOTHING RETURNING id),
             d AS (
                 INSERT INTO webhook_deliveries (id, event_id, endpoint_id, ordering_key)
                 SELECT gen_random_uuid(), e.id, w.id, $5
                 FROM e, webhook_endpoints w
                 WHERE w.merchant_id = $2 AND w.enabled
                   AND ($3 = ANY (w.event_types) OR '*' = ANY (w.event_types))
                   -- what happened before the endpoint existed is not sent to it, however
                   -- late this consumer sees it
                   AND w.created_at <= $7
                 ORDER BY w.id
                 ON CONFLICT DO NOTHING RETURNING id)
             SELECT (SELECT count(*) FROM d) FROM e",
        )
        .bind(event.id)
        .bind(made.merchant_id)
        .bind(&made.event_type)
        .bind(API_VERSION)
        .bind(&made.ordering_key)
        .bind(&made.data)
        .bind(made.created_at)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(count) = deliveries {
            metrics::counter!("webhook_events_total", "type" => made.event_type.clone())
                .increment(1);
            tracing::debug!(event_id = %event.id, merchant_id = %made.merchant_id,
                r#type = %made.event_type, deliveries = count, "webhook event");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_balance_change_concerns_no_merchant() {
        let data = saldo_ev::BalanceChanged {
            account_id: Uuid::now_v7(),
            card_id: Some(Uuid::now_v7()),
            merchant_id: None,
            owner_user_id: Some(Uuid::now_v7()),
            posting_id: Uuid::now_v7(),
            kind: "transfer".into(),
            delta: 5,
            balance: 5,
            currency: "IDR".into(),
            occurred_at: Utc::now(),
        };
        let event = Envelope::new(
            "saldo-service",
            saldo_ev::BALANCE_CHANGED,
            data.account_id,
            &data,
        )
        .unwrap();
        assert_eq!(webhook_event(&event).unwrap(), None);
    }

    #[test]
    fn history_older_than_the_retention_makes_no_event() {
        let data = merchant_ev::ApiKeyData {
            merchant_id: Uuid::now_v7(),
            key_id: Uuid::now_v7(),
            prefix: "mk_0123456".into(),
            replaces_key_id: None,
        };
        let mut event = Envelope::new(
            "merchant-service",
            merchant_ev::API_KEY_CREATED,
            data.merchant_id,
            &data,
        )
        .unwrap();
        assert!(webhook_event(&event).unwrap().is_some());
        event.occurred_at = Utc::now() - chrono::Duration::days(31);
        assert_eq!(webhook_event(&event).unwrap(), None);
    }
}
