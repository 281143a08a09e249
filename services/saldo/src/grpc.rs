//! The gRPC layer of the saldo service.

use platform::pagination::Page;
use platform::{FieldViolation, parse_uuid};
use proto::saldo::v1 as pb;
use tonic::{Request, Response, Status};

use crate::adjustments::{AdjustmentRequest, AdjustmentRow};
use crate::error::SaldoError;
use crate::holds::{CaptureRequest, HoldRequest, HoldRow, RELEASE_REASONS};
use crate::ledger::{AccountRef, FeeLeg, KINDS, PostingRequest, PostingRow};
use crate::service::{AccountFilter, AccountRow, LineRow, Saldo, StatementOf};

/// Implements `SaldoService`.
#[derive(Clone)]
pub struct Handlers {
    saldo: Saldo,
}

impl Handlers {
    pub fn new(saldo: Saldo) -> Self {
        Self { saldo }
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<platform::auth::Principal, Status> {
        Ok(self.saldo.authenticator().require(request).await?)
    }
}

fn account_ref(field: &str, side: Option<&pb::AccountRef>) -> Result<AccountRef, FieldViolation> {
    match side.and_then(|s| s.target.as_ref()) {
        Some(pb::account_ref::Target::CardId(id)) => Ok(AccountRef::Card(parse_uuid(field, id)?)),
        Some(pb::account_ref::Target::MerchantId(id)) => {
            Ok(AccountRef::Merchant(parse_uuid(field, id)?))
        }
        Some(pb::account_ref::Target::System(purpose))
            if !purpose.is_empty()
                && purpose.len() <= 64
                && purpose.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || ":-_ ".contains(c)
                }) =>
        {
            Ok(AccountRef::System(purpose.clone()))
        }
        Some(pb::account_ref::Target::System(_)) => Err(FieldViolation::new(
            field,
            "system purpose must be 1-64 lower-case letters, digits, ':', '-', '_' or spaces",
        )),
        None => Err(FieldViolation::new(field, "is required")),
    }
}

fn posting_request(
    caller: &platform::auth::Principal,
    r: pb::PostRequest,
) -> Result<PostingRequest, SaldoError> {
    let effective_at = platform::time::effective_at(caller, r.effective_at.as_ref())?;
    let mut violations = Vec::new();
    let id = parse_uuid("posting_id", &r.posting_id).map_err(|v| violations.push(v));
    if !KINDS.contains(&r.kind.as_str()) {
        violations.push(FieldViolation::new(
            "kind",
            format!("must be one of {}", KINDS.join(", ")),
        ));
    }
    let debit = account_ref("debit", r.debit.as_ref()).map_err(|v| violations.push(v));
    let credit = account_ref("credit", r.credit.as_ref()).map_err(|v| violations.push(v));
    check_money(r.amount, Some(&r.currency), &r.description, &mut violations);
    let fee = fee_leg(r.fee.as_ref(), r.amount).map_err(|v| violations.push(v));
    match (id, debit, credit, fee) {
        (Ok(id), Ok(debit), Ok(credit), Ok(fee)) if violations.is_empty() => {
            if debit == credit {
                return Err(FieldViolation::new("credit", "must differ from debit").into());
            }
            if fee
                .as_ref()
                .is_some_and(|f| f.account == debit || f.account == credit)
            {
                return Err(FieldViolation::new(
                    "fee.account",
                    "must differ from debit and credit",
                )
                .into());
            }
            Ok(PostingRequest {
                id,
                kind: r.kind,
                debit,
                credit,
                amount: r.amount,
                currency: r.currency,
                description: r.description,
                effective_at,
                fee,
            })
        }
        _ => Err(SaldoError::Invalid(violations)),
    }
}

/// Amount, currency (absent: the hold's, for a capture) and description of a request.
fn check_money(
    amount: i64,
    currency: Option<&str>,
    description: &str,
    v: &mut Vec<FieldViolation>,
) {
    if amount <= 0 {
        v.push(FieldViolation::new("amount", "must be positive"));
    }
    if currency.is_some_and(|c| c.len() != 3 || !c.chars().all(|c| c.is_ascii_uppercase())) {
        v.push(FieldViolation::new("currency", "must be an ISO 4217 code"));
    }
    if description.len() > 200 {
        v.push(FieldViolation::new("description", "at most 200 characters"));
    }
}

