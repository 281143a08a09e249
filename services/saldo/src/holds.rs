//! Holds: money reserved on a card for an authorization, without moving it.
//!
//! A hold raises the card account's `held` under the account's row lock, and the database
//! keeps `balance - held >= 0` (a CHECK), so a hold and a concurrent transfer cannot both
//! spend the same money: the second one to take the lock sees the first and is rejected.
//! A hold ends once (a trigger refuses any other change):
//! - **captured**: one posting under the hold's id, for at most its amount, with an optional
//!   fee leg; the whole hold is released in the same statement (a partial capture releases
//!   the rest);
//! - **released**: voided, cancelled or expired, as the caller says.
//!
//! Every call is idempotent by the hold's id: placing it again returns it; capturing it
//! again with the same amount and fee returns the posting; releasing it again returns it.

use chrono::{DateTime, Utc};
use proto::saldo::v1::Rejection;
use uuid::Uuid;

use crate::error::SaldoError;
use crate::ledger::{
    AccountRef, FeeLeg, Ledger, PostingRequest, PostingRow, Release, SELECT_POSTING,
    record_posting, same_posting,
};

/// A hold request.
#[derive(Clone, Debug)]
pub struct HoldRequest {
    pub id: Uuid,
    /// The card whose money is held.
    pub debit: AccountRef,
    /// Who a capture pays.
    pub credit: AccountRef,
    pub amount: i64,
    pub currency: String,
    pub description: String,
}

/// A capture request: the posting's kind is `payment`, its id the hold's.
#[derive(Clone, Debug)]
pub struct CaptureRequest {
    pub hold_id: Uuid,
    pub amount: i64,
    pub fee: Option<FeeLeg>,
    pub description: String,
}

/// A stored hold.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct HoldRow {
    pub id: Uuid,
    pub status: String,
    pub rejection_reason: Option<String>,
    pub debit_ref: String,
    pub credit_ref: String,
    pub debit_account_id: Uuid,
    pub credit_account_id: Uuid,
    pub amount: i64,
    pub currency: String,
    pub description: String,
    pub captured_amount: Option<i64>,
    pub release_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
}

pub const SELECT_HOLD: &str = "SELECT id, status, rejection_reason, debit_ref, credit_ref,
        debit_account_id, credit_account_id, amount, currency, description, captured_amount,
        release_reason, created_at, settled_at FROM holds";

/// Why a hold is released.
pub const RELEASE_REASONS: &[&str] = &["voided", "cancelled", "expired"];

