//! The demo history: one operation (top-up, withdraw, transfer, payment with its refund) per
//! planned event, applied month by month through the services with its own past time and
//! idempotency key, so a resumed run skips the months already seeded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use super::{Clients, DemoCard, DemoMerchant, ts};

#[derive(Clone, Debug)]
pub(super) enum Op {
    Topup {
        card: DemoCard,
        amount: i64,
        method: &'static str,
        at: DateTime<Utc>,
        key: String,
    },
    Withdraw {
        card: DemoCard,
        amount: i64,
        method: &'static str,
        at: DateTime<Utc>,
        key: String,
    },
    Transfer {
        from: DemoCard,
        to: DemoCard,
        amount: i64,
        at: DateTime<Utc>,
        key: String,
    },
    Payment {
        card: DemoCard,
        merchant: DemoMerchant,
        amount: i64,
        method: &'static str,
        at: DateTime<Utc>,
        key: String,
        refund: Option<i64>,
    },
}

impl Op {
    pub(super) fn at(&self) -> DateTime<Utc> {
        match self {
            Self::Topup { at, .. }
            | Self::Withdraw { at, .. }
            | Self::Transfer { at, .. }
            | Self::Payment { at, .. } => *at,
        }
    }
}

/// A card number no card has: no brand this platform issues starts with 0.
const UNISSUED: &str = "0000000000000000";

/// The operation that marks its month finished: the month's last transfer. `run_month` applies
/// it only after every other operation of the month completed.
fn marker(ops: &[Op]) -> Option<usize> {
    ops.iter().rposition(|op| matches!(op, Op::Transfer { .. }))
}

/// Whether an earlier run finished the month of `ops`: its marker's idempotency key is taken.
/// Asked without moving anything: the marker's transfer again, but from a card no one holds.
/// A taken key is answered first, IDEMPOTENCY_KEY_REUSED, whatever the cards; a free one fails
/// on the unknown card, CARD_NOT_FOUND, and records nothing. (The probe used to be the month's
/// last operation itself: when the key was free it happened, ahead of its month, so a resumed
/// run that was stopped again left its unfinished month looking finished.)
pub(super) async fn month_done(c: &Clients, ops: &[Op]) -> anyhow::Result<bool> {
    let Some(Op::Transfer {
        to,
        amount,
        at,
        key,
        ..
    }) = marker(ops).map(|i| &ops[i])
    else {
        return Ok(false);
    };
    let probe = c
        .transfers
        .clone()
        .create_transfer(c.request(proto::transfer::v1::CreateTransferRequest {
            idempotency_key: key.clone(),
            from_card_number: UNISSUED.into(),
            to_card_number: to.number.clone(),
            amount: *amount,
            effective_at: ts(*at),
        })?)
        .await;
    match probe {
        Ok(_) => anyhow::bail!("a transfer from the unissued card {UNISSUED} was accepted"),
        Err(s) => match platform::error::status_reason(&s).as_deref() {
            Some("IDEMPOTENCY_KEY_REUSED") => Ok(true),
            Some("CARD_NOT_FOUND") => Ok(false),
            _ => Err(s.into()),
        },
    }
}

/// Runs a month's operations: every one but its marker in time order, then the marker, so a
/// run stopped anywhere in the month leaves the marker's key free (see `month_done`).
pub(super) async fn run_month(
    c: &Clients,
    mut ops: Vec<Op>,
    concurrency: usize,
    done: &Arc<AtomicU64>,
    planned_failures: &Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let marker = marker(&ops).map(|i| ops.remove(i));
    run_ops(c, ops, concurrency, done, planned_failures).await?;
    run_ops(c, marker.into_iter().collect(), 1, done, planned_failures).await
}