/// The optional fee leg of a posting of `amount`.
fn fee_leg(fee: Option<&pb::Fee>, amount: i64) -> Result<Option<FeeLeg>, FieldViolation> {
    let Some(fee) = fee else {
        return Ok(None);
    };
    let account = account_ref("fee.account", fee.account.as_ref())?;
    if fee.amount == 0 || fee.amount.unsigned_abs() > amount.unsigned_abs() {
        return Err(FieldViolation::new(
            "fee.amount",
            "must be non-zero and at most the posting's amount in size",
        ));
    }
    Ok(Some(FeeLeg {
        account,
        amount: fee.amount,
    }))
}

fn hold_request(r: pb::HoldRequest) -> Result<HoldRequest, SaldoError> {
    let mut violations = Vec::new();
    let id = parse_uuid("hold_id", &r.hold_id).map_err(|v| violations.push(v));
    let debit = match account_ref("debit", r.debit.as_ref()) {
        Ok(AccountRef::Card(card)) => Some(AccountRef::Card(card)),
        Ok(_) => {
            violations.push(FieldViolation::new("debit", "must be a card"));
            None
        }
        Err(v) => {
            violations.push(v);
            None
        }
    };
    let credit = account_ref("credit", r.credit.as_ref()).map_err(|v| violations.push(v));
    check_money(r.amount, Some(&r.currency), &r.description, &mut violations);
    match (id, debit, credit) {
        (Ok(id), Some(debit), Ok(credit)) if violations.is_empty() => Ok(HoldRequest {
            id,
            debit,
            credit,
            amount: r.amount,
            currency: r.currency,
            description: r.description,
        }),
        _ => Err(SaldoError::Invalid(violations)),
    }
}

fn capture_request(r: pb::CaptureHoldRequest) -> Result<CaptureRequest, SaldoError> {
    let mut violations = Vec::new();
    let hold_id = parse_uuid("hold_id", &r.hold_id).map_err(|v| violations.push(v));
    check_money(r.amount, None, &r.description, &mut violations);
    let fee = fee_leg(r.fee.as_ref(), r.amount).map_err(|v| violations.push(v));
    match (hold_id, fee) {
        (Ok(hold_id), Ok(fee)) if violations.is_empty() => Ok(CaptureRequest {
            hold_id,
            amount: r.amount,
            fee,
            description: r.description,
        }),
        _ => Err(SaldoError::Invalid(violations)),
    }
}

fn hold_to_proto(h: HoldRow) -> pb::HoldRecord {
    pb::HoldRecord {
        id: h.id.to_string(),
        status: h.status,
        rejection_reason: h.rejection_reason.unwrap_or_default(),
        debit_account_id: h.debit_account_id.to_string(),
        credit_account_id: h.credit_account_id.to_string(),
        amount: h.amount,
        currency: h.currency,
        description: h.description,
        captured_amount: h.captured_amount.unwrap_or_default(),
        release_reason: h.release_reason.unwrap_or_default(),
        created_at: Some(platform::time::to_proto(h.created_at)),
        settled_at: h.settled_at.map(platform::time::to_proto),
    }
}

fn posting_to_proto(p: PostingRow) -> pb::Posting {
    pb::Posting {
        id: p.id.to_string(),
        kind: p.kind,
        status: if p.status == "posted" {
            pb::PostingStatus::Posted
        } else {
            pb::PostingStatus::Rejected
        } as i32,
        rejection: p
            .rejection_reason
            .as_deref()
            .and_then(pb::Rejection::from_code)
            .unwrap_or(pb::Rejection::Unspecified) as i32,
        rejection_reason: p.rejection_reason.unwrap_or_default(),
        debit_account_id: p.debit_account_id.to_string(),
        credit_account_id: p.credit_account_id.to_string(),
        amount: p.amount,
        currency: p.currency,
        description: p.description,
        debit_balance_after: p.debit_balance_after.unwrap_or_default(),
        credit_balance_after: p.credit_balance_after.unwrap_or_default(),
        created_at: Some(platform::time::to_proto(p.created_at)),
        fee_account_id: p
            .fee_account_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        fee_amount: p.fee_amount.unwrap_or_default(),
        fee_balance_after: p.fee_balance_after.unwrap_or_default(),
    }
}

fn kind_to_proto(kind: &str) -> pb::AccountKind {
    match kind {
        "card" => pb::AccountKind::Card,
        "system" => pb::AccountKind::System,
        "merchant" => pb::AccountKind::Merchant,
        _ => pb::AccountKind::Unspecified,
    }
}

