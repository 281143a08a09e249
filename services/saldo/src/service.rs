//! The read side of the ledger and the authorization of every RPC.

use chrono::{DateTime, Utc};
use platform::auth::{Authenticator, Principal};
use platform::pagination::Page;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::SaldoError;
use crate::ledger::{Ledger, PostingRequest, PostingRow, SELECT_POSTING};

pub const LEDGER_POST: &str = "ledger.post";
pub const LEDGER_READ: &str = "ledger.read";
pub const LEDGER_RECONCILE: &str = "ledger.reconcile";

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
    pub is_open: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SELECT_ACCOUNT: &str =
    "SELECT id, kind, card_id, merchant_id, owner_user_id, code, currency, balance,
        is_open, created_at, updated_at FROM accounts";

/// Whose statement.
#[derive(Clone, Copy, Debug)]
pub enum StatementOf {
    Card(Uuid),
    Merchant(Uuid),
}

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
}

/// Filters of the account list.
#[derive(Debug, Default)]
pub struct AccountFilter {
    pub kind: Option<String>,
    pub owner: Option<Uuid>,
    pub min_balance: Option<i64>,
}

/// The outcome of [`Saldo::reconcile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    pub journal_sum: i64,
    pub postings: i64,
    pub journal_lines: i64,
    pub accounts: i64,
    pub unbalanced_postings: i64,
    pub mismatches: Vec<(Uuid, i64, i64)>,
    pub negative_card_balances: i64,
}

impl Reconciliation {
    /// Whether the books are consistent.
    pub fn balanced(&self) -> bool {
        self.journal_sum == 0
            && self.unbalanced_postings == 0
            && self.mismatches.is_empty()
            && self.negative_card_balances == 0
    }
}

/// The saldo service.
#[derive(Clone)]
pub struct Saldo {
    pool: PgPool,
    ledger: Ledger,
    authenticator: Authenticator,
}

impl Saldo {
    pub fn new(pool: PgPool, authenticator: Authenticator) -> Self {
        Self {
            ledger: Ledger::new(pool.clone()),
            pool,
            authenticator,
        }
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.authenticator
    }

    pub async fn post(
        &self,
        caller: &Principal,
        request: &PostingRequest,
    ) -> Result<PostingRow, SaldoError> {
        caller.require(LEDGER_POST)?;
        self.ledger.post(request).await
    }

    pub async fn posting(&self, caller: &Principal, id: Uuid) -> Result<PostingRow, SaldoError> {
        if !caller.has(LEDGER_POST) {
            caller.require(LEDGER_READ)?;
        }
        sqlx::query_as(&format!("{SELECT_POSTING} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(SaldoError::PostingNotFound)
    }

    /// The card's account, if the caller owns it or may read the ledger.
    pub async fn card_account(
        &self,
        caller: &Principal,
        card_id: Uuid,
    ) -> Result<AccountRow, SaldoError> {
        let account: AccountRow = sqlx::query_as(&format!("{SELECT_ACCOUNT} WHERE card_id = $1"))
            .bind(card_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| SaldoError::AccountNotFound(card_id.to_string()))?;
        if account.owner_user_id.is_some() && account.owner_user_id == caller.user_id()
            || caller.has(LEDGER_READ)
        {
            Ok(account)
        } else {
            Err(SaldoError::AccountNotFound(card_id.to_string()))
        }
    }

    /// The merchant's settlement account, if the caller owns the merchant or may read the
    /// ledger.
    pub async fn merchant_account(
        &self,
        caller: &Principal,
        merchant_id: Uuid,
    ) -> Result<AccountRow, SaldoError> {
        let account: AccountRow = sqlx::query_as(&format!(
            "{SELECT_ACCOUNT} WHERE merchant_id = $1 ORDER BY created_at LIMIT 1"
        ))
        .bind(merchant_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| SaldoError::AccountNotFound(format!("merchant {merchant_id}")))?;
        if account.owner_user_id.is_some() && account.owner_user_id == caller.user_id()
            || caller.has(LEDGER_READ)
        {
            Ok(account)
        } else {
            Err(SaldoError::AccountNotFound(format!(
                "merchant {merchant_id}"
            )))
        }
    }

    pub async fn list_accounts(
        &self,
        caller: &Principal,
        filter: AccountFilter,
        page: Page,
    ) -> Result<(Vec<AccountRow>, i64), SaldoError> {
        let own = filter.owner.is_some() && filter.owner == caller.user_id();
        if !own {
            caller.require(LEDGER_READ)?;
        }
        let predicate = "WHERE ($1::text IS NULL OR kind = $1)
              AND ($2::uuid IS NULL OR owner_user_id = $2)
              AND ($3::bigint IS NULL OR balance >= $3)";
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM accounts {predicate}"))
            .bind(&filter.kind)
            .bind(filter.owner)
            .bind(filter.min_balance)
            .fetch_one(&self.pool)
            .await?;
        let rows = sqlx::query_as(&format!(
            "{SELECT_ACCOUNT} {predicate} ORDER BY created_at DESC, id LIMIT $4 OFFSET $5"
        ))
        .bind(&filter.kind)
        .bind(filter.owner)
        .bind(filter.min_balance)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await?;
        Ok((rows, total))
    }

    /// The card account's journal lines in `[from, to)`, newest first.
    pub async fn statement(
        &self,
        caller: &Principal,
        owner: StatementOf,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        page: Page,
    ) -> Result<(AccountRow, Vec<LineRow>, i64), SaldoError> {
        let account = match owner {
            StatementOf::Card(id) => self.card_account(caller, id).await?,
            StatementOf::Merchant(id) => self.merchant_account(caller, id).await?,
        };
        let predicate = "WHERE l.account_id = $1
              AND ($2::timestamptz IS NULL OR l.created_at >= $2)
              AND ($3::timestamptz IS NULL OR l.created_at < $3)";
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM journal_lines l {predicate}"))
                .bind(account.id)
                .bind(from)
                .bind(to)
                .fetch_one(&self.pool)
                .await?;
        let lines = sqlx::query_as(&format!(
            "SELECT l.id, l.posting_id, p.kind, l.amount, l.balance_after, p.description,
                 CASE WHEN p.debit_account_id = l.account_id THEN p.credit_account_id
                      ELSE p.debit_account_id END AS counterparty,
                 l.created_at
             FROM journal_lines l JOIN postings p ON p.id = l.posting_id
             {predicate} ORDER BY l.id DESC LIMIT $4 OFFSET $5"
        ))
        .bind(account.id)
        .bind(from)
        .bind(to)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.pool)
        .await?;
        Ok((account, lines, total))
    }

    pub async fn reconcile(&self, caller: &Principal) -> Result<Reconciliation, SaldoError> {
        caller.require(LEDGER_RECONCILE)?;
        reconcile(&self.pool).await
    }
}

/// Checks the books in one consistent snapshot (also the `saldo-service reconcile` command).
pub async fn reconcile(pool: &PgPool) -> Result<Reconciliation, SaldoError> {
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
    // A posted posting has exactly two lines summing to zero; a rejected one has none.
    let unbalanced_postings: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM postings p
         LEFT JOIN (SELECT posting_id, sum(amount) AS total, count(*) AS lines
                    FROM journal_lines GROUP BY posting_id) l ON l.posting_id = p.id
         WHERE (p.status = 'posted' AND (l.lines IS DISTINCT FROM 2 OR l.total <> 0))
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
    tx.commit().await?;
    let report = Reconciliation {
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
