//! The rollup against real PostgreSQL: the order events arrive in and redeliveries do not
//! change the numbers, and days follow the configured time zone's calendar.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{TimeZone, Utc};
use sqlx::{Executor, PgPool};
use stats::{Contribution, Reports, Scope};
use uuid::Uuid;

type Row = (String, Uuid, chrono::NaiveDate, String, String, i64, i64);

async fn schema(url: &str, name: &str) -> PgPool {
    let admin = PgPool::connect(url).await.unwrap();
    admin
        .execute(format!("CREATE SCHEMA {name}").as_str())
        .await
        .unwrap();
    let pool = platform::db::connect(url, name, 2).await.unwrap();
    sqlx::raw_sql(stats::TABLES).execute(&pool).await.unwrap();
    pool
}

fn contribution(
    n: u128,
    at: chrono::DateTime<Utc>,
    status: &str,
    amount: i64,
    card: Uuid,
) -> Contribution {
    Contribution {
        id: Uuid::from_u128(n),
        at,
        status: status.to_owned(),
        method: if n.is_multiple_of(2) { "bca" } else { "ovo" }.to_owned(),
        amount,
        scopes: vec![Scope::Card(card)],
    }
}

async fn apply(pool: &PgPool, zone: &str, contributions: &[Contribution]) {
    for c in contributions {
        let mut tx = pool.begin().await.unwrap();
        stats::record(&mut tx, zone, c).await.unwrap();
        tx.commit().await.unwrap();
    }
}

async fn table(pool: &PgPool) -> Vec<Row> {
    sqlx::query_as("SELECT * FROM stats_monthly ORDER BY 1, 2, 3, 4, 5")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn order_and_redelivery_do_not_change_the_numbers() {
    let url = testkit::fresh_database().await.unwrap();
    let (a, b) = (
        schema(&url, "in_order").await,
        schema(&url, "shuffled").await,
    );
    let card = Uuid::now_v7();
    let events: Vec<Contribution> = (0..60u32)
        .map(|n| {
            let at = Utc
                .with_ymd_and_hms(2024, 1 + n % 12, 1 + n % 28, 12, 0, 0)
                .unwrap();
            let status = if n % 7 == 0 { "failed" } else { "succeeded" };
            contribution(u128::from(n), at, status, 100 + i64::from(n), card)
        })
        .collect();
    apply(&a, "UTC", &events).await;
    // Reversed, rotated, and every third one delivered twice.
    let mut shuffled: Vec<Contribution> = events.iter().rev().cloned().collect();
    shuffled.extend(events.iter().step_by(3).cloned());
    shuffled.rotate_left(17);
    apply(&b, "UTC", &shuffled).await;
    assert_eq!(table(&a).await, table(&b).await);
    let months = Reports::new(a.clone())
        .monthly(Scope::Card(card), 2024, "succeeded")
        .await
        .unwrap();
    let expected: i64 = events
        .iter()
        .filter(|c| c.status == "succeeded")
        .map(|c| c.amount)
        .sum();
    assert_eq!(months.iter().map(|t| t.amount).sum::<i64>(), expected);
    assert_eq!(months.iter().map(|t| t.count).sum::<i64>(), 60 - 9);
}

#[tokio::test]
async fn months_follow_the_configured_time_zone() {
    let url = testkit::fresh_database().await.unwrap();
    let pool = schema(&url, "jakarta").await;
    let card = Uuid::now_v7();
    // 17:30 UTC on Jan 31 is 00:30 on Feb 1 in Jakarta (UTC+7); 16:59:59 UTC on Feb 29 is
    // 23:59:59 on Feb 29 there (a leap day); 17:00 UTC is already March 1st.
    let at = |mo, d, h, mi, s| Utc.with_ymd_and_hms(2024, mo, d, h, mi, s).unwrap();
    apply(
        &pool,
        "Asia/Jakarta",
        &[
            contribution(1, at(1, 31, 16, 59, 59), "succeeded", 1, card),
            contribution(2, at(1, 31, 17, 30, 0), "succeeded", 10, card),
            contribution(3, at(2, 29, 16, 59, 59), "succeeded", 100, card),
            contribution(4, at(2, 29, 17, 0, 0), "succeeded", 1000, card),
        ],
    )
    .await;
    let reports = Reports::new(pool);
    let months = reports
        .monthly(Scope::Card(card), 2024, "succeeded")
        .await
        .unwrap();
    let amounts: Vec<i64> = months.iter().map(|t| t.amount).take(3).collect();
    assert_eq!(amounts, vec![1, 110, 1000]);
    let (march, february) = reports
        .monthly_status(Scope::Card(card), 2024, 3)
        .await
        .unwrap();
    assert_eq!(
        (march.succeeded.amount, february.succeeded.amount),
        (1000, 110)
    );
}