/// Runs `ops` in time order, `concurrency` at a time. Business refusals (insufficient funds:
/// the demo spends randomly) are part of the data; anything else stops the run.
async fn run_ops(
    c: &Clients,
    ops: Vec<Op>,
    concurrency: usize,
    done: &Arc<AtomicU64>,
    planned_failures: &Arc<AtomicU64>,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let results = futures::stream::iter(ops.into_iter().map(|op| {
        let c = c.clone();
        async move { apply(&c, op).await }
    }))
    .buffered(concurrency)
    .collect::<Vec<_>>()
    .await;
    for result in results {
        match result {
            Ok(()) => {}
            Err(e) => match e.downcast_ref::<tonic::Status>() {
                Some(s)
                    if matches!(
                        platform::error::status_reason(s).as_deref(),
                        Some(
                            "INSUFFICIENT_FUNDS"
                                | "IDEMPOTENCY_KEY_REUSED"
                                | "REFUND_EXCEEDS_PAYMENT"
                        )
                    ) =>
                {
                    planned_failures.fetch_add(1, Ordering::Relaxed);
                }
                _ => return Err(e),
            },
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Waits until the payment provider decided a top-up or a withdrawal (its callback or the
/// status poller): the month's later operations spend that money. `fetch` reads the record's
/// (status, failure reason, provider code) again. A declined one is an error: the sandbox
/// provider approves demo operations.
async fn settled<F, Fut>(what: &str, id: &str, mut status: i32, fetch: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(i32, String, String)>>,
{
    use proto::common::v1::MovementStatus;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let (mut reason, mut code) = (String::new(), String::new());
    // From 25 ms doubling to 400 ms: a provider decides most in well under a second, and the
    // large seed has dozens pending at once (polling each every 25 ms was thousands of reads/s).
    let mut pause = std::time::Duration::from_millis(25);
    while status == MovementStatus::Pending as i32 {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{what} {id} still pending at its provider after 120 s"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(400));
        (status, reason, code) = fetch().await?;
    }
    anyhow::ensure!(
        status == MovementStatus::Succeeded as i32,
        "{what} {id} failed at its provider: {reason} {code}"
    );
    Ok(())
}

pub(super) async fn apply(c: &Clients, op: Op) -> anyhow::Result<()> {
    match op {
        Op::Topup {
            card,
            amount,
            method,
            at,
            key,
        } => {
            let topup = c
                .topups
                .clone()
                .create_topup(c.request(proto::topup::v1::CreateTopupRequest {
                    idempotency_key: key,
                    card_number: card.number,
                    method: method.into(),
                    amount,
                    effective_at: ts(at),
                })?)
                .await?
                .into_inner();
            settled("top-up", &topup.id, topup.status, || async {
                let t = c
                    .topups
                    .clone()
                    .get_topup(c.request(proto::topup::v1::TopupIdRequest {
                        id: topup.id.clone(),
                    })?)
                    .await?
                    .into_inner();
                Ok((t.status, t.failure_reason, t.provider_failure_code))
            })
            .await?;
        }
        Op::Withdraw {
            card,
            amount,
            method,
            at,
            key,
        } => {
            let withdraw = c
                .withdraws
                .clone()
                .create_withdraw(c.request(proto::withdraw::v1::CreateWithdrawRequest {
                    idempotency_key: key,
                    card_number: card.number,
                    method: method.into(),
                    amount,
                    effective_at: ts(at),
                })?)
                .await?
                .into_inner();
            settled("withdrawal", &withdraw.id, withdraw.status, || async {
                let w = c
                    .withdraws
                    .clone()
                    .get_withdraw(c.request(proto::withdraw::v1::WithdrawIdRequest {
                        id: withdraw.id.clone(),
                    })?)
                    .await?
                    .into_inner();
                Ok((w.status, w.failure_reason, w.provider_failure_code))
            })
            .await?;
        }
        Op::Transfer {
            from,
            to,
            amount,
            at,
            key,
        } => {
            c.transfers
                .clone()
                .create_transfer(c.request(proto::transfer::v1::CreateTransferRequest {
                    idempotency_key: key,
                    from_card_number: from.number,
                    to_card_number: to.number,
                    amount,
                    effective_at: ts(at),
                })?)
                .await?;
        }
        Op::Payment {
            card,
            merchant,
            amount,
            method,
            at,
            key,
            refund,
        } => {
            let payment = c
                .payments
                .clone()
                .create_payment(c.request(proto::transaction::v1::CreatePaymentRequest {
                    api_key: merchant.key.clone(),
                    idempotency_key: key.clone(),
                    card_number: card.number,
                    cvv: card.cvv,
                    amount,
                    method: method.into(),
                    description: "demo order".into(),
                    capture_method: String::new(),
                    effective_at: ts(at),
                })?)
                .await?
                .into_inner();
            if let Some(refund) = refund.filter(|r| *r > 0) {
                c.payments
                    .clone()
                    .create_refund(
                        c.request(proto::transaction::v1::CreateRefundRequest {
                            api_key: merchant.key,
                            idempotency_key: format!("{key}-refund"),
                            payment_id: payment.id,
                            amount: refund,
                            reason: "demo: item returned".into(),
                            effective_at: ts(at
                                + chrono::Duration::hours(26)
                                    .min(Utc::now() - at - chrono::Duration::minutes(1))),
                        })?,
                    )
                    .await?;
            }
        }
    }
    Ok(())
}