fn account_to_proto(a: AccountRow) -> pb::Account {
    pb::Account {
        id: a.id.to_string(),
        kind: kind_to_proto(&a.kind) as i32,
        card_id: a.card_id.map(|id| id.to_string()).unwrap_or_default(),
        merchant_id: a.merchant_id.map(|id| id.to_string()).unwrap_or_default(),
        owner_user_id: a.owner_user_id.map(|id| id.to_string()).unwrap_or_default(),
        code: a.code.unwrap_or_default(),
        currency: a.currency,
        balance: a.balance,
        held: a.held,
        available: a.balance - a.held,
        open: a.is_open,
        created_at: Some(platform::time::to_proto(a.created_at)),
        updated_at: Some(platform::time::to_proto(a.updated_at)),
    }
}

fn line_to_proto(l: LineRow) -> pb::StatementLine {
    pb::StatementLine {
        line_id: l.id,
        posting_id: l.posting_id.to_string(),
        kind: l.kind,
        amount: l.amount,
        balance_after: l.balance_after,
        description: l.description,
        counterparty_account_id: l.counterparty.map(|id| id.to_string()).unwrap_or_default(),
        created_at: Some(platform::time::to_proto(l.created_at)),
        gross: l.gross,
        fee: l.gross - l.amount,
    }
}

#[tonic::async_trait]
impl pb::saldo_service_server::SaldoService for Handlers {
    async fn post(
        &self,
        request: Request<pb::PostRequest>,
    ) -> Result<Response<pb::Posting>, Status> {
        let caller = self.caller(&request).await?;
        let posting = posting_request(&caller, request.into_inner())?;
        Ok(Response::new(posting_to_proto(
            self.saldo.post(&caller, &posting).await?,
        )))
    }

    async fn get_posting(
        &self,
        request: Request<pb::PostingIdRequest>,
    ) -> Result<Response<pb::Posting>, Status> {
        let caller = self.caller(&request).await?;
        let id =
            parse_uuid("posting_id", &request.get_ref().posting_id).map_err(SaldoError::from)?;
        Ok(Response::new(posting_to_proto(
            self.saldo.posting(&caller, id).await?,
        )))
    }

    async fn get_card_account(
        &self,
        request: Request<pb::CardAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let caller = self.caller(&request).await?;
        let id = parse_uuid("card_id", &request.get_ref().card_id).map_err(SaldoError::from)?;
        Ok(Response::new(account_to_proto(
            self.saldo.card_account(&caller, id).await?,
        )))
    }

