//! The read side of the ledger (its SQL is [`crate::repo`]'s) and the authorization of every
//! RPC.

use chrono::{DateTime, Utc};
use platform::auth::{Authenticator, Principal};
use platform::pagination::Page;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::SaldoError;
use crate::holds::{CaptureRequest, HoldRequest, HoldRow};
use crate::ledger::{Ledger, PostingRequest, PostingRow};
use crate::repo;
pub use crate::repo::{AccountRow, LineRow, Reconciliation};

pub const SALDO_POST: &str = "saldo.post";
pub const SALDO_READ: &str = "saldo.read";
pub const SALDO_RECONCILE: &str = "saldo.reconcile";

/// Whose statement.
#[derive(Clone, Copy, Debug)]
pub enum StatementOf {
    Card(Uuid),
    Merchant(Uuid),
}

/// Filters of the account list.
#[derive(Debug, Default)]
pub struct AccountFilter {
    pub kind: Option<String>,
    pub owner: Option<Uuid>,
    pub min_balance: Option<i64>,
}

/// The saldo service.
#[derive(Clone)]
pub struct Saldo {
    pub(crate) pool: PgPool,
    pub(crate) ledger: Ledger,
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
        caller.require(SALDO_POST)?;
        self.ledger.post(request).await
    }

    pub async fn hold(
        &self,
        caller: &Principal,
        request: &HoldRequest,
    ) -> Result<HoldRow, SaldoError> {
        caller.require(SALDO_POST)?;
        self.ledger.hold(request).await
    }

    pub async fn capture(
        &self,
        caller: &Principal,
        request: &CaptureRequest,
    ) -> Result<PostingRow, SaldoError> {
        caller.require(SALDO_POST)?;
        self.ledger.capture(request).await
    }

    pub async fn release(
        &self,
        caller: &Principal,
        hold_id: Uuid,
        reason: &str,
    ) -> Result<HoldRow, SaldoError> {
        caller.require(SALDO_POST)?;
        self.ledger.release(hold_id, reason).await
    }

    pub async fn posting(&self, caller: &Principal, id: Uuid) -> Result<PostingRow, SaldoError> {
        if !caller.has(SALDO_POST) {
            caller.require(SALDO_READ)?;
        }
        repo::posting(&self.pool, id)
            .await?
            .ok_or(SaldoError::PostingNotFound)
    }

    /// The card's account, if the caller owns it or may read the ledger.
    pub async fn card_account(
        &self,
        caller: &Principal,
        card_id: Uuid,
    ) -> Result<AccountRow, SaldoError> {
        let account = repo::card_account(&self.pool, card_id)
            .await?
            .ok_or_else(|| SaldoError::AccountNotFound(card_id.to_string()))?;
        if account.owner_user_id.is_some() && account.owner_user_id == caller.user_id()
            || caller.has(SALDO_READ)
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
        let account = repo::merchant_account(&self.pool, merchant_id)
            .await?
            .ok_or_else(|| SaldoError::AccountNotFound(format!("merchant {merchant_id}")))?;
        if account.owner_user_id.is_some() && account.owner_user_id == caller.user_id()
            || caller.has(SALDO_READ)
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
            caller.require(SALDO_READ)?;
        }
        Ok(repo::accounts(&self.pool, &filter, page).await?)
    }

    /// The account's journal lines in `[from, to)`, newest first, and its live holds.
    pub async fn statement(
        &self,
        caller: &Principal,
        owner: StatementOf,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        page: Page,
    ) -> Result<(AccountRow, Vec<LineRow>, i64, Vec<HoldRow>), SaldoError> {
        let account = match owner {
            StatementOf::Card(id) => self.card_account(caller, id).await?,
            StatementOf::Merchant(id) => self.merchant_account(caller, id).await?,
        };
        let (lines, total) = repo::statement(&self.pool, account.id, from, to, page).await?;
        let holds = repo::live_holds(&self.pool, account.id).await?;
        Ok((account, lines, total, holds))
    }

    pub async fn reconcile(&self, caller: &Principal) -> Result<Reconciliation, SaldoError> {
        caller.require(SALDO_RECONCILE)?;
        Ok(repo::reconcile(&self.pool).await?)
    }
}
