//! Posting: the only code that changes balances.
//!
//! One posting is one PostgreSQL transaction that
//! 1. locks its accounts (debit, credit, and the fee account of a fee leg) with
//!    `SELECT … ORDER BY id FOR UPDATE` — a fixed order, so two postings touching the same
//!    accounts (A→B and B→A at once) queue instead of deadlocking, and balances are read
//!    under the lock, so there are no lost updates;
//! 2. inserts the posting under its caller-chosen id (`ON CONFLICT DO NOTHING`): a replay
//!    or a concurrent duplicate finds the first one and returns it unchanged;
//! 3. either records a rejection (insufficient available funds, closed account, currency
//!    mismatch) or applies every leg's balance change, writes a journal line per non-zero
//!    leg (they sum to zero), and queues a `balance.changed` event per customer account in
//!    the outbox.
//!
//! A posting has two legs, or three with a fee leg ([`FeeLeg`]): the fee is booked in the
//! same statement as the payment it belongs to, all legs or none. `balance >= 0` and
//! `balance - held >= 0` are CHECK constraints, so even a bug here cannot overdraw a card or
//! spend money a hold ([`crate::holds`]) reserved.
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
    pub(crate) fn stored(&self) -> String {
        match self {
            Self::Card(id) => format!("card:{id}"),
            Self::System(purpose) => format!("system:{purpose}"),
            Self::Merchant(id) => format!("merchant:{id}"),
        }
    }

    /// The reference [`Self::stored`] wrote.
    pub(crate) fn from_stored(stored: &str) -> Option<Self> {
        let (kind, rest) = stored.split_once(':')?;
        match kind {
            "card" => rest.parse().ok().map(Self::Card),
            "merchant" => rest.parse().ok().map(Self::Merchant),
            "system" => Some(Self::System(rest.to_owned())),
            _ => None,
        }
    }
}

/// A posting's third leg: a fee account and its signed share (see migration 0006).
/// `amount > 0`: the fee account receives it out of what the credited account would receive.
/// `amount < 0`: the fee account pays it, out of what the debited account would pay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeeLeg {
    pub account: AccountRef,
    pub amount: i64,
}

/// A posting request.
#[derive(Clone, Debug)]
pub struct PostingRequest {
    pub id: Uuid,
    pub kind: String,
    pub debit: AccountRef,
    pub credit: AccountRef,
    /// What the debited account pays (before a returned fee) and the credited one receives
    /// (before a taken fee): the gross amount.
    pub amount: i64,
    pub currency: String,
    pub description: String,
    /// Backdated postings (imports, demo data): their time; `None` = now.
    pub effective_at: Option<DateTime<Utc>>,
    pub fee: Option<FeeLeg>,
}

impl PostingRequest {
    /// The signed change of the debited, credited and fee accounts: they sum to zero.
    fn deltas(&self) -> (i64, i64, Option<i64>) {
        let fee = self.fee.as_ref().map_or(0, |f| f.amount);
        (
            -(self.amount - (-fee).max(0)),
            self.amount - fee.max(0),
            self.fee.as_ref().map(|f| f.amount),
        )
    }

    fn refs(&self) -> impl Iterator<Item = &AccountRef> {
        [&self.debit, &self.credit]
            .into_iter()
            .chain(self.fee.as_ref().map(|f| &f.account))
    }
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
    pub fee_ref: Option<String>,
    pub fee_account_id: Option<Uuid>,
    pub fee_amount: Option<i64>,
    pub fee_balance_after: Option<i64>,
}

/// Inserts a posting unless its id exists ($1..$18 = the columns in order).
const INSERT_POSTING: &str = "INSERT INTO postings (id, kind, status, rejection_reason,
        debit_ref, credit_ref, debit_account_id, credit_account_id, amount, currency,
        description, debit_balance_after, credit_balance_after, created_at, fee_ref,
        fee_account_id, fee_amount, fee_balance_after)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
     ON CONFLICT (id) DO NOTHING";

