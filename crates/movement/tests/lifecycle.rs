//! The shared money lifecycle straight against PostgreSQL, without services: idempotent
//! replays, completing exactly once under concurrency (one outcome, one event), freeing the
//! key of a request the ledger never saw, and what recovery picks up and decides.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use movement::lifecycle::{self, Recorded, Status};
use movement::{MovementError, Outcome, Rejection};
use sqlx::PgPool;
use uuid::Uuid;

/// A minimal money record: the lifecycle columns and an amount.
#[derive(Clone, Debug, sqlx::FromRow)]
struct Widget {
    id: Uuid,
    fingerprint: Vec<u8>,
    amount: i64,
    status: Status,
    failure_reason: Option<String>,
    created_at: DateTime<Utc>,
    backdated: bool,
}

movement::recorded!(
    Widget,
    "widgets",
    "t.id, t.fingerprint, t.amount, t.status, t.failure_reason, t.created_at, t.backdated"
);

async fn schema() -> PgPool {
    let url = testkit::fresh_database().await.unwrap();
    let pool = platform::db::connect(&url, "public", 20).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE widgets (
             id UUID PRIMARY KEY,
             requested_by TEXT NOT NULL,
             idempotency_key TEXT NOT NULL,
             fingerprint BYTEA NOT NULL,
             amount BIGINT NOT NULL CHECK (amount > 0),
             status TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'succeeded', 'failed')),
             failure_reason TEXT,
             created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
             completed_at TIMESTAMPTZ,
             backdated BOOLEAN NOT NULL DEFAULT false,
             UNIQUE (requested_by, idempotency_key));",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::raw_sql(events::schema::OUTBOX)
        .execute(&pool)
        .await
        .unwrap();
    pool
}

/// Records a pending widget for `key` (created `age` ago); `None` if the key exists.
async fn record(pool: &PgPool, key: &str, amount: i64, age: Duration) -> Option<Widget> {
    sqlx::query_as(&format!(
        "INSERT INTO widgets AS t (id, requested_by, idempotency_key, fingerprint, amount,
             created_at)
         VALUES ($1, 'alice', $2, $3, $4, now() - $5::interval)
         ON CONFLICT (requested_by, idempotency_key) DO NOTHING RETURNING {}",
        Widget::COLUMNS
    ))
    .bind(Uuid::now_v7())
    .bind(key)
    .bind(lifecycle::fingerprint(&[&amount.to_string()]))
    .bind(amount)
    .bind(format!("{} seconds", age.as_secs()))
    .fetch_optional(pool)
    .await
    .unwrap()
}

fn event(widget: &Widget) -> events::Envelope {
    events::Envelope::new("test", "widget.completed", widget.id, &widget.amount).unwrap()
}

async fn complete(pool: &PgPool, widget: &Widget, outcome: Outcome) -> Option<Widget> {
    lifecycle::complete(
        "widget",
        pool,
        widget,
        &outcome,
        Utc::now(),
        "widgets",
        &event(widget),
    )
    .await
    .unwrap()
}

