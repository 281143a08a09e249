//! The ledger's read-side SQL, and only SQL: postings, accounts, statements and the
//! reconciliation snapshot. The write side (postings) is [`crate::ledger`]'s; who may read
//! what is [`crate::service`]'s.

use chrono::{DateTime, Utc};
use platform::pagination::Page;
use sqlx::PgPool;
use uuid::Uuid;

use crate::holds::{HoldRow, SELECT_HOLD};
use crate::ledger::{PostingRow, SELECT_POSTING};
use crate::service::AccountFilter;

/// An account.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AccountRow {
    pub id: Uuid,
    pub kind: String,
    pub card_id: Option<Uuid>,
    pub merchant_id: Option<Uuid>,
    pub owner_user_id: Option<Uuid>,
    pub code: Option<String>,
    pub currency: String,
    pub balance: i64,
    pub held: i64,
    pub is_open: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const ACCOUNT_COLUMNS: &str = "id, kind, card_id, merchant_id, owner_user_id, code, currency,
        balance, held, is_open, created_at, updated_at";

/// A statement line.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LineRow {
    pub id: i64,
    pub posting_id: Uuid,
    pub kind: String,
    pub amount: i64,
    pub balance_after: i64,
    pub description: String,
    pub counterparty: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// The posting's amount with the line's sign; `gross - amount` is the fee of the line.
    pub gross: i64,
}

pub async fn posting(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<PostingRow>> {
    sqlx::query_as(&format!("{SELECT_POSTING} WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn card_account(pool: &PgPool, card_id: Uuid) -> sqlx::Result<Option<AccountRow>> {
    sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE card_id = $1"
    ))
    .bind(card_id)
    .fetch_optional(pool)
    .await
}

/// A merchant's settlement account (its first, should there be several currencies).
pub async fn merchant_account(
    pool: &PgPool,
    merchant_id: Uuid,
) -> sqlx::Result<Option<AccountRow>> {
    sqlx::query_as(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE merchant_id = $1
         ORDER BY created_at LIMIT 1"
    ))
    .bind(merchant_id)
    .fetch_optional(pool)
    .await
}

/// A page of accounts, newest first, and how many match.
pub async fn accounts(
    pool: &PgPool,
    filter: &AccountFilter,
    page: Page,
) -> sqlx::Result<(Vec<AccountRow>, i64)> {
    let mut conn = pool.acquire().await?;
    Ok(platform::count_and_page!(
        &mut conn,
        select = format!("SELECT {ACCOUNT_COLUMNS}"),
        from_where = "FROM accounts WHERE ($1::text IS NULL OR kind = $1)
              AND ($2::uuid IS NULL OR owner_user_id = $2)
              AND ($3::bigint IS NULL OR balance >= $3)",
        order = "ORDER BY created_at DESC, id",
        page = page,
        binds = [filter.kind, filter.owner, filter.min_balance],
    ))
}

/// An account's journal lines in `[from, to)`, newest first, with each line's counterparty,
/// and how many there are.
pub async fn statement(
    pool: &PgPool,
    account_id: Uuid,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    page: Page,
) -> sqlx::Result<(Vec<LineRow>, i64)> {
    let mut conn = pool.acquire().await?;
    Ok(platform::count_and_page!(
        &mut conn,
        select = "SELECT l.id, l.posting_id, p.kind, l.amount, l.balance_after, p.description,
             CASE WHEN p.debit_account_id = l.account_id THEN p.credit_account_id
                  ELSE p.debit_account_id END AS counterparty,
             l.created_at,
             CASE WHEN l.account_id = p.debit_account_id THEN -p.amount
                  WHEN l.account_id = p.credit_account_id THEN p.amount
                  ELSE l.amount END AS gross",
        from_where = "FROM journal_lines l JOIN postings p ON p.id = l.posting_id
             WHERE l.account_id = $1
               AND ($2::timestamptz IS NULL OR l.created_at >= $2)
               AND ($3::timestamptz IS NULL OR l.created_at < $3)",
        order = "ORDER BY l.id DESC",
        page = page,
        binds = [account_id, from, to],
    ))
}

