//! Holds and fee legs straight against PostgreSQL: a fee is a third leg of the same posting;
//! held money cannot be spent by a concurrent posting; a hold is captured or released once,
//! however many captures and releases race for it; the books reconcile afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use saldo_service::error::SaldoError;
use saldo_service::holds::{CaptureRequest, HoldRequest};
use saldo_service::ledger::{AccountRef, FeeLeg, Ledger, PostingRequest};
use uuid::Uuid;

struct Books {
    pool: sqlx::PgPool,
    ledger: Ledger,
    card: Uuid,
    merchant: Uuid,
}

/// A card with `funds`, and a merchant's settlement account.
async fn books(funds: i64) -> Books {
    let url = testkit::fresh_database().await.unwrap();
    let pool = platform::db::connect(&url, saldo_service::SCHEMA, 20)
        .await
        .unwrap();
    platform::db::migrate(&pool, &saldo_service::DATABASE)
        .await
        .unwrap();
    let (card, merchant) = (Uuid::now_v7(), Uuid::now_v7());
    let mut conn = pool.acquire().await.unwrap();
    Ledger::open_card_account(&mut conn, card, Uuid::now_v7(), "IDR")
        .await
        .unwrap();
    Ledger::open_merchant_account(&mut conn, merchant, Uuid::now_v7(), "IDR")
        .await
        .unwrap();
    let ledger = Ledger::new(pool.clone());
    let topup = posting(
        "topup",
        AccountRef::System("topup:bca".into()),
        AccountRef::Card(card),
        funds,
        None,
    );
    assert_eq!(ledger.post(&topup).await.unwrap().status, "posted");
    Books {
        pool,
        ledger,
        card,
        merchant,
    }
}

fn posting(
    kind: &str,
    debit: AccountRef,
    credit: AccountRef,
    amount: i64,
    fee: Option<i64>,
) -> PostingRequest {
    PostingRequest {
        id: Uuid::now_v7(),
        kind: kind.into(),
        debit,
        credit,
        amount,
        currency: "IDR".into(),
        description: String::new(),
        effective_at: None,
        fee: fee.map(|amount| FeeLeg {
            account: AccountRef::System("fees".into()),
            amount,
        }),
    }
}

