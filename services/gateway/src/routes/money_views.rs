//! JSON shapes of cards, ledger accounts, statements and money movements. Amounts are
//! integers in minor units with an ISO 4217 currency.

use serde::Serialize;
use utoipa::ToSchema;

use super::views::{PageView, non_empty, rfc3339};

/// A payment card.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardView {
    pub id: String,
    pub user_id: String,
    /// The full number: only in single-card responses to the owner or an admin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// `**** **** **** 4242`.
    pub masked_number: String,
    pub brand: String,
    /// `debit` or `credit`.
    pub card_type: String,
    pub expiry_month: u32,
    pub expiry_year: u32,
    pub currency: String,
    /// Not trashed and not expired: money can move.
    pub usable: bool,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub deleted_at: Option<String>,
}

impl From<proto::card::v1::Card> for CardView {
    fn from(c: proto::card::v1::Card) -> Self {
        use proto::card::v1::CardType;
        Self {
            id: c.id,
            user_id: c.user_id,
            number: non_empty(c.number),
            masked_number: c.masked_number,
            brand: c.brand,
            card_type: match CardType::try_from(c.card_type) {
                Ok(CardType::Debit) => "debit",
                Ok(CardType::Credit) => "credit",
                _ => "unknown",
            }
            .to_owned(),
            expiry_month: c.expiry_month,
            expiry_year: c.expiry_year,
            currency: c.currency,
            usable: c.usable,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
            deleted_at: rfc3339(c.deleted_at),
        }
    }
}

/// A new card with its CVV, which is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedCardView {
    pub card: CardView,
    pub cvv: String,
}

/// A page of cards (numbers masked).
#[derive(Debug, Serialize, ToSchema)]
pub struct CardPage {
    pub items: Vec<CardView>,
    pub page: PageView,
}

/// A ledger account.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub id: String,
    /// `card`, `system` or `merchant`.
    pub kind: String,
    pub card_id: Option<String>,
    pub owner_user_id: Option<String>,
    /// System accounts: purpose and currency, e.g. `topup:bca:IDR`.
    pub code: Option<String>,
    pub currency: String,
    /// Minor units.
    pub balance: i64,
    /// Reserved by live authorizations (holds).
    pub held: i64,
    /// balance - held: what can be spent.
    pub available: i64,
    pub open: bool,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

impl From<proto::saldo::v1::Account> for AccountView {
    fn from(a: proto::saldo::v1::Account) -> Self {
        use proto::saldo::v1::AccountKind;
        Self {
            id: a.id,
            kind: match AccountKind::try_from(a.kind) {
                Ok(AccountKind::Card) => "card",
                Ok(AccountKind::System) => "system",
                Ok(AccountKind::Merchant) => "merchant",
                _ => "unknown",
            }
            .to_owned(),
            card_id: non_empty(a.card_id),
            owner_user_id: non_empty(a.owner_user_id),
            code: non_empty(a.code),
            currency: a.currency,
            balance: a.balance,
            held: a.held,
            available: a.available,
            open: a.open,
            created_at: rfc3339(a.created_at),
            updated_at: rfc3339(a.updated_at),
        }
    }
}

/// A page of accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountPage {
    pub items: Vec<AccountView>,
    pub page: PageView,
}

/// One journal line of a statement.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatementLineView {
    pub line_id: i64,
    /// The posting (= the topup, withdraw or transfer id).
    pub posting_id: String,
    pub kind: String,
    /// Signed: positive credits the account, negative debits it.
    pub amount: i64,
    pub balance_after: i64,
    pub description: String,
    pub counterparty_account_id: String,
    pub created_at: Option<String>,
    /// The posting's amount with this line's sign (a payment of 100 000 on a merchant's
    /// statement: gross 100 000, fee 4 900, amount 95 100).
    pub gross: i64,
    /// gross - amount: the fee the platform took (negative: a fee a refund returned).
    pub fee: i64,
}

/// A live hold: money reserved by an authorization.
#[derive(Debug, Serialize, ToSchema)]
pub struct HoldView {
    /// The hold (= the payment id).
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub description: String,
    /// The card whose money is held.
    pub debit_account_id: String,
    /// The merchant a capture pays.
    pub credit_account_id: String,
    pub created_at: Option<String>,
}