async fn outbox_rows(pool: &PgPool, widget: &Widget) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE partition_key = $1")
        .bind(widget.id.to_string())
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_known_key_replays_the_original_answer_and_refuses_another_request() {
    let pool = schema().await;
    let widget = record(&pool, "k1", 500, Duration::ZERO).await.unwrap();
    let same = lifecycle::fingerprint(&["500"]);
    let other = lifecycle::fingerprint(&["501"]);
    let found = || async {
        lifecycle::by_key::<Widget>(&pool, "alice", "k1")
            .await
            .unwrap()
            .unwrap()
    };

    // Still running: the same request waits, another one is refused.
    assert!(matches!(
        lifecycle::replay("widget", found().await, &same),
        Err(MovementError::KeyInProgress)
    ));
    assert!(matches!(
        lifecycle::replay("widget", found().await, &other),
        Err(MovementError::KeyReused)
    ));

    complete(&pool, &widget, Outcome::Posted).await.unwrap();
    let replayed = lifecycle::replay("widget", found().await, &same).unwrap();
    assert_eq!(
        (replayed.id, replayed.status),
        (widget.id, Status::Succeeded)
    );
    assert!(matches!(
        lifecycle::replay("widget", found().await, &other),
        Err(MovementError::KeyReused)
    ));
    // A second insert under the key is refused by the table; the winner answers.
    assert!(record(&pool, "k1", 500, Duration::ZERO).await.is_none());
    let winner: Widget = lifecycle::replay_winner("widget", &pool, "alice", "k1", &same)
        .await
        .unwrap();
    assert_eq!(winner.id, widget.id);
    // Nobody else's key is found.
    assert!(
        lifecycle::by_key::<Widget>(&pool, "bob", "k1")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_failed_record_replays_as_the_same_rejection() {
    let pool = schema().await;
    let widget = record(&pool, "k", 700, Duration::ZERO).await.unwrap();
    let failed = complete(
        &pool,
        &widget,
        Outcome::Rejected(Rejection::InsufficientFunds),
    )
    .await
    .unwrap();
    assert_eq!(failed.failure_reason.as_deref(), Some("INSUFFICIENT_FUNDS"));
    let existing = lifecycle::by_key::<Widget>(&pool, "alice", "k")
        .await
        .unwrap()
        .unwrap();
    match lifecycle::replay("widget", existing, &lifecycle::fingerprint(&["700"])) {
        Err(MovementError::Rejected { kind, id, reason }) => {
            assert_eq!(
                (kind, id, reason.as_str()),
                ("widget", widget.id, "INSUFFICIENT_FUNDS")
            );
        }
        other => panic!("expected the original rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn concurrent_completions_apply_exactly_one_outcome_with_one_event() {
    let pool = schema().await;
    let widget = Arc::new(record(&pool, "race", 900, Duration::ZERO).await.unwrap());
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let (pool, widget) = (pool.clone(), widget.clone());
            tokio::spawn(async move {
                let outcome = if i % 2 == 0 {
                    Outcome::Posted
                } else {
                    Outcome::Rejected(Rejection::AccountClosed)
                };
                complete(&pool, &widget, outcome).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        if let Some(done) = task.await.unwrap() {
            winners.push(done);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one completion wins");
    let stored: Widget = lifecycle::load(&pool, widget.id).await.unwrap().unwrap();
    assert_eq!(stored.status, winners[0].status);
    assert_eq!(outbox_rows(&pool, &widget).await, 1, "one completion event");
    // Completing again changes nothing.
    assert!(complete(&pool, &widget, Outcome::Posted).await.is_none());
    assert_eq!(outbox_rows(&pool, &widget).await, 1);
}

#[tokio::test]
async fn a_request_the_ledger_never_saw_frees_its_key_and_a_completed_one_stays() {
    let pool = schema().await;
    let unposted = record(&pool, "retry-me", 100, Duration::ZERO)
        .await
        .unwrap();
    lifecycle::drop_unposted::<Widget>(&pool, unposted.id)
        .await
        .unwrap();
    assert!(
        lifecycle::load::<Widget>(&pool, unposted.id)
            .await
            .unwrap()
            .is_none()
    );
    // The key is free again.
    let retried = record(&pool, "retry-me", 100, Duration::ZERO)
        .await
        .unwrap();
    complete(&pool, &retried, Outcome::Posted).await.unwrap();
    // A completed record is never dropped.
    lifecycle::drop_unposted::<Widget>(&pool, retried.id)
        .await
        .unwrap();
    let kept: Widget = lifecycle::load(&pool, retried.id).await.unwrap().unwrap();
    assert_eq!(kept.status, Status::Succeeded);
}

#[tokio::test]
async fn recovery_picks_up_only_stale_pending_records_and_gives_up_on_accounts_that_never_open() {
    let pool = schema().await;
    let fresh = record(&pool, "fresh", 100, Duration::ZERO).await.unwrap();
    let stale = record(&pool, "stale", 100, Duration::from_secs(60))
        .await
        .unwrap();
    let ancient = record(&pool, "ancient", 100, Duration::from_secs(2 * 3600))
        .await
        .unwrap();
    let done = record(&pool, "done", 100, Duration::from_secs(60))
        .await
        .unwrap();
    complete(&pool, &done, Outcome::Posted).await.unwrap();

    let picked: Vec<Widget> = lifecycle::pending_before(&pool, Duration::from_secs(15), 100)
        .await
        .unwrap();
    let ids: Vec<Uuid> = picked.iter().map(|w| w.id).collect();
    assert_eq!(
        ids,
        vec![ancient.id, stale.id],
        "oldest first, fresh and done left"
    );
    assert!(!ids.contains(&fresh.id));

    // The ledger's answer is taken as it is.
    assert_eq!(
        lifecycle::recovered_outcome("widget", &stale, Ok(Outcome::Posted)),
        Some(Outcome::Posted)
    );
    // An account that is not open yet: try again later, unless it never opened in an hour.
    assert_eq!(
        lifecycle::recovered_outcome("widget", &stale, Err(MovementError::AccountNotReady)),
        None
    );
    assert_eq!(
        lifecycle::recovered_outcome("widget", &ancient, Err(MovementError::AccountNotReady)),
        Some(Outcome::Rejected(Rejection::AccountNotFound))
    );
    // Anything else (the ledger unreachable): next round.
    assert_eq!(
        lifecycle::recovered_outcome(
            "widget",
            &ancient,
            Err(MovementError::Upstream(
                "saldo service",
                tonic::Status::unavailable("down")
            ))
        ),
        None
    );
}

#[test]
fn statuses_and_rejections_round_trip_their_codes() {
    for status in [Status::Pending, Status::Succeeded, Status::Failed] {
        assert_eq!(status.as_str().parse::<Status>(), Ok(status));
        assert_eq!(
            Status::from_proto_filter(status.to_proto()),
            Some(status),
            "{status}"
        );
    }
    assert_eq!(
        Status::from_proto_filter(0),
        None,
        "UNSPECIFIED is any status"
    );
    for rejection in [
        Rejection::InsufficientFunds,
        Rejection::AccountClosed,
        Rejection::CurrencyMismatch,
        Rejection::AccountNotFound,
    ] {
        assert_eq!(Rejection::from_code(rejection.code()), Some(rejection));
    }
    assert_eq!(Rejection::from_code("SOMETHING_ELSE"), None);
}
