//! Operator adjustments: the only way to change a card's balance without a provider's word
//! or a customer's movement. An operator holding `saldo.adjust` (admins; nothing else implies
//! it) credits or debits a card with a reason; each adjustment is
//!
//! 1. recorded first, in the audit trail (`adjustments`: who, why, when, how much), under the
//!    operator's idempotency key — a retry finds the same row, the same key with other fields
//!    is refused;
//! 2. posted to the ledger under the adjustment's id (kind `adjustment`, between the card and
//!    the `adjustments` system account), which the ledger applies once;
//! 3. marked with the ledger's answer (posted, or rejected with its reason).
//!
//! A crash between 1 and 2 leaves the row `requested`; the operator's retry with the same key
//! posts it. The trail is never edited except for that answer, and never deleted.

use chrono::{DateTime, Utc};
use platform::FieldViolation;
use platform::auth::{Principal, Subject};
use uuid::Uuid;

use crate::error::SaldoError;
use crate::ledger::{AccountRef, PostingRequest};
use crate::service::{SALDO_READ, Saldo};

/// The permission of adjustments.
pub const SALDO_ADJUST: &str = "saldo.adjust";

/// The system account adjustments are booked against.
pub const ADJUSTMENTS_ACCOUNT: &str = "adjustments";

platform::text_enum! {
    /// Which way an adjustment moves money.
    pub enum Direction {
        /// Onto the card.
        Credit = "credit",
        /// Off the card.
        Debit = "debit",
    }
}

/// An operator's request.
#[derive(Clone, Debug)]
pub struct AdjustmentRequest {
    pub card_id: Uuid,
    pub direction: Direction,
    pub amount: i64,
    pub reason: String,
    pub idempotency_key: String,
}

impl AdjustmentRequest {
    /// Validates the raw fields, naming each bad one.
    pub fn parse(
        card_id: &str,
        direction: &str,
        amount: i64,
        reason: &str,
        idempotency_key: &str,
    ) -> Result<Self, SaldoError> {
        let mut violations = Vec::new();
        let card_id = Uuid::parse_str(card_id)
            .map_err(|_| violations.push(FieldViolation::new("card_id", "must be a UUID")));
        let direction = direction.parse::<Direction>().map_err(|_| {
            violations.push(FieldViolation::new("direction", "must be credit or debit"))
        });
        if amount <= 0 {
            violations.push(FieldViolation::new(
                "amount",
                "must be positive (minor units)",
            ));
        }
        let reason = reason.trim();
        if !(10..=500).contains(&reason.chars().count()) {
            violations.push(FieldViolation::new(
                "reason",
                "is required: 10 to 500 characters saying why (it is kept in the audit trail)",
            ));
        }
        if idempotency_key.is_empty()
            || idempotency_key.len() > 255
            || !idempotency_key.bytes().all(|b| b.is_ascii_graphic())
        {
            violations.push(FieldViolation::new(
                "idempotency_key",
                "is required: 1-255 visible ASCII characters (HTTP: the Idempotency-Key header)",
            ));
        }
        match (card_id, direction) {
            (Ok(card_id), Ok(direction)) if violations.is_empty() => Ok(Self {
                card_id,
                direction,
                amount,
                reason: reason.to_owned(),
                idempotency_key: idempotency_key.to_owned(),
            }),
            _ => Err(SaldoError::Invalid(violations)),
        }
    }
}

/// An adjustment in the audit trail.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AdjustmentRow {
    pub id: Uuid,
    pub card_id: Uuid,
    pub direction: Direction,
    pub amount: i64,
    pub currency: String,
    pub reason: String,
    pub requested_by: String,
    pub status: String,
    pub rejection_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, card_id, direction, amount, currency, reason, requested_by, status,
    rejection_reason, created_at";

fn operator(caller: &Principal) -> String {
    match &caller.subject {
        Subject::User(id) => id.to_string(),
        Subject::Service(name) => format!("service:{name}"),
    }
}

impl Saldo {
    /// Records, posts and answers an adjustment (see the module docs).
    pub async fn adjust(
        &self,
        caller: &Principal,
        request: AdjustmentRequest,
    ) -> Result<AdjustmentRow, SaldoError> {
        caller.require(SALDO_ADJUST)?;
        let account = crate::repo::card_account(&self.pool, request.card_id)
            .await?
            .ok_or_else(|| SaldoError::AccountNotFound(request.card_id.to_string()))?;
        let requested_by = operator(caller);
        let recorded: Option<AdjustmentRow> = sqlx::query_as(&format!(
            "INSERT INTO adjustments (id, card_id, direction, amount, currency, reason,
                 requested_by, idempotency_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (requested_by, idempotency_key) DO NOTHING
             RETURNING {COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(request.card_id)
        .bind(request.direction)
        .bind(request.amount)
        .bind(&account.currency)
        .bind(&request.reason)
        .bind(&requested_by)
        .bind(&request.idempotency_key)
        .fetch_optional(&self.pool)
        .await?;
        let adjustment = match recorded {
            Some(new) => new,
            None => {
                let first: AdjustmentRow = sqlx::query_as(&format!(
                    "SELECT {COLUMNS} FROM adjustments
                     WHERE requested_by = $1 AND idempotency_key = $2"
                ))
                .bind(&requested_by)
                .bind(&request.idempotency_key)
                .fetch_one(&self.pool)
                .await?;
                let same = first.card_id == request.card_id
                    && first.direction == request.direction
                    && first.amount == request.amount
                    && first.reason == request.reason;
                if !same {
                    return Err(SaldoError::IdempotencyKeyReused);
                }
                if first.status != "requested" {
                    return Ok(first);
                }
                first
            }
        };
        let card = AccountRef::Card(adjustment.card_id);
        let system = AccountRef::System(ADJUSTMENTS_ACCOUNT.to_owned());
        let (debit, credit) = match adjustment.direction {
            Direction::Credit => (system, card),
            Direction::Debit => (card, system),
        };
        let posting = self
            .ledger
            .post(&PostingRequest {
                id: adjustment.id,
                kind: "adjustment".to_owned(),
                debit,
                credit,
                amount: adjustment.amount,
                currency: adjustment.currency.clone(),
                description: adjustment.reason.chars().take(200).collect(),
                effective_at: None,
                fee: None,
            })
            .await?;
        let answered: AdjustmentRow = sqlx::query_as(&format!(
            "UPDATE adjustments SET status = $2, rejection_reason = $3
             WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(adjustment.id)
        .bind(&posting.status)
        .bind(&posting.rejection_reason)
        .fetch_one(&self.pool)
        .await?;
        metrics::counter!("ledger_adjustments_total", "direction" => answered.direction.as_str(),
            "status" => answered.status.clone())
        .increment(1);
        tracing::warn!(adjustment = %answered.id, card_id = %answered.card_id,
            direction = %answered.direction, amount = answered.amount, by = %answered.requested_by,
            status = %answered.status, "operator adjustment");
        Ok(answered)
    }

    /// The audit trail, newest first (500 at most), of one card or all.
    pub async fn adjustments(
        &self,
        caller: &Principal,
        card_id: Option<Uuid>,
    ) -> Result<Vec<AdjustmentRow>, SaldoError> {
        if !caller.has(SALDO_ADJUST) {
            caller.require(SALDO_READ)?;
        }
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM adjustments WHERE $1::uuid IS NULL OR card_id = $1
             ORDER BY created_at DESC LIMIT 500"
        ))
        .bind(card_id)
        .fetch_all(&self.pool)
        .await?)
    }
}