/// An account statement, newest line first, with the account's live holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatementView {
    pub account: Option<AccountView>,
    pub items: Vec<StatementLineView>,
    pub page: PageView,
    /// On a card: authorizations holding its money; on a merchant: authorizations a capture
    /// would pay it.
    pub holds: Vec<HoldView>,
}

impl From<proto::saldo::v1::StatementResponse> for StatementView {
    fn from(s: proto::saldo::v1::StatementResponse) -> Self {
        Self {
            account: s.account.map(AccountView::from),
            items: s
                .lines
                .into_iter()
                .map(|l| StatementLineView {
                    line_id: l.line_id,
                    posting_id: l.posting_id,
                    kind: l.kind,
                    amount: l.amount,
                    balance_after: l.balance_after,
                    description: l.description,
                    counterparty_account_id: l.counterparty_account_id,
                    created_at: rfc3339(l.created_at),
                    gross: l.gross,
                    fee: l.fee,
                })
                .collect(),
            page: s.page_info.into(),
            holds: s
                .holds
                .into_iter()
                .map(|h| HoldView {
                    id: h.id,
                    amount: h.amount,
                    currency: h.currency,
                    description: h.description,
                    debit_account_id: h.debit_account_id,
                    credit_account_id: h.credit_account_id,
                    created_at: rfc3339(h.created_at),
                })
                .collect(),
        }
    }
}

/// A ledger posting.
#[derive(Debug, Serialize, ToSchema)]
pub struct PostingView {
    pub id: String,
    pub kind: String,
    /// `posted` or `rejected`.
    pub status: String,
    pub rejection_reason: Option<String>,
    pub debit_account_id: String,
    pub credit_account_id: String,
    /// The gross amount: what the debited account pays before a returned fee, and the
    /// credited one receives before a taken fee.
    pub amount: i64,
    pub currency: String,
    pub description: String,
    pub created_at: Option<String>,
    /// The third leg, when there is one: the fee account and its signed share (positive:
    /// taken out of what the credited account receives; negative: returned, paying part of
    /// what the debited account pays).
    pub fee_account_id: Option<String>,
    pub fee_amount: i64,
}

impl From<proto::saldo::v1::Posting> for PostingView {
    fn from(p: proto::saldo::v1::Posting) -> Self {
        use proto::saldo::v1::PostingStatus;
        Self {
            id: p.id,
            kind: p.kind,
            status: if p.status == PostingStatus::Posted as i32 {
                "posted"
            } else {
                "rejected"
            }
            .to_owned(),
            rejection_reason: non_empty(p.rejection_reason),
            debit_account_id: p.debit_account_id,
            credit_account_id: p.credit_account_id,
            amount: p.amount,
            currency: p.currency,
            description: p.description,
            created_at: rfc3339(p.created_at),
            fee_account_id: non_empty(p.fee_account_id),
            fee_amount: p.fee_amount,
        }
    }
}

/// An account whose cached balance differs from its journal.
#[derive(Debug, Serialize, ToSchema)]
pub struct MismatchView {
    pub account_id: String,
    pub cached_balance: i64,
    pub journal_balance: i64,
}

/// The result of a ledger reconciliation.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReconcileView {
    /// Everything below checks out.
    pub balanced: bool,
    /// Sum of all journal lines (must be 0).
    pub journal_sum: i64,
    pub postings: u64,
    pub journal_lines: u64,
    pub accounts: u64,
    /// Postings whose lines do not sum to zero (must be 0).
    pub unbalanced_postings: u64,
    /// Card accounts below zero (must be 0).
    pub negative_card_balances: u64,
    /// Accounts whose held amount is not the sum of their live holds (must be 0).
    pub held_mismatches: u64,
    pub mismatches: Vec<MismatchView>,
}

