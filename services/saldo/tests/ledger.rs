//! The ledger under heavy concurrency, straight against PostgreSQL: hundreds of postings
//! criss-crossing the same accounts, concurrent replays of one posting id, and reuse of an id
//! with different fields. Afterwards the books must reconcile and no money may have appeared
//! or vanished.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use saldo_service::error::SaldoError;
use saldo_service::ledger::{AccountRef, Ledger, PostingRequest};
use uuid::Uuid;

async fn ledger_with_accounts(n: usize) -> (sqlx::PgPool, Ledger, Vec<Uuid>) {
    let url = testkit::fresh_database().await.unwrap();
    let pool = platform::db::connect(&url, saldo_service::SCHEMA, 20)
        .await
        .unwrap();
    platform::db::migrate(&pool, &saldo_service::DATABASE)
        .await
        .unwrap();
    let mut cards = Vec::new();
    let mut conn = pool.acquire().await.unwrap();
    for _ in 0..n {
        let card = Uuid::now_v7();
        assert!(
            Ledger::open_card_account(&mut conn, card, Uuid::now_v7(), "IDR")
                .await
                .unwrap()
        );
        // Opening twice is a no-op.
        assert!(
            !Ledger::open_card_account(&mut conn, card, Uuid::now_v7(), "IDR")
                .await
                .unwrap()
        );
        cards.push(card);
    }
    (pool.clone(), Ledger::new(pool), cards)
}

fn transfer(from: Uuid, to: Uuid, amount: i64) -> PostingRequest {
    PostingRequest {
        id: Uuid::now_v7(),
        kind: "transfer".into(),
        debit: AccountRef::Card(from),
        credit: AccountRef::Card(to),
        amount,
        currency: "IDR".into(),
        description: String::new(),
        effective_at: None,
        fee: None,
    }
}

fn topup(card: Uuid, amount: i64) -> PostingRequest {
    PostingRequest {
        id: Uuid::now_v7(),
        kind: "topup".into(),
        debit: AccountRef::System("topup:bca".into()),
        credit: AccountRef::Card(card),
        amount,
        currency: "IDR".into(),
        description: String::new(),
        effective_at: None,
        fee: None,
    }
}

async fn card_total(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(balance), 0)::bigint FROM saldo_svc.accounts WHERE kind = 'card'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_hundred_concurrent_criss_cross_postings_keep_the_books_balanced() {
    let (pool, ledger, cards) = ledger_with_accounts(5).await;
    for card in &cards {
        assert_eq!(
            ledger.post(&topup(*card, 100_000)).await.unwrap().status,
            "posted"
        );
    }
    let cards = Arc::new(cards);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..400_usize {
        let (ledger, cards) = (ledger.clone(), cards.clone());
        tasks.spawn(async move {
            let from = n % cards.len();
            let to = (from + 1 + n / cards.len() % (cards.len() - 1)) % cards.len();
            let amount = 1_000 + (n as i64 * 6_007) % 60_000;
            ledger.post(&transfer(cards[from], cards[to], amount)).await
        });
    }
    let (mut posted, mut rejected) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        let posting = result
            .unwrap()
            .expect("no posting may fail with an error (deadlock, constraint)");
        match posting.status.as_str() {
            "posted" => posted += 1,
            "rejected" => {
                assert_eq!(
                    posting.rejection_reason.as_deref(),
                    Some("INSUFFICIENT_FUNDS")
                );
                rejected += 1;
            }
            other => panic!("status {other}"),
        }
    }
    eprintln!("posted {posted}, rejected {rejected}");
    assert!(posted > 100, "too few postings succeeded: {posted}");
    assert_eq!(card_total(&pool).await, 500_000);
    let report = saldo_service::repo::reconcile(&pool).await.unwrap();
    assert!(report.balanced(), "{report:?}");
    assert_eq!(report.postings, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_posting_id_applies_once_however_often_and_concurrently_it_is_sent() {
    let (pool, ledger, cards) = ledger_with_accounts(2).await;
    ledger.post(&topup(cards[0], 50_000)).await.unwrap();
    let request = transfer(cards[0], cards[1], 20_000);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (ledger, request) = (ledger.clone(), request.clone());
        tasks.spawn(async move { ledger.post(&request).await.unwrap() });
    }
    let mut answers = Vec::new();
    while let Some(posting) = tasks.join_next().await {
        answers.push(posting.unwrap());
    }
    assert!(
        answers
            .iter()
            .all(|p| p.id == request.id && p.status == "posted")
    );
    assert!(
        answers
            .iter()
            .all(|p| p.debit_balance_after == Some(30_000))
    );
    assert_eq!(card_total(&pool).await, 50_000);

    // The same id with another amount or another account is refused and changes nothing.
    let mut reused = request.clone();
    reused.amount = 1;
    assert!(matches!(
        ledger.post(&reused).await,
        Err(SaldoError::PostingIdReused(_))
    ));
    let mut reused = request.clone();
    reused.credit = AccountRef::System("withdraw:bca".into());
    assert!(matches!(
        ledger.post(&reused).await,
        Err(SaldoError::PostingIdReused(_))
    ));

    // A rejection is remembered too: replaying it after the money arrived is still rejected.
    let too_much = transfer(cards[1], cards[0], 25_000);
    assert_eq!(ledger.post(&too_much).await.unwrap().status, "rejected");
    ledger.post(&topup(cards[1], 100_000)).await.unwrap();
    let replay = ledger.post(&too_much).await.unwrap();
    assert_eq!(replay.status, "rejected");
    assert_eq!(
        replay.rejection_reason.as_deref(),
        Some("INSUFFICIENT_FUNDS")
    );

    // The journal is append-only, and the database refuses an overdraft on its own.
    let err = sqlx::query("UPDATE saldo_svc.journal_lines SET amount = amount * 2")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = sqlx::query("UPDATE saldo_svc.accounts SET balance = -1 WHERE card_id = $1")
        .bind(cards[0])
        .execute(&pool)
        .await
        .unwrap_err();
    // (either CHECK may report it: the balance, or the available balance below it)
    assert!(matches!(
        platform::db::check_violation(&err).as_deref(),
        Some("balance_not_negative" | "available_not_negative")
    ));

    let report = saldo_service::repo::reconcile(&pool).await.unwrap();
    assert!(report.balanced(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_notices_a_tampered_balance() {
    let (pool, ledger, cards) = ledger_with_accounts(2).await;
    ledger.post(&topup(cards[0], 10_000)).await.unwrap();
    sqlx::query("UPDATE saldo_svc.accounts SET balance = balance + 1 WHERE card_id = $1")
        .bind(cards[0])
        .execute(&pool)
        .await
        .unwrap();
    let report = saldo_service::repo::reconcile(&pool).await.unwrap();
    assert!(!report.balanced());
    assert_eq!(report.mismatches.len(), 1);
    assert_eq!(report.mismatches[0].1, 10_001);
    assert_eq!(report.mismatches[0].2, 10_000);
}