/// An account's live holds, newest first: a card's own, or those a capture would pay a
/// merchant's account.
pub async fn live_holds(pool: &PgPool, account_id: Uuid) -> sqlx::Result<Vec<HoldRow>> {
    sqlx::query_as(&format!(
        "{SELECT_HOLD} WHERE status = 'held' AND (debit_account_id = $1 OR credit_account_id = $1)
         ORDER BY created_at DESC LIMIT 100"
    ))
    .bind(account_id)
    .fetch_all(pool)
    .await
}

/// The outcome of [`reconcile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    pub journal_sum: i64,
    pub postings: i64,
    pub journal_lines: i64,
    pub accounts: i64,
    pub unbalanced_postings: i64,
    pub mismatches: Vec<(Uuid, i64, i64)>,
    pub negative_card_balances: i64,
    /// Accounts whose `held` is not the sum of their live holds.
    pub held_mismatches: i64,
}

impl Reconciliation {
    /// Whether the books are consistent.
    pub fn balanced(&self) -> bool {
        self.journal_sum == 0
            && self.unbalanced_postings == 0
            && self.mismatches.is_empty()
            && self.negative_card_balances == 0
            && self.held_mismatches == 0
    }
}

/// Checks the books in one consistent snapshot (also the `saldo-service reconcile` command).
pub async fn reconcile(pool: &PgPool) -> sqlx::Result<Reconciliation> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let (journal_sum, journal_lines): (i64, i64) =
        sqlx::query_as("SELECT COALESCE(sum(amount), 0)::bigint, count(*) FROM journal_lines")
            .fetch_one(&mut *tx)
            .await?;
    let (postings, accounts, negative_card_balances): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM postings),
                (SELECT count(*) FROM accounts),
                (SELECT count(*) FROM accounts WHERE kind <> 'system' AND balance < 0)",
    )
    .fetch_one(&mut *tx)
    .await?;
    // A posted posting has two or three lines (a fee leg) summing to zero — at least two, as
    // only a leg that comes to zero writes none; a rejected one has none.
    let unbalanced_postings: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM postings p
         LEFT JOIN (SELECT posting_id, sum(amount) AS total, count(*) AS lines
                    FROM journal_lines GROUP BY posting_id) l ON l.posting_id = p.id
         WHERE (p.status = 'posted' AND (l.lines IS NULL OR l.lines < 2 OR l.total <> 0))
            OR (p.status = 'rejected' AND l.lines IS NOT NULL)",
    )
    .fetch_one(&mut *tx)
    .await?;
    let mismatches: Vec<(Uuid, i64, i64)> = sqlx::query_as(
        "SELECT a.id, a.balance, COALESCE(l.total, 0)::bigint
         FROM accounts a
         LEFT JOIN (SELECT account_id, sum(amount) AS total FROM journal_lines
                    GROUP BY account_id) l ON l.account_id = a.id
         WHERE a.balance <> COALESCE(l.total, 0)
         ORDER BY a.id LIMIT 100",
    )
    .fetch_all(&mut *tx)
    .await?;
    let held_mismatches: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM accounts a
         LEFT JOIN (SELECT debit_account_id, sum(amount) AS total FROM holds
                    WHERE status = 'held' GROUP BY debit_account_id) h
                ON h.debit_account_id = a.id
         WHERE a.held <> COALESCE(h.total, 0)",
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let report = Reconciliation {
        held_mismatches,
        journal_sum,
        postings,
        journal_lines,
        accounts,
        unbalanced_postings,
        mismatches,
        negative_card_balances,
    };
    metrics::gauge!("ledger_reconcile_balanced").set(if report.balanced() { 1.0 } else { 0.0 });
    Ok(report)
}