impl Ledger {
    /// Places (or replays) a hold; a hold the card cannot cover is recorded as rejected.
    pub async fn hold(&self, request: &HoldRequest) -> Result<HoldRow, SaldoError> {
        if !matches!(request.debit, AccountRef::Card(_)) {
            return Err(
                platform::FieldViolation::new("debit", "holds are placed on cards only").into(),
            );
        }
        self.ensure_system_accounts([&request.credit].into_iter(), &request.currency)
            .await?;
        let mut tx = self.pool.begin().await?;
        let locked = Self::lock(
            &mut tx,
            [&request.debit, &request.credit].into_iter(),
            &request.currency,
        )
        .await?;
        let debit = locked.find(&request.debit)?;
        let credit = locked.find(&request.credit)?;
        let rejection = if !debit.is_open || !credit.is_open {
            Some(Rejection::AccountClosed)
        } else if debit.currency != request.currency || credit.currency != request.currency {
            Some(Rejection::CurrencyMismatch)
        } else if debit.available().is_some_and(|a| a < request.amount) {
            Some(Rejection::InsufficientFunds)
        } else {
            None
        };
        let (inserted, raised): (i64, i64) = sqlx::query_as(
            "WITH h AS (
                 INSERT INTO holds (id, status, rejection_reason, debit_ref, credit_ref,
                     debit_account_id, credit_account_id, amount, currency, description)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (id) DO NOTHING
                 RETURNING status, amount, debit_account_id),
             a AS (
                 UPDATE accounts SET held = held + h.amount, updated_at = now()
                 FROM h WHERE accounts.id = h.debit_account_id AND h.status = 'held'
                 RETURNING accounts.id)
             SELECT (SELECT count(*) FROM h), (SELECT count(*) FROM a)",
        )
        .bind(request.id)
        .bind(if rejection.is_some() {
            "rejected"
        } else {
            "held"
        })
        .bind(rejection.map(|r| r.code()))
        .bind(request.debit.stored())
        .bind(request.credit.stored())
        .bind(debit.id)
        .bind(credit.id)
        .bind(request.amount)
        .bind(&request.currency)
        .bind(&request.description)
        .fetch_one(&mut *tx)
        .await?;
        if inserted == 0 {
            tx.rollback().await?;
            let existing = self.load_hold(request.id).await?;
            let same = existing.debit_ref == request.debit.stored()
                && existing.credit_ref == request.credit.stored()
                && existing.amount == request.amount
                && existing.currency == request.currency;
            return if same {
                Ok(existing)
            } else {
                Err(SaldoError::HoldIdReused(request.id.to_string()))
            };
        }
        if rejection.is_none() && raised != 1 {
            return Err(SaldoError::Internal(anyhow::anyhow!(
                "hold {} raised {raised} accounts",
                request.id
            )));
        }
        tx.commit().await?;
        let status = if rejection.is_some() {
            "rejected"
        } else {
            "held"
        };
        metrics::counter!("ledger_holds_total", "status" => status).increment(1);
        tracing::info!(hold_id = %request.id, amount = request.amount, status, "hold");
        self.load_hold(request.id).await
    }

    /// Captures a hold (see the module docs).
    pub async fn capture(&self, request: &CaptureRequest) -> Result<PostingRow, SaldoError> {
        // The fee's system account (in the hold's currency) exists before any lock is taken.
        let currency = self.load_hold(request.hold_id).await?.currency;
        self.ensure_system_accounts(request.fee.iter().map(|f| &f.account), &currency)
            .await?;
        let mut tx = self.pool.begin().await?;
        let hold: HoldRow = sqlx::query_as(&format!("{SELECT_HOLD} WHERE id = $1 FOR UPDATE"))
            .bind(request.hold_id)
            .fetch_one(&mut *tx)
            .await?;
        let posting = PostingRequest {
            id: hold.id,
            kind: "payment".to_owned(),
            debit: stored_ref(&hold.debit_ref)?,
            credit: stored_ref(&hold.credit_ref)?,
            amount: request.amount,
            currency: hold.currency.clone(),
            description: request.description.clone(),
            effective_at: None,
            fee: request.fee.clone(),
        };
        match hold.status.as_str() {
            "held" => {}
            "captured" => {
                let existing: PostingRow =
                    sqlx::query_as(&format!("{SELECT_POSTING} WHERE id = $1"))
                        .bind(hold.id)
                        .fetch_one(&mut *tx)
                        .await?;
                return if same_posting(&existing, &posting) {
                    metrics::counter!("ledger_posting_replays_total").increment(1);
                    Ok(existing)
                } else {
                    Err(SaldoError::HoldNotHeld(hold.status))
                };
            }
            _ => return Err(SaldoError::HoldNotHeld(hold.status)),
        }
        if request.amount > hold.amount {
            return Err(platform::FieldViolation::new(
                "amount",
                format!("must not exceed the hold's {}", hold.amount),
            )
            .into());
        }
        let release = Release {
            account_id: hold.debit_account_id,
            amount: hold.amount,
        };
        let Some(row) = Self::post_in(&mut tx, &posting, Some(&release)).await? else {
            return Err(SaldoError::PostingIdReused(hold.id.to_string()));
        };
        if row.status != "posted" {
            // Nothing is recorded: the hold stays, to be voided or to expire.
            tx.rollback().await?;
            return Err(SaldoError::CaptureRejected(
                row.rejection_reason.unwrap_or_default(),
            ));
        }
        sqlx::query(
            "UPDATE holds SET status = 'captured', captured_amount = $2, settled_at = now()
             WHERE id = $1",
        )
        .bind(hold.id)
        .bind(request.amount)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        record_posting(&row);
        metrics::counter!("ledger_holds_settled_total", "as" => "captured").increment(1);
        Ok(row)
    }

    /// Releases a hold: its money is available again. Releasing a released hold returns it.
    pub async fn release(&self, hold_id: Uuid, reason: &str) -> Result<HoldRow, SaldoError> {
        let mut tx = self.pool.begin().await?;
        let hold: HoldRow = sqlx::query_as(&format!("{SELECT_HOLD} WHERE id = $1 FOR UPDATE"))
            .bind(hold_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(SaldoError::HoldNotFound)?;
        match hold.status.as_str() {
            "held" => {}
            "released" => return Ok(hold),
            _ => return Err(SaldoError::HoldNotHeld(hold.status)),
        }
        // The account's lock after the hold's, as a capture takes them.
        sqlx::query(
            "WITH a AS (SELECT id FROM accounts WHERE id = $1 FOR UPDATE)
             UPDATE accounts SET held = held - $2, updated_at = now() FROM a
             WHERE accounts.id = a.id",
        )
        .bind(hold.debit_account_id)
        .bind(hold.amount)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE holds SET status = 'released', release_reason = $2, settled_at = now()
             WHERE id = $1",
        )
        .bind(hold_id)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        metrics::counter!("ledger_holds_settled_total", "as" => "released").increment(1);
        tracing::info!(%hold_id, reason, "hold released");
        self.load_hold(hold_id).await
    }

    pub async fn load_hold(&self, hold_id: Uuid) -> Result<HoldRow, SaldoError> {
        sqlx::query_as(&format!("{SELECT_HOLD} WHERE id = $1"))
            .bind(hold_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(SaldoError::HoldNotFound)
    }
}

fn stored_ref(stored: &str) -> Result<AccountRef, SaldoError> {
    AccountRef::from_stored(stored)
        .ok_or_else(|| SaldoError::Internal(anyhow::anyhow!("stored account ref {stored:?}")))
}