impl From<proto::saldo::v1::ReconcileReport> for ReconcileView {
    fn from(r: proto::saldo::v1::ReconcileReport) -> Self {
        Self {
            balanced: r.balanced,
            journal_sum: r.journal_sum,
            postings: r.postings,
            journal_lines: r.journal_lines,
            accounts: r.accounts,
            unbalanced_postings: r.unbalanced_postings,
            negative_card_balances: r.negative_card_balances,
            held_mismatches: r.held_mismatches,
            mismatches: r
                .mismatches
                .into_iter()
                .map(|m| MismatchView {
                    account_id: m.account_id,
                    cached_balance: m.cached_balance,
                    journal_balance: m.journal_balance,
                })
                .collect(),
        }
    }
}

/// `pending`, `succeeded`, `failed`.
fn status_name(status: i32) -> String {
    use proto::common::v1::MovementStatus;
    match MovementStatus::try_from(status) {
        Ok(MovementStatus::Pending) => "pending",
        Ok(MovementStatus::Succeeded) => "succeeded",
        Ok(MovementStatus::Failed) => "failed",
        _ => "unknown",
    }
    .to_owned()
}

/// A top-up or a withdraw.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardMovementView {
    pub id: String,
    pub card_id: String,
    pub masked_card_number: String,
    pub user_id: String,
    pub method: String,
    pub amount: i64,
    pub currency: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub failure_reason: Option<String>,
    pub created_at: Option<String>,
    pub completed_at: Option<String>,
    /// Top-ups: the payment provider that took the charge, once one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Its id of the charge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_reference: Option<String>,
    /// With `failure_reason` PROVIDER_DECLINED: the provider's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_failure_code: Option<String>,
}

impl From<proto::topup::v1::Topup> for CardMovementView {
    fn from(t: proto::topup::v1::Topup) -> Self {
        Self {
            id: t.id,
            card_id: t.card_id,
            masked_card_number: t.masked_card_number,
            user_id: t.user_id,
            method: t.method,
            amount: t.amount,
            currency: t.currency,
            status: status_name(t.status),
            failure_reason: non_empty(t.failure_reason),
            created_at: rfc3339(t.created_at),
            completed_at: rfc3339(t.completed_at),
            provider: non_empty(t.provider),
            provider_reference: non_empty(t.provider_reference),
            provider_failure_code: non_empty(t.provider_failure_code),
        }
    }
}

impl From<proto::withdraw::v1::Withdraw> for CardMovementView {
    fn from(t: proto::withdraw::v1::Withdraw) -> Self {
        Self {
            id: t.id,
            card_id: t.card_id,
            masked_card_number: t.masked_card_number,
            user_id: t.user_id,
            method: t.method,
            amount: t.amount,
            currency: t.currency,
            status: status_name(t.status),
            failure_reason: non_empty(t.failure_reason),
            created_at: rfc3339(t.created_at),
            completed_at: rfc3339(t.completed_at),
            provider: non_empty(t.provider),
            provider_reference: non_empty(t.provider_reference),
            provider_failure_code: non_empty(t.provider_failure_code),
        }
    }
}

/// A page of top-ups or withdraws.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardMovementPage {
    pub items: Vec<CardMovementView>,
    pub page: PageView,
}

/// A transfer between two cards.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransferView {
    pub id: String,
    pub from_card_id: String,
    pub masked_from_card_number: String,
    pub from_user_id: String,
    pub to_card_id: String,
    pub masked_to_card_number: String,
    pub to_user_id: String,
    pub amount: i64,
    pub currency: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub failure_reason: Option<String>,
    pub created_at: Option<String>,
    pub completed_at: Option<String>,
}

impl From<proto::transfer::v1::Transfer> for TransferView {
    fn from(t: proto::transfer::v1::Transfer) -> Self {
        Self {
            id: t.id,
            from_card_id: t.from_card_id,
            masked_from_card_number: t.masked_from_card_number,
            from_user_id: t.from_user_id,
            to_card_id: t.to_card_id,
            masked_to_card_number: t.masked_to_card_number,
            to_user_id: t.to_user_id,
            amount: t.amount,
            currency: t.currency,
            status: status_name(t.status),
            failure_reason: non_empty(t.failure_reason),
            created_at: rfc3339(t.created_at),
            completed_at: rfc3339(t.completed_at),
        }
    }
}

/// A page of transfers.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransferPage {
    pub items: Vec<TransferView>,
    pub page: PageView,
}
