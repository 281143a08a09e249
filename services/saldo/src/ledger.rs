//! Posting: the only code that changes balances.
//!
//! One posting is one PostgreSQL transaction that
//! 1. locks both accounts with `SELECT … ORDER BY id FOR UPDATE` — a fixed order, so two
//!    postings touching the same pair (A→B and B→A at once) queue instead of deadlocking,
//!    and balances are read under the lock, so there are no lost updates;
//! 2. inserts the posting under its caller-chosen id (`ON CONFLICT DO NOTHING`): a replay
//!    or a concurrent duplicate finds the first one and returns it unchanged;
//! 3. either records a rejection (insufficient funds, closed account, currency mismatch) or
//!    applies both balance changes, writes two journal lines that sum to zero, and queues a
//!    `balance.changed` event per customer account in the outbox.
//!
//! `balance >= 0` is also a CHECK constraint, so even a bug here cannot overdraw a card.
//!
//! Longer than most files on purpose: the posting transaction (lock order, checks, journal,
//! balances, events) is the platform's one place where money changes and is kept whole.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use events::payloads::saldo as ev;
use events::{Envelope, topics};
use proto::saldo::v1::Rejection;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::SaldoError;

const SOURCE: &str = "saldo-service";

/// Posting kinds.
pub const KINDS: &[&str] = &["topup", "withdraw", "transfer", "payment", "refund"];
// `adjustment` postings are made by the saldo service itself ([`crate::adjustments`]); a
// `Post` request cannot name that kind.

/// One side of a posting as the caller names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountRef {
    /// A card's account.
    Card(Uuid),
    /// A system account by purpose (`topup:bca`); the currency completes its code.
    System(String),
    /// A merchant's settlement account in the posting's currency.
    Merchant(Uuid),
}

impl AccountRef {
    fn stored(&self) -> String {
        match self {
            Self::Card(id) => format!("card:{id}"),
            Self::System(purpose) => format!("system:{purpose}"),
            Self::Merchant(id) => format!("merchant:{id}"),
        }
    }
}

/// A posting request.
#[derive(Clone, Debug)]
pub struct PostingRequest {
    pub id: Uuid,
    pub kind: String,
    pub debit: AccountRef,
    pub credit: AccountRef,
    pub amount: i64,
    pub currency: String,
    pub description: String,
    /// Backdated postings (imports, demo data): their time; `None` = now.
    pub effective_at: Option<DateTime<Utc>>,
}

/// A stored posting.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PostingRow {
    pub id: Uuid,
    pub kind: String,
    pub status: String,
    pub rejection_reason: Option<String>,
    pub debit_ref: String,
    pub credit_ref: String,
    pub debit_account_id: Uuid,
    pub credit_account_id: Uuid,
    pub amount: i64,
    pub currency: String,
    pub description: String,
    pub debit_balance_after: Option<i64>,
    pub credit_balance_after: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// Inserts a posting unless its id exists ($1..$14 = the columns in order).
const INSERT_POSTING: &str = "INSERT INTO postings (id, kind, status, rejection_reason,
        debit_ref, credit_ref, debit_account_id, credit_account_id, amount, currency,
        description, debit_balance_after, credit_balance_after, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
     ON CONFLICT (id) DO NOTHING";

pub const SELECT_POSTING: &str = "SELECT id, kind, status, rejection_reason, debit_ref,
        credit_ref, debit_account_id, credit_account_id, amount, currency, description,
        debit_balance_after, credit_balance_after, created_at FROM postings";

#[derive(Debug, sqlx::FromRow)]
struct LockedAccount {
    id: Uuid,
    kind: String,
    card_id: Option<Uuid>,
    merchant_id: Option<Uuid>,
    owner_user_id: Option<Uuid>,
    code: Option<String>,
    currency: String,
    balance: i64,
    is_open: bool,
}

/// The ledger's write side.
#[derive(Clone)]
pub struct Ledger {
    pool: PgPool,
    /// System account codes known to exist (they are never deleted).
    known_system: Arc<Mutex<HashSet<String>>>,
}

impl Ledger {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            known_system: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    async fn ensure_system_account(&self, code: &str, currency: &str) -> Result<(), SaldoError> {
        let known = self
            .known_system
            .lock()
            .map(|set| set.contains(code))
            .unwrap_or(false);
        if known {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO accounts (id, kind, code, currency) VALUES ($1, 'system', $2, $3)
             ON CONFLICT (code) DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(code)
        .bind(currency)
        .execute(&self.pool)
        .await?;
        if let Ok(mut set) = self.known_system.lock() {
            set.insert(code.to_owned());
        }
        Ok(())
    }