impl Books {
    /// (balance, held) of the card, the merchant's balance, the fee account's balance.
    async fn state(&self) -> ((i64, i64), i64, i64) {
        let card: (i64, i64) =
            sqlx::query_as("SELECT balance, held FROM saldo_svc.accounts WHERE card_id = $1")
                .bind(self.card)
                .fetch_one(&self.pool)
                .await
                .unwrap();
        let merchant: i64 =
            sqlx::query_scalar("SELECT balance FROM saldo_svc.accounts WHERE merchant_id = $1")
                .bind(self.merchant)
                .fetch_one(&self.pool)
                .await
                .unwrap();
        let fees: i64 = sqlx::query_scalar(
            "SELECT COALESCE(sum(balance), 0)::bigint FROM saldo_svc.accounts
             WHERE code = 'fees:IDR'",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap();
        (card, merchant, fees)
    }

    fn hold(&self, amount: i64) -> HoldRequest {
        HoldRequest {
            id: Uuid::now_v7(),
            debit: AccountRef::Card(self.card),
            credit: AccountRef::Merchant(self.merchant),
            amount,
            currency: "IDR".into(),
            description: "authorization".into(),
        }
    }

    async fn assert_balanced(&self) {
        let report = saldo_service::repo::reconcile(&self.pool).await.unwrap();
        assert!(report.balanced(), "{report:?}");
    }
}

fn capture(hold_id: Uuid, amount: i64, fee: Option<i64>) -> CaptureRequest {
    CaptureRequest {
        hold_id,
        amount,
        fee: fee.map(|amount| FeeLeg {
            account: AccountRef::System("fees".into()),
            amount,
        }),
        description: "capture".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fee_is_a_third_leg_of_the_same_posting_and_a_refund_returns_it() {
    let b = books(150_000).await;
    // 100 000 at 2.9 % + 2 000: the card pays 100 000, the merchant gets 95 100, fees 4 900.
    let payment = posting(
        "payment",
        AccountRef::Card(b.card),
        AccountRef::Merchant(b.merchant),
        100_000,
        Some(4_900),
    );
    let posted = b.ledger.post(&payment).await.unwrap();
    assert_eq!(posted.status, "posted");
    assert_eq!(posted.fee_amount, Some(4_900));
    assert_eq!(b.state().await, ((50_000, 0), 95_100, 4_900));
    let lines: Vec<i64> = sqlx::query_scalar(
        "SELECT amount FROM saldo_svc.journal_lines WHERE posting_id = $1 ORDER BY amount",
    )
    .bind(payment.id)
    .fetch_all(&b.pool)
    .await
    .unwrap();
    assert_eq!(
        lines,
        vec![-100_000, 4_900, 95_100],
        "one posting, three lines"
    );
    // A replay changes nothing; the same id with another fee is a reuse.
    b.ledger.post(&payment).await.unwrap();
    let mut other_fee = payment.clone();
    other_fee.fee.as_mut().unwrap().amount = 4_000;
    assert!(matches!(
        b.ledger.post(&other_fee).await,
        Err(SaldoError::PostingIdReused(_))
    ));
    assert_eq!(b.state().await, ((50_000, 0), 95_100, 4_900));

    // A refund of half returns half the fee: the merchant pays 47 550, fees 2 450.
    let refund = posting(
        "refund",
        AccountRef::Merchant(b.merchant),
        AccountRef::Card(b.card),
        50_000,
        Some(-2_450),
    );
    assert_eq!(b.ledger.post(&refund).await.unwrap().status, "posted");
    assert_eq!(b.state().await, ((100_000, 0), 47_550, 2_450));
    b.assert_balanced().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_reserves_money_until_it_is_captured_in_part_or_released() {
    let b = books(100_000).await;
    let hold = b.hold(70_000);
    assert_eq!(b.ledger.hold(&hold).await.unwrap().status, "held");
    assert_eq!(b.ledger.hold(&hold).await.unwrap().status, "held", "replay");
    assert_eq!(b.state().await, ((100_000, 70_000), 0, 0));
    // Held money cannot be spent: 30 000 is available.
    let transfer = posting(
        "withdraw",
        AccountRef::Card(b.card),
        AccountRef::System("withdraw:bca".into()),
        50_000,
        None,
    );
    let rejected = b.ledger.post(&transfer).await.unwrap();
    assert_eq!(
        rejected.rejection_reason.as_deref(),
        Some("INSUFFICIENT_FUNDS")
    );
    // Nor by a second hold, nor by the database behind the ledger's back.
    let second = b.ledger.hold(&b.hold(40_000)).await.unwrap();
    assert_eq!(second.status, "rejected");
    let err = sqlx::query("UPDATE saldo_svc.accounts SET balance = 1 WHERE card_id = $1")
        .bind(b.card)
        .execute(&b.pool)
        .await
        .unwrap_err();
    assert_eq!(
        platform::db::check_violation(&err).as_deref(),
        Some("available_not_negative")
    );

    // A partial capture with a fee: 40 000 moves, the other 30 000 of the hold is released.
    let posted = b
        .ledger
        .capture(&capture(hold.id, 40_000, Some(1_000)))
        .await
        .unwrap();
    assert_eq!((posted.id, posted.amount), (hold.id, 40_000));
    assert_eq!(b.state().await, ((60_000, 0), 39_000, 1_000));
    // Capturing again with the same amount is a replay; anything else is refused.
    b.ledger
        .capture(&capture(hold.id, 40_000, Some(1_000)))
        .await
        .unwrap();
    assert!(matches!(
        b.ledger.capture(&capture(hold.id, 30_000, None)).await,
        Err(SaldoError::HoldNotHeld(s)) if s == "captured"
    ));
    assert!(matches!(
        b.ledger.release(hold.id, "voided").await,
        Err(SaldoError::HoldNotHeld(s)) if s == "captured"
    ));

    // A released hold gives its money back and cannot be captured.
    let voided = b.hold(60_000);
    b.ledger.hold(&voided).await.unwrap();
    assert_eq!(b.state().await.0, (60_000, 60_000));
    let released = b.ledger.release(voided.id, "voided").await.unwrap();
    assert_eq!(released.release_reason.as_deref(), Some("voided"));
    b.ledger.release(voided.id, "voided").await.unwrap();
    assert!(matches!(
        b.ledger.capture(&capture(voided.id, 1, None)).await,
        Err(SaldoError::HoldNotHeld(s)) if s == "released"
    ));
    assert_eq!(b.state().await, ((60_000, 0), 39_000, 1_000));
    // A capture may not exceed its hold.
    let small = b.hold(5_000);
    b.ledger.hold(&small).await.unwrap();
    assert!(matches!(
        b.ledger.capture(&capture(small.id, 5_001, None)).await,
        Err(SaldoError::Invalid(_))
    ));
    b.assert_balanced().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holds_and_postings_racing_for_the_same_money_never_both_win() {
    for _ in 0..10 {
        let b = books(100_000).await;
        let hold = b.hold(60_000);
        let spend = posting(
            "withdraw",
            AccountRef::Card(b.card),
            AccountRef::System("withdraw:bca".into()),
            60_000,
            None,
        );
        let (held, posted) = tokio::join!(b.ledger.hold(&hold), b.ledger.post(&spend));
        let (held, posted) = (held.unwrap(), posted.unwrap());
        assert!(
            (held.status == "held") != (posted.status == "posted"),
            "exactly one of them gets the money: hold {}, posting {}",
            held.status,
            posted.status
        );
        b.assert_balanced().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_captures_and_releases_of_one_hold_settle_it_once() {
    for round in 0..5 {
        let b = books(100_000).await;
        let hold = b.hold(50_000);
        b.ledger.hold(&hold).await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..8_i64 {
            let ledger = b.ledger.clone();
            tasks.spawn(async move {
                if (n + round) % 2 == 0 {
                    ledger
                        .capture(&capture(hold.id, 10_000 + n, None))
                        .await
                        .map(|p| ("captured", p.amount))
                } else {
                    ledger
                        .release(hold.id, "voided")
                        .await
                        .map(|h| ("released", h.amount))
                }
            });
        }
        let mut outcomes = Vec::new();
        while let Some(result) = tasks.join_next().await {
            match result.unwrap() {
                Ok(outcome) => outcomes.push(outcome),
                Err(SaldoError::HoldNotHeld(_)) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        let captures: Vec<_> = outcomes.iter().filter(|o| o.0 == "captured").collect();
        let ((balance, held), merchant, _) = b.state().await;
        assert_eq!(held, 0);
        if let [(_, amount)] = captures.as_slice() {
            assert!(outcomes.iter().all(|o| o.0 == "captured"), "{outcomes:?}");
            assert_eq!((balance, merchant), (100_000 - amount, *amount));
        } else {
            assert!(captures.is_empty(), "one capture at most: {outcomes:?}");
            assert_eq!((balance, merchant), (100_000, 0));
        }
        b.assert_balanced().await;
    }
}