    async fn get_merchant_account(
        &self,
        request: Request<pb::MerchantAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let caller = self.caller(&request).await?;
        let id =
            parse_uuid("merchant_id", &request.get_ref().merchant_id).map_err(SaldoError::from)?;
        Ok(Response::new(account_to_proto(
            self.saldo.merchant_account(&caller, id).await?,
        )))
    }

    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let page = Page::from_proto(r.page.as_ref()).map_err(SaldoError::from)?;
        let kind = match pb::AccountKind::try_from(r.kind) {
            Ok(pb::AccountKind::Card) => Some("card".to_owned()),
            Ok(pb::AccountKind::System) => Some("system".to_owned()),
            Ok(pb::AccountKind::Merchant) => Some("merchant".to_owned()),
            _ => None,
        };
        let owner = if r.owner_user_id.is_empty() {
            None
        } else {
            Some(parse_uuid("owner_user_id", &r.owner_user_id).map_err(SaldoError::from)?)
        };
        let filter = AccountFilter {
            kind,
            owner,
            min_balance: (r.min_balance != 0).then_some(r.min_balance),
        };
        let (accounts, total) = self.saldo.list_accounts(&caller, filter, page).await?;
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: accounts.into_iter().map(account_to_proto).collect(),
            page_info: Some(page.info(total)),
        }))
    }

    async fn get_statement(
        &self,
        request: Request<pb::StatementRequest>,
    ) -> Result<Response<pb::StatementResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let owner = if r.merchant_id.is_empty() {
            StatementOf::Card(parse_uuid("card_id", &r.card_id).map_err(SaldoError::from)?)
        } else {
            StatementOf::Merchant(
                parse_uuid("merchant_id", &r.merchant_id).map_err(SaldoError::from)?,
            )
        };
        let page = Page::from_proto(r.page.as_ref()).map_err(SaldoError::from)?;
        let (from, to) = platform::time::range_from_proto(r.from.as_ref(), r.to.as_ref())
            .map_err(SaldoError::from)?;
        let (account, lines, total, holds) =
            self.saldo.statement(&caller, owner, from, to, page).await?;
        Ok(Response::new(pb::StatementResponse {
            account: Some(account_to_proto(account)),
            lines: lines.into_iter().map(line_to_proto).collect(),
            page_info: Some(page.info(total)),
            holds: holds.into_iter().map(hold_to_proto).collect(),
        }))
    }

    async fn reconcile(
        &self,
        request: Request<pb::ReconcileRequest>,
    ) -> Result<Response<pb::ReconcileReport>, Status> {
        let caller = self.caller(&request).await?;
        let report = self.saldo.reconcile(&caller).await?;
        Ok(Response::new(pb::ReconcileReport {
            balanced: report.balanced(),
            journal_sum: report.journal_sum,
            postings: u64::try_from(report.postings).unwrap_or(0),
            journal_lines: u64::try_from(report.journal_lines).unwrap_or(0),
            accounts: u64::try_from(report.accounts).unwrap_or(0),
            unbalanced_postings: u64::try_from(report.unbalanced_postings).unwrap_or(0),
            mismatches: report
                .mismatches
                .into_iter()
                .map(|(id, cached, journal)| pb::AccountMismatch {
                    account_id: id.to_string(),
                    cached_balance: cached,
                    journal_balance: journal,
                })
                .collect(),
            negative_card_balances: u64::try_from(report.negative_card_balances).unwrap_or(0),
            held_mismatches: u64::try_from(report.held_mismatches).unwrap_or(0),
        }))
    }

    async fn hold(
        &self,
        request: Request<pb::HoldRequest>,
    ) -> Result<Response<pb::HoldRecord>, Status> {
        let caller = self.caller(&request).await?;
        let hold = hold_request(request.into_inner())?;
        Ok(Response::new(hold_to_proto(
            self.saldo.hold(&caller, &hold).await?,
        )))
    }

    async fn capture_hold(
        &self,
        request: Request<pb::CaptureHoldRequest>,
    ) -> Result<Response<pb::Posting>, Status> {
        let caller = self.caller(&request).await?;
        let capture = capture_request(request.into_inner())?;
        Ok(Response::new(posting_to_proto(
            self.saldo.capture(&caller, &capture).await?,
        )))
    }

    async fn release_hold(
        &self,
        request: Request<pb::ReleaseHoldRequest>,
    ) -> Result<Response<pb::HoldRecord>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let id = parse_uuid("hold_id", &r.hold_id).map_err(SaldoError::from)?;
        if !RELEASE_REASONS.contains(&r.reason.as_str()) {
            return Err(SaldoError::from(FieldViolation::new(
                "reason",
                format!("must be one of {}", RELEASE_REASONS.join(", ")),
            ))
            .into());
        }
        Ok(Response::new(hold_to_proto(
            self.saldo.release(&caller, id, &r.reason).await?,
        )))
    }

    async fn adjust(
        &self,
        request: Request<pb::AdjustRequest>,
    ) -> Result<Response<pb::Adjustment>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let adjustment = AdjustmentRequest::parse(
            &r.card_id,
            &r.direction,
            r.amount,
            &r.reason,
            &r.idempotency_key,
        )?;
        Ok(Response::new(adjustment_to_proto(
            self.saldo.adjust(&caller, adjustment).await?,
        )))
    }

    async fn list_adjustments(
        &self,
        request: Request<pb::ListAdjustmentsRequest>,
    ) -> Result<Response<pb::ListAdjustmentsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let card_id = if r.card_id.is_empty() {
            None
        } else {
            Some(parse_uuid("card_id", &r.card_id).map_err(SaldoError::from)?)
        };
        let adjustments = self.saldo.adjustments(&caller, card_id).await?;
        Ok(Response::new(pb::ListAdjustmentsResponse {
            adjustments: adjustments.into_iter().map(adjustment_to_proto).collect(),
        }))
    }
}

fn adjustment_to_proto(a: AdjustmentRow) -> pb::Adjustment {
    pb::Adjustment {
        id: a.id.to_string(),
        card_id: a.card_id.to_string(),
        direction: a.direction.as_str().to_owned(),
        amount: a.amount,
        currency: a.currency,
        reason: a.reason,
        requested_by: a.requested_by,
        status: a.status,
        rejection_reason: a.rejection_reason.unwrap_or_default(),
        created_at: Some(platform::time::to_proto(a.created_at)),
    }
}