pub const SELECT_POSTING: &str = "SELECT id, kind, status, rejection_reason, debit_ref,
        credit_ref, debit_account_id, credit_account_id, amount, currency, description,
        debit_balance_after, credit_balance_after, created_at, fee_ref, fee_account_id,
        fee_amount, fee_balance_after FROM postings";

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct LockedAccount {
    pub(crate) id: Uuid,
    kind: String,
    card_id: Option<Uuid>,
    merchant_id: Option<Uuid>,
    owner_user_id: Option<Uuid>,
    code: Option<String>,
    pub(crate) currency: String,
    balance: i64,
    held: i64,
    pub(crate) is_open: bool,
}

impl LockedAccount {
    /// What may be spent: the balance less live holds (system accounts: anything).
    pub(crate) fn available(&self) -> Option<i64> {
        (self.kind != "system").then(|| self.balance - self.held)
    }
}

/// A hold being captured: its reservation ends in the posting's transaction.
pub(crate) struct Release {
    pub(crate) account_id: Uuid,
    pub(crate) amount: i64,
}

/// The accounts a statement locked, found by the caller's references.
pub(crate) struct Locked {
    accounts: Vec<LockedAccount>,
    currency: String,
}

impl Locked {
    pub(crate) fn find(&self, side: &AccountRef) -> Result<&LockedAccount, SaldoError> {
        self.accounts
            .iter()
            .find(|a| match side {
                AccountRef::Card(id) => a.card_id == Some(*id),
                AccountRef::Merchant(id) => a.merchant_id == Some(*id),
                AccountRef::System(purpose) => {
                    a.code.as_deref() == Some(&Ledger::system_code(purpose, &self.currency))
                }
            })
            .ok_or_else(|| not_found(side))
    }
}

/// The ledger's write side.
#[derive(Clone)]
pub struct Ledger {
    pub(crate) pool: PgPool,
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