    fn system_code(purpose: &str, currency: &str) -> String {
        format!("{purpose}:{currency}")
    }

    /// Applies (or replays) a posting. See the module docs.
    pub async fn post(&self, request: &PostingRequest) -> Result<PostingRow, SaldoError> {
        let mut card_ids = Vec::new();
        let mut merchant_ids = Vec::new();
        let mut codes = Vec::new();
        for side in [&request.debit, &request.credit] {
            match side {
                AccountRef::Card(id) => card_ids.push(*id),
                AccountRef::Merchant(id) => merchant_ids.push(*id),
                AccountRef::System(purpose) => {
                    let code = Self::system_code(purpose, &request.currency);
                    self.ensure_system_account(&code, &request.currency).await?;
                    codes.push(code);
                }
            }
        }

        let mut tx = self.pool.begin().await?;
        let locked: Vec<LockedAccount> = sqlx::query_as(
            "SELECT id, kind, card_id, merchant_id, owner_user_id, code, currency, balance,
                 is_open
             FROM accounts
             WHERE card_id = ANY($1) OR code = ANY($2)
                OR (merchant_id = ANY($3) AND currency = $4)
             ORDER BY id FOR UPDATE",
        )
        .bind(&card_ids)
        .bind(&codes)
        .bind(&merchant_ids)
        .bind(&request.currency)
        .fetch_all(&mut *tx)
        .await?;
        let find = |side: &AccountRef| {
            locked.iter().find(|a| match side {
                AccountRef::Card(id) => a.card_id == Some(*id),
                AccountRef::Merchant(id) => a.merchant_id == Some(*id),
                AccountRef::System(purpose) => {
                    a.code.as_deref() == Some(&Self::system_code(purpose, &request.currency))
                }
            })
        };
        let debit = find(&request.debit).ok_or_else(|| not_found(&request.debit))?;
        let credit = find(&request.credit).ok_or_else(|| not_found(&request.credit))?;

        let rejection = if !debit.is_open || !credit.is_open {
            Some(Rejection::AccountClosed)
        } else if debit.currency != request.currency || credit.currency != request.currency {
            Some(Rejection::CurrencyMismatch)
        } else if debit.kind != "system" && debit.balance < request.amount {
            Some(Rejection::InsufficientFunds)
        } else {
            None
        };
        let (debit_after, credit_after) = match rejection {
            Some(_) => (None, None),
            None => (
                Some(
                    debit
                        .balance
                        .checked_sub(request.amount)
                        .ok_or_else(|| overflow(debit.id))?,
                ),
                Some(
                    credit
                        .balance
                        .checked_add(request.amount)
                        .ok_or_else(|| overflow(credit.id))?,
                ),
            ),
        };

        let posting = PostingRow {
            id: request.id,
            kind: request.kind.clone(),
            status: if rejection.is_some() {
                "rejected"
            } else {
                "posted"
            }
            .to_owned(),
            rejection_reason: rejection.map(|r| r.code().to_owned()),
            debit_ref: request.debit.stored(),
            credit_ref: request.credit.stored(),
            debit_account_id: debit.id,
            credit_account_id: credit.id,
            amount: request.amount,
            currency: request.currency.clone(),
            description: request.description.clone(),
            debit_balance_after: debit_after,
            credit_balance_after: credit_after,
            created_at: request.effective_at.unwrap_or_else(Utc::now),
        };
        let inserted = match (debit_after, credit_after) {
            (Some(debit_after), Some(credit_after)) => {
                let mut events = OutboxBatch::default();
                for (account, delta, balance) in [
                    (debit, -request.amount, debit_after),
                    (credit, request.amount, credit_after),
                ] {
                    if account.kind != "system" {
                        events.push(balance_changed(account, &posting, delta, balance)?)?;
                    }
                }
                // The posting, both balances, both journal lines and the balance.changed
                // events in one statement; everything hangs off the posting insert, so a
                // replayed id (ON CONFLICT: no row) changes nothing.
                let (inserted, updated, lines): (i64, i64, i64) = sqlx::query_as(&format!(
                    "WITH p AS ({INSERT_POSTING} RETURNING id),
                     balances AS (
                         UPDATE accounts a SET balance = d.balance, updated_at = now()
                         FROM (VALUES ($7::uuid, $12::bigint), ($8::uuid, $13::bigint))
                              AS d(id, balance), p
                         WHERE a.id = d.id RETURNING a.id),
                     lines AS (
                         INSERT INTO journal_lines (posting_id, account_id, amount, balance_after,
                             created_at)
                         SELECT p.id, l.account, l.amount, l.balance, $14
                         FROM p, (VALUES ($7::uuid, -$9::bigint, $12::bigint),
                                         ($8::uuid, $9::bigint, $13::bigint))
                              AS l(account, amount, balance)
                         RETURNING id),
                     events AS (
                         INSERT INTO outbox (event_id, topic, partition_key, event_type, payload,
                             headers)
                         SELECT u.* FROM p, unnest($15::uuid[], $16::text[], $17::text[],
                             $18::text[], $19::jsonb[], $20::jsonb[]) AS u
                         RETURNING id)
                     SELECT (SELECT count(*) FROM p), (SELECT count(*) FROM balances),
                            (SELECT count(*) FROM lines)
                     FROM (SELECT count(*) FROM events) e,
                          (SELECT pg_notify('outbox_' || current_schema(), '')) n"
                ))
                .bind(posting.id)
                .bind(&posting.kind)
                .bind(&posting.status)
                .bind(&posting.rejection_reason)
                .bind(&posting.debit_ref)
                .bind(&posting.credit_ref)
                .bind(posting.debit_account_id)
                .bind(posting.credit_account_id)
                .bind(posting.amount)
                .bind(&posting.currency)
                .bind(&posting.description)
                .bind(debit_after)
                .bind(credit_after)
                .bind(posting.created_at)
                .bind(&events.ids)
                .bind(&events.topics)
                .bind(&events.keys)
                .bind(&events.types)
                .bind(&events.payloads)
                .bind(&events.headers)
                .fetch_one(&mut *tx)
                .await?;
                if inserted == 1 && (updated, lines) != (2, 2) {
                    return Err(SaldoError::Internal(anyhow::anyhow!(
                        "posting {} touched {updated} accounts and wrote {lines} lines",
                        posting.id
                    )));
                }
                inserted == 1
            }
            _ => {
                sqlx::query(INSERT_POSTING)
                    .bind(posting.id)
                    .bind(&posting.kind)
                    .bind(&posting.status)
                    .bind(&posting.rejection_reason)
                    .bind(&posting.debit_ref)
                    .bind(&posting.credit_ref)
                    .bind(posting.debit_account_id)
                    .bind(posting.credit_account_id)
                    .bind(posting.amount)
                    .bind(&posting.currency)
                    .bind(&posting.description)
                    .bind(debit_after)
                    .bind(credit_after)
                    .bind(posting.created_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1
            }
        };
        if !inserted {
            // Seen before: nothing of this attempt may be applied.
            tx.rollback().await?;
            return self.replay(request).await;
        }
        tx.commit().await?;
        metrics::counter!("ledger_postings_total", "kind" => posting.kind.clone(),
            "status" => posting.status.clone())
        .increment(1);
        if posting.status == "posted" {
            metrics::counter!("ledger_posted_amount_total", "kind" => posting.kind.clone(),
                "currency" => posting.currency.clone())
            .increment(u64::try_from(posting.amount).unwrap_or(0));
        }
        tracing::info!(posting_id = %posting.id, kind = %posting.kind, status = %posting.status,
            amount = posting.amount, reason = ?posting.rejection_reason, "posting");
        Ok(posting)
    }

    /// The stored posting with `request.id`, if it is the same movement.
    async fn replay(&self, request: &PostingRequest) -> Result<PostingRow, SaldoError> {
        let existing: PostingRow = sqlx::query_as(&format!("{SELECT_POSTING} WHERE id = $1"))
            .bind(request.id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(SaldoError::PostingNotFound)?;
        let same = existing.kind == request.kind
            && existing.debit_ref == request.debit.stored()
            && existing.credit_ref == request.credit.stored()
            && existing.amount == request.amount
            && existing.currency == request.currency;
        if same {
            metrics::counter!("ledger_posting_replays_total").increment(1);
            Ok(existing)
        } else {
            Err(SaldoError::PostingIdReused(request.id.to_string()))
        }
    }

    /// Opens a card's account (idempotent); true when it was opened now.
    pub async fn open_card_account(
        conn: &mut PgConnection,
        card_id: Uuid,
        owner: Uuid,
        currency: &str,
    ) -> Result<bool, sqlx::Error> {
        let id = Uuid::now_v7();
        let opened = sqlx::query(
            "INSERT INTO accounts (id, kind, card_id, owner_user_id, currency)
             VALUES ($1, 'card', $2, $3, $4) ON CONFLICT (card_id) DO NOTHING",
        )
        .bind(id)
        .bind(card_id)
        .bind(owner)
        .bind(currency)
        .execute(&mut *conn)
        .await?
        .rows_affected()
            == 1;
        if opened {
            let data = ev::AccountOpened {
                account_id: id,
                card_id: Some(card_id),
                merchant_id: None,
                owner_user_id: Some(owner),
                currency: currency.to_owned(),
            };
            let event = Envelope::new(SOURCE, ev::ACCOUNT_OPENED, id, &data)
                .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            events::outbox::enqueue(conn, topics::SALDO_EVENTS, &event).await?;
        }
        Ok(opened)
    }

    /// Opens a merchant's settlement account in `currency` (idempotent); true when it was
    /// opened now.
    pub async fn open_merchant_account(
        conn: &mut PgConnection,
        merchant_id: Uuid,
        owner: Uuid,
        currency: &str,
    ) -> Result<bool, sqlx::Error> {
        let id = Uuid::now_v7();
        let opened = sqlx::query(
            "INSERT INTO accounts (id, kind, merchant_id, owner_user_id, currency)
             VALUES ($1, 'merchant', $2, $3, $4) ON CONFLICT (merchant_id, currency) DO NOTHING",
        )
        .bind(id)
        .bind(merchant_id)
        .bind(owner)
        .bind(currency)
        .execute(&mut *conn)
        .await?
        .rows_affected()
            == 1;
        if opened {
            let data = ev::AccountOpened {
                account_id: id,
                card_id: None,
                merchant_id: Some(merchant_id),
                owner_user_id: Some(owner),
                currency: currency.to_owned(),
            };
            let event = Envelope::new(SOURCE, ev::ACCOUNT_OPENED, id, &data)
                .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            events::outbox::enqueue(conn, topics::SALDO_EVENTS, &event).await?;
        }
        Ok(opened)
    }

    /// Closes a card's account: no posting touches it afterwards.
    pub async fn close_card_account(
        conn: &mut PgConnection,
        card_id: Uuid,
    ) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "UPDATE accounts SET is_open = false, updated_at = now() WHERE card_id = $1
             RETURNING balance",
        )
        .bind(card_id)
        .fetch_optional(conn)
        .await
    }
}

fn not_found(side: &AccountRef) -> SaldoError {
    match side {
        AccountRef::Card(id) => SaldoError::AccountNotFound(id.to_string()),
        AccountRef::Merchant(id) => SaldoError::AccountNotFound(format!("merchant {id}")),
        AccountRef::System(purpose) => {
            SaldoError::Internal(anyhow::anyhow!("system account {purpose} missing"))
        }
    }
}

fn overflow(account: Uuid) -> SaldoError {
    SaldoError::Internal(anyhow::anyhow!(
        "balance of account {account} would overflow"
    ))
}

fn balance_changed(
    account: &LockedAccount,
    posting: &PostingRow,
    delta: i64,
    balance: i64,
) -> Result<Envelope, SaldoError> {
    let data = ev::BalanceChanged {
        account_id: account.id,
        card_id: account.card_id,
        merchant_id: account.merchant_id,
        owner_user_id: account.owner_user_id,
        posting_id: posting.id,
        kind: posting.kind.clone(),
        delta,
        balance,
        currency: posting.currency.clone(),
        occurred_at: posting.created_at,
    };
    Envelope::new(SOURCE, ev::BALANCE_CHANGED, account.id, &data)
        .map_err(|e| SaldoError::Internal(e.into()))
}

/// Outbox rows as column arrays, for one `INSERT … SELECT * FROM unnest(…)`.
#[derive(Default)]
struct OutboxBatch {
    ids: Vec<Uuid>,
    topics: Vec<String>,
    keys: Vec<String>,
    types: Vec<String>,
    payloads: Vec<serde_json::Value>,
    headers: Vec<serde_json::Value>,
}

impl OutboxBatch {
    fn push(&mut self, event: Envelope) -> Result<(), SaldoError> {
        let (payload, headers) =
            events::outbox::encode(&event).map_err(|e| SaldoError::Internal(e.into()))?;
        self.ids.push(event.id);
        self.topics.push(topics::SALDO_EVENTS.to_owned());
        self.keys.push(event.subject);
        self.types.push(event.event_type);
        self.payloads.push(payload);
        self.headers.push(headers);
        Ok(())
    }
}