    /// Opens the system accounts among `sides` on first use (never deleted, so cached).
    pub(crate) async fn ensure_system_accounts<'a>(
        &self,
        sides: impl Iterator<Item = &'a AccountRef>,
        currency: &str,
    ) -> Result<(), SaldoError> {
        for side in sides {
            let AccountRef::System(purpose) = side else {
                continue;
            };
            let code = Self::system_code(purpose, currency);
            let known = self
                .known_system
                .lock()
                .map(|set| set.contains(&code))
                .unwrap_or(false);
            if known {
                continue;
            }
            sqlx::query(
                "INSERT INTO accounts (id, kind, code, currency) VALUES ($1, 'system', $2, $3)
                 ON CONFLICT (code) DO NOTHING",
            )
            .bind(Uuid::now_v7())
            .bind(&code)
            .bind(currency)
            .execute(&self.pool)
            .await?;
            if let Ok(mut set) = self.known_system.lock() {
                set.insert(code);
            }
        }
        Ok(())
    }

    fn system_code(purpose: &str, currency: &str) -> String {
        format!("{purpose}:{currency}")
    }

    /// Locks the accounts `sides` name in a fixed order (by id), so two statements touching
    /// the same accounts queue instead of deadlocking, and balances are read under the lock.
    pub(crate) async fn lock<'a>(
        conn: &mut PgConnection,
        sides: impl Iterator<Item = &'a AccountRef>,
        currency: &str,
    ) -> Result<Locked, SaldoError> {
        let (mut card_ids, mut merchant_ids, mut codes) = (Vec::new(), Vec::new(), Vec::new());
        for side in sides {
            match side {
                AccountRef::Card(id) => card_ids.push(*id),
                AccountRef::Merchant(id) => merchant_ids.push(*id),
                AccountRef::System(purpose) => codes.push(Self::system_code(purpose, currency)),
            }
        }
        let accounts = sqlx::query_as(
            "SELECT id, kind, card_id, merchant_id, owner_user_id, code, currency, balance,
                 held, is_open
             FROM accounts
             WHERE card_id = ANY($1) OR code = ANY($2)
                OR (merchant_id = ANY($3) AND currency = $4)
             ORDER BY id FOR UPDATE",
        )
        .bind(&card_ids)
        .bind(&codes)
        .bind(&merchant_ids)
        .bind(currency)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Locked {
            accounts,
            currency: currency.to_owned(),
        })
    }

    /// Applies (or replays) a posting. See the module docs.
    pub async fn post(&self, request: &PostingRequest) -> Result<PostingRow, SaldoError> {
        self.ensure_system_accounts(request.refs(), &request.currency)
            .await?;
        let mut tx = self.pool.begin().await?;
        let Some(posting) = Self::post_in(&mut tx, request, None).await? else {
            // Seen before: nothing of this attempt may be applied.
            tx.rollback().await?;
            return self.replay(request).await;
        };
        tx.commit().await?;
        record_posting(&posting);
        Ok(posting)
    }

    /// The posting statement inside the caller's transaction: `None` when the id was seen
    /// before (the caller must roll back). `release` ends a hold on one of the accounts in
    /// the same statement (a capture), so its money is available to this posting only.
    pub(crate) async fn post_in(
        conn: &mut PgConnection,
        request: &PostingRequest,
        release: Option<&Release>,
    ) -> Result<Option<PostingRow>, SaldoError> {
        let locked = Self::lock(conn, request.refs(), &request.currency).await?;
        let debit = locked.find(&request.debit)?;
        let credit = locked.find(&request.credit)?;
        let fee = match &request.fee {
            Some(leg) => Some(locked.find(&leg.account)?),
            None => None,
        };
        let (debit_delta, credit_delta, fee_delta) = request.deltas();
        let mut legs = vec![(debit, debit_delta), (credit, credit_delta)];
        if let (Some(account), Some(delta)) = (fee, fee_delta) {
            legs.push((account, delta));
        }
        let released = |account: &LockedAccount| {
            release
                .filter(|r| r.account_id == account.id)
                .map_or(0, |r| r.amount)
        };
        let rejection = if legs.iter().any(|(a, _)| !a.is_open) {
            Some(Rejection::AccountClosed)
        } else if legs.iter().any(|(a, _)| a.currency != request.currency) {
            Some(Rejection::CurrencyMismatch)
        } else if legs.iter().any(|(a, delta)| {
            a.available()
                .is_some_and(|available| available + released(a) + delta < 0)
        }) {
            Some(Rejection::InsufficientFunds)
        } else {
            None
        };
        let mut after = Vec::with_capacity(legs.len());
        if rejection.is_none() {
            for (account, delta) in &legs {
                after.push(
                    account
                        .balance
                        .checked_add(*delta)
                        .ok_or_else(|| overflow(account.id))?,
                );
            }
        }

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
            debit_balance_after: after.first().copied(),
            credit_balance_after: after.get(1).copied(),
            created_at: request.effective_at.unwrap_or_else(Utc::now),
            fee_ref: request.fee.as_ref().map(|f| f.account.stored()),
            fee_account_id: fee.map(|a| a.id),
            fee_amount: fee_delta,
            fee_balance_after: after.get(2).copied(),
        };
        // A rejected posting changes no account: its legs are empty.
        let applied: Vec<(&LockedAccount, i64, i64)> = legs
            .iter()
            .zip(&after)
            .map(|((account, delta), balance)| (*account, *delta, *balance))
            .collect();
        let mut events = OutboxBatch::default();
        for (account, delta, balance) in &applied {
            if account.kind != "system" && *delta != 0 {
                events.push(balance_changed(account, &posting, *delta, *balance)?)?;
            }
        }
        let ids: Vec<Uuid> = applied.iter().map(|(a, _, _)| a.id).collect();
        let deltas: Vec<i64> = applied.iter().map(|(_, d, _)| *d).collect();
        let balances: Vec<i64> = applied.iter().map(|(_, _, b)| *b).collect();
        let releases: Vec<i64> = applied.iter().map(|(a, _, _)| released(a)).collect();
        // The posting, every balance, the journal lines and the balance.changed events in one
        // statement; everything hangs off the posting insert, so a replayed id (ON CONFLICT:
        // no row) changes nothing.
        let (inserted, updated, lines): (i64, i64, i64) = sqlx::query_as(&format!(
            "WITH p AS ({INSERT_POSTING} RETURNING id),
             balances AS (
                 UPDATE accounts a SET balance = d.balance, held = a.held - d.released,
                     updated_at = now()
                 FROM unnest($19::uuid[], $20::bigint[], $21::bigint[])
                      AS d(id, balance, released), p
                 WHERE a.id = d.id RETURNING a.id),
             lines AS (
                 INSERT INTO journal_lines (posting_id, account_id, amount, balance_after,
                     created_at)
                 SELECT p.id, l.account, l.amount, l.balance, $14
                 FROM p, unnest($19::uuid[], $22::bigint[], $20::bigint[])
                      AS l(account, amount, balance)
                 WHERE l.amount <> 0
                 RETURNING id),
             events AS (
                 INSERT INTO outbox (event_id, topic, partition_key, event_type, payload,
                     headers)
                 SELECT u.* FROM p, unnest($23::uuid[], $24::text[], $25::text[],
                     $26::text[], $27::jsonb[], $28::jsonb[]) AS u
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
        .bind(posting.debit_balance_after)
        .bind(posting.credit_balance_after)
        .bind(posting.created_at)
        .bind(&posting.fee_ref)
        .bind(posting.fee_account_id)
        .bind(posting.fee_amount)
        .bind(posting.fee_balance_after)
        .bind(&ids)
        .bind(&balances)
        .bind(&releases)
        .bind(&deltas)
        .bind(&events.ids)
        .bind(&events.topics)
        .bind(&events.keys)
        .bind(&events.types)
        .bind(&events.payloads)
        .bind(&events.headers)
        .fetch_one(&mut *conn)
        .await?;
        if inserted == 0 {
            return Ok(None);
        }
        let expected_lines = deltas.iter().filter(|d| **d != 0).count();
        if (updated, lines) != (ids.len() as i64, expected_lines as i64) {
            return Err(SaldoError::Internal(anyhow::anyhow!(
                "posting {} touched {updated} accounts and wrote {lines} lines",
                posting.id
            )));
        }
        Ok(Some(posting))
    }

    /// The stored posting with `request.id`, if it is the same movement.
    async fn replay(&self, request: &PostingRequest) -> Result<PostingRow, SaldoError> {
        let existing: PostingRow = sqlx::query_as(&format!("{SELECT_POSTING} WHERE id = $1"))
            .bind(request.id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(SaldoError::PostingNotFound)?;
        if same_posting(&existing, request) {
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

/// Whether a stored posting is the movement `request` asks for (a replay, not a reuse).
pub(crate) fn same_posting(existing: &PostingRow, request: &PostingRequest) -> bool {
    existing.kind == request.kind
        && existing.debit_ref == request.debit.stored()
        && existing.credit_ref == request.credit.stored()
        && existing.amount == request.amount
        && existing.currency == request.currency
        && existing.fee_ref == request.fee.as_ref().map(|f| f.account.stored())
        && existing.fee_amount == request.fee.as_ref().map(|f| f.amount)
}

/// Metrics and the log line of a committed posting.
pub(crate) fn record_posting(posting: &PostingRow) {
    metrics::counter!("ledger_postings_total", "kind" => posting.kind.clone(),
        "status" => posting.status.clone())
    .increment(1);
    if posting.status == "posted" {
        metrics::counter!("ledger_posted_amount_total", "kind" => posting.kind.clone(),
            "currency" => posting.currency.clone())
        .increment(u64::try_from(posting.amount).unwrap_or(0));
        if let Some(fee) = posting.fee_amount {
            metrics::counter!("ledger_fee_amount_total", "direction" => if fee > 0 { "taken" } else { "returned" },
                "currency" => posting.currency.clone())
            .increment(fee.unsigned_abs());
        }
    }
    tracing::info!(posting_id = %posting.id, kind = %posting.kind, status = %posting.status,
        amount = posting.amount, fee = ?posting.fee_amount, reason = ?posting.rejection_reason,
        "posting");
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
