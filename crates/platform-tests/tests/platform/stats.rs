//! Statistics from events: top-ups, withdraws and transfers at calendar boundaries (the last
//! second of a month, February 29th of a leap year) land in the right month; the numbers
//! equal what the source rows say, succeeded and failed; transfers count for the sender and,
//! separately, the receiver; a redelivered event and a rebuild change nothing; customers see
//! their own cards only; payments per merchant, API key and card for their owners.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use crate::harness::Platform;
use chrono::{DateTime, TimeZone, Utc};
use reqwest::StatusCode;
use serde_json::Value;

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single().unwrap()
}

/// Top-ups recorded at past times, as an import tool would (`saldo.backdate`), charged at
/// the sandbox provider like any other: awaited until it confirmed.
async fn import_topup(p: &Platform, number: &str, amount: i64, when: DateTime<Utc>) {
    let mut client =
        proto::topup::v1::topup_service_client::TopupServiceClient::connect(p.topup_grpc.clone())
            .await
            .unwrap();
    let topup = client
        .create_topup(platform::grpc::outgoing(
            proto::topup::v1::CreateTopupRequest {
                idempotency_key: uuid::Uuid::new_v4().to_string(),
                card_number: number.to_owned(),
                method: if amount % 2 == 0 { "bca" } else { "gopay" }.into(),
                amount,
                effective_at: Some(platform::time::to_proto(when)),
            },
            Some(&importer()),
            Duration::from_secs(10),
        ))
        .await
        .unwrap()
        .into_inner();
    testkit::eventually(
        Duration::from_secs(20),
        "the provider's confirmation",
        || {
            let mut client = client.clone();
            let id = topup.id.clone();
            async move {
                let now = client
                    .get_topup(platform::grpc::outgoing(
                        proto::topup::v1::TopupIdRequest { id },
                        Some(&importer()),
                        Duration::from_secs(10),
                    ))
                    .await
                    .unwrap()
                    .into_inner();
                (now.status == proto::common::v1::MovementStatus::Succeeded as i32).then_some(())
            }
        },
    )
    .await;
}

fn amounts(v: &Value) -> Vec<i64> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["amount"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn monthly_statistics_follow_the_calendar_and_the_source_rows() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, customer) = p.customer(&admin).await;
    let (_, stranger) = p.customer(&admin).await;
    let card = p.card(&customer, "IDR").await;

    // 2024 is a leap year: Jan 31 23:59:59 is January; Feb 29 is February; Mar 1 00:00:00 is
    // March. Dec 31 23:59:59 is still 2024.
    import_topup(&p, &card.number, 1_000, at(2024, 1, 31, 23, 59, 59)).await;
    import_topup(&p, &card.number, 2_000, at(2024, 2, 1, 0, 0, 0)).await;
    import_topup(&p, &card.number, 4_000, at(2024, 2, 29, 12, 0, 0)).await;
    import_topup(&p, &card.number, 8_001, at(2024, 3, 1, 0, 0, 0)).await;
    import_topup(&p, &card.number, 16_000, at(2024, 12, 31, 23, 59, 59)).await;
    import_topup(&p, &card.number, 32_000, at(2025, 1, 1, 0, 0, 0)).await;

    let path = format!(
        "/stats/topups/monthly-amounts?year=2024&card_id={}",
        card.id
    );
    let expected = vec![1_000, 6_000, 8_001, 0, 0, 0, 0, 0, 0, 0, 0, 16_000];
    let months = testkit::eventually(Duration::from_secs(30), "statistics consumed", || async {
        let (status, body) = p.get(&path, Some(&customer)).await;
        (status == StatusCode::OK && amounts(&body) == expected).then_some(body)
    })
    .await;
    assert_eq!(months["items"][1]["count"], 2, "{months}");

    // The same numbers straight from the source rows.
    let db = sqlx::PgPool::connect(&p.database_url).await.unwrap();
    let from_rows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT extract(month FROM created_at AT TIME ZONE 'UTC')::int, sum(amount)::bigint
         FROM topup_svc.movements
         WHERE status = 'succeeded' AND created_at >= '2024-01-01T00:00:00Z'
           AND created_at < '2025-01-01T00:00:00Z'
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    for (month, amount) in from_rows {
        assert_eq!(
            expected[usize::try_from(month - 1).unwrap()],
            amount,
            "month {month}"
        );
    }

    // Yearly: 2020..=2024, then 2021..=2025. (The 2025 import may be counted after the 2024
    // ones: the statistics consumer runs lanes, so wait for it too.)
    let years_path = format!("/stats/topups/yearly-amounts?year=2025&card_id={}", card.id);
    let years = testkit::eventually(Duration::from_secs(30), "2025 counted", || async {
        let (_, years) = p.get(&years_path, Some(&customer)).await;
        (amounts(&years).last() == Some(&32_000)).then_some(years)
    })
    .await;
    assert_eq!(amounts(&years), vec![0, 0, 0, 31_001, 32_000], "{years}");

    // Methods and the month-vs-previous-month comparison.
    let (_, methods) = p
        .get(
            &format!(
                "/stats/topups/monthly-methods?year=2024&card_id={}",
                card.id
            ),
            Some(&customer),
        )
        .await;
    let feb: Vec<(String, i64)> = methods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["period"] == 2)
        .map(|i| {
            (
                i["method"].as_str().unwrap().to_owned(),
                i["amount"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(feb, vec![("bca".to_owned(), 6_000)], "{methods}");
    let (_, status) = p
        .get(
            &format!(
                "/stats/topups/monthly-status?year=2024&month=3&card_id={}",
                card.id
            ),
            Some(&customer),
        )
        .await;
    assert_eq!(status["current"]["succeeded"]["amount"], 8_001, "{status}");
    assert_eq!(status["previous"]["succeeded"]["amount"], 6_000, "{status}");
    assert_eq!(status["current"]["failed"]["count"], 0, "{status}");

    // Balances at the end of each month, from the ledger's balance.changed events.
    let balances_path = format!("/stats/balances/monthly?year=2024&card_id={}", card.id);
    let ends: Vec<i64> = [1_000, 7_000]
        .into_iter()
        .chain(std::iter::repeat_n(15_001, 9))
        .chain([31_001])
        .collect();
    let balances = testkit::eventually(Duration::from_secs(30), "balance statistics", || async {
        let (status, body) = p.get(&balances_path, Some(&customer)).await;
        let got: Vec<i64> = body["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|i| i["balance"].as_i64().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        (status == StatusCode::OK && got == ends).then_some(body)
    })
    .await;
    assert_eq!(balances["items"][1]["postings"], 2, "{balances}");
    let (_, compared) = p
        .get(
            &format!(
                "/stats/balances/monthly-total?year=2024&month=3&card_id={}",
                card.id
            ),
            Some(&customer),
        )
        .await;
    assert_eq!(
        (compared["current"].as_i64(), compared["previous"].as_i64()),
        (Some(15_001), Some(7_000)),
        "{compared}"
    );
    // (The 2025 top-up's balance event may still be on its way.)
    let year_ends = |years: &Value| -> Vec<i64> {
        years["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|i| i["balance"].as_i64().unwrap())
                    .collect()
            })
            .unwrap_or_default()
    };
    let years_path = format!("/stats/balances/yearly?year=2025&card_id={}", card.id);
    let years = testkit::eventually(Duration::from_secs(30), "2025 balance", || async {
        let (_, years) = p.get(&years_path, Some(&customer)).await;
        (year_ends(&years).last() == Some(&63_001)).then_some(years)
    })
    .await;
    assert_eq!(year_ends(&years)[3..], [31_001, 63_001], "{years}");
    let journal: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(l.amount), 0)::bigint FROM saldo_svc.journal_lines l
         JOIN saldo_svc.accounts a ON a.id = l.account_id
         WHERE a.card_id = $1 AND l.created_at < '2024-03-01T00:00:00Z'",
    )
    .bind(uuid::Uuid::parse_str(&card.id).unwrap())
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        journal, 7_000,
        "the journal agrees with the February balance"
    );
    let (code, _) = p.get(&balances_path, Some(&stranger)).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = p
        .get("/stats/balances/monthly?year=2024", Some(&customer))
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);

    // Permissions: the owner sees the card; a stranger does not; everything needs topups.read.
    let (code, _) = p.get(&path, Some(&stranger)).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, body) = p
        .get("/stats/topups/monthly-amounts?year=2024", Some(&customer))
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    let (code, all) = p
        .get("/stats/topups/monthly-amounts?year=2024", Some(&admin))
        .await;
    assert_eq!(code, StatusCode::OK);
    // Other tests of the run share the broker (and so the "everything" totals), but none
    // records movements in early 2024.
    assert_eq!(amounts(&all)[..3], expected[..3], "{all}");

    // A redelivered completion event changes nothing.
    let reader =
        testkit::topic_reader(&events::topics::physical(events::topics::TOPUP_EVENTS)).unwrap();
    let card_id = card.id.clone();
    let event = testkit::next_matching(&reader, Duration::from_secs(20), |v| {
        (v["type"] == "topup.succeeded" && v["data"]["card_id"] == card_id.as_str())
            .then(|| v.clone())
    })
    .await
    .unwrap();
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", testkit::kafka_brokers())
        .create()
        .unwrap();
    let payload = event.to_string();
    producer
        .send(
            rdkafka::producer::FutureRecord::to(&events::topics::physical(
                events::topics::TOPUP_EVENTS,
            ))
            .key(event["subject"].as_str().unwrap())
            .payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    // A top-up after it, so we know the consumer has passed the duplicate.
    let (code, body) = p.topup(&customer, &card.number, 500).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "succeeded", "{body}");
    let this_year = Utc::now().format("%Y").to_string();
    testkit::eventually(Duration::from_secs(30), "later top-up counted", || async {
        let (_, body) = p
            .get(
                &format!(
                    "/stats/topups/yearly-amounts?year={this_year}&card_id={}",
                    card.id
                ),
                Some(&customer),
            )
            .await;
        (amounts(&body).last() == Some(&500)).then_some(())
    })
    .await;
    let (_, again) = p.get(&path, Some(&customer)).await;
    assert_eq!(
        amounts(&again),
        expected,
        "a duplicate event must not count twice"
    );

    // A rebuild from the source rows gives the same numbers (for what this test's rows are:
    // other tests of the run share the broker, not the database).
    let before: Vec<(
        String,
        uuid::Uuid,
        chrono::NaiveDate,
        String,
        String,
        i64,
        i64,
    )> = sqlx::query_as(
        "SELECT * FROM topup_svc.stats_monthly
             WHERE scope_id = $1 OR (scope = 'all' AND month < '2024-04-01')
             ORDER BY 1, 2, 3, 4, 5",
    )
    .bind(uuid::Uuid::parse_str(&card.id).unwrap())
    .fetch_all(&db)
    .await
    .unwrap();
    let pool = platform::db::connect(&p.database_url, "topup_svc", 2)
        .await
        .unwrap();
    movement::stats::rebuild(&pool, "UTC").await.unwrap();
    let after: Vec<(
        String,
        uuid::Uuid,
        chrono::NaiveDate,
        String,
        String,
        i64,
        i64,
    )> = sqlx::query_as(
        "SELECT * FROM topup_svc.stats_monthly
             WHERE scope_id = $1 OR (scope = 'all' AND month < '2024-04-01')
             ORDER BY 1, 2, 3, 4, 5",
    )
    .bind(uuid::Uuid::parse_str(&card.id).unwrap())
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(before, after);

    // The balance rollup rebuilds from the journal to the same rows.
    let card_uuid = uuid::Uuid::parse_str(&card.id).unwrap();
    let balance_rows = "SELECT scope, scope_id, day, delta, postings FROM saldo_svc.balance_daily
        WHERE scope_id = $1 ORDER BY 1, 2, 3";
    // First let the event-fed rollup catch up with the last top-up (63 001 + 500).
    testkit::eventually(
        Duration::from_secs(30),
        "balance rollup caught up",
        || async {
            let sum: Option<i64> = sqlx::query_scalar(
                "SELECT sum(delta)::bigint FROM saldo_svc.balance_daily
             WHERE scope = 'card' AND scope_id = $1",
            )
            .bind(card_uuid)
            .fetch_one(&db)
            .await
            .unwrap();
            (sum == Some(63_501)).then_some(())
        },
    )
    .await;
    let before: Vec<(String, uuid::Uuid, chrono::NaiveDate, i64, i64)> =
        sqlx::query_as(balance_rows)
            .bind(card_uuid)
            .fetch_all(&db)
            .await
            .unwrap();
    let saldo_pool = platform::db::connect(&p.database_url, "saldo_svc", 2)
        .await
        .unwrap();
    saldo_service::balance_stats::rebuild(&saldo_pool, "UTC")
        .await
        .unwrap();
    let after: Vec<(String, uuid::Uuid, chrono::NaiveDate, i64, i64)> =
        sqlx::query_as(balance_rows)
            .bind(card_uuid)
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(before, after);
    assert!(!after.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payment_statistics_per_merchant_key_and_card_for_their_owners() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, owner) = p.customer(&admin).await;
    let (_, customer) = p.customer(&admin).await;
    let (_, stranger) = p.customer(&admin).await;
    let merchant = p.active_merchant(&admin, &owner, "IDR").await;
    let card = p.card(&customer, "IDR").await;
    p.topup(&customer, &card.number, 100_000).await;
    for (amount, method) in [(10_000, "visa"), (2_500, "gopay"), (1_000_000, "visa")] {
        p.pay(
            &merchant.key,
            &uuid::Uuid::new_v4().to_string(),
            serde_json::json!({"card_number": card.number, "cvv": card.cvv, "amount": amount,
                               "method": method}),
        )
        .await;
    }
    let now = Utc::now();
    let (year, month) = (now.format("%Y").to_string(), now.format("%m").to_string());
    let month: usize = month.parse().unwrap();
    let path = format!(
        "/stats/payments/monthly-amounts?year={year}&merchant_id={}",
        merchant.id
    );
    let body = testkit::eventually(Duration::from_secs(30), "payment statistics", || async {
        let (status, body) = p.get(&path, Some(&owner)).await;
        (status == StatusCode::OK && amounts(&body)[month - 1] == 12_500).then_some(body)
    })
    .await;
    assert_eq!(body["items"][month - 1]["count"], 2, "{body}");

    // The failed one (more than the balance) is in the status comparison.
    let status_path = format!(
        "/stats/payments/monthly-status?year={year}&month={month}&merchant_id={}",
        merchant.id
    );
    let status = testkit::eventually(
        Duration::from_secs(30),
        "failed payment counted",
        || async {
            let (_, status) = p.get(&status_path, Some(&owner)).await;
            (status["current"]["failed"]["amount"] == 1_000_000).then_some(status)
        },
    )
    .await;
    assert_eq!(status["current"]["succeeded"]["count"], 2, "{status}");

    // Per key and per method, for the owner; per card for the customer.
    let (code, by_key) = p
        .get(
            &format!(
                "/stats/payments/yearly-amounts?year={year}&api_key_id={}",
                merchant.key_id
            ),
            Some(&owner),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{by_key}");
    assert_eq!(amounts(&by_key).last(), Some(&12_500));
    let (_, methods) = p
        .get(
            &format!(
                "/stats/payments/yearly-methods?year={year}&merchant_id={}",
                merchant.id
            ),
            Some(&owner),
        )
        .await;
    let mut seen: Vec<(String, i64)> = methods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["method"].as_str().unwrap().to_owned(),
                i["amount"].as_i64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![("gopay".to_owned(), 2_500), ("visa".to_owned(), 10_000)],
        "{methods}"
    );
    let (code, by_card) = p
        .get(
            &format!(
                "/stats/payments/monthly-amounts?year={year}&card_id={}",
                card.id
            ),
            Some(&customer),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{by_card}");
    assert_eq!(amounts(&by_card)[month - 1], 12_500);

    // The card's dashboard: balance and all-time totals from every service's rollup.
    let dashboard_path = format!("/stats/dashboard?card_id={}", card.id);
    let dashboard = testkit::eventually(Duration::from_secs(30), "dashboard", || async {
        let (status, body) = p.get(&dashboard_path, Some(&customer)).await;
        (status == StatusCode::OK
            && body["balance"] == 87_500
            && body["topups"]["amount"] == 100_000)
            .then_some(body)
    })
    .await;
    assert_eq!(dashboard["payments"]["amount"], 12_500, "{dashboard}");
    assert_eq!(dashboard["payments"]["count"], 2, "{dashboard}");
    assert_eq!(dashboard["withdraws"]["count"], 0, "{dashboard}");
    assert_eq!(dashboard["transfers_sent"]["count"], 0, "{dashboard}");
    assert_eq!(dashboard["transfers_received"]["count"], 0, "{dashboard}");
    let (code, _) = p.get(&dashboard_path, Some(&stranger)).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = p.get("/stats/dashboard", Some(&customer)).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, global) = p.get("/stats/dashboard", Some(&admin)).await;
    assert_eq!(code, StatusCode::OK, "{global}");
    assert!(
        global["payments"]["amount"].as_i64().unwrap() >= 12_500,
        "{global}"
    );

    // Others see nothing; bad input names the field.
    let (code, _) = p.get(&path, Some(&stranger)).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = p.get(&path, Some(&customer)).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, body) = p
        .get(
            &format!(
                "/stats/topups/monthly-amounts?year={year}&merchant_id={}",
                merchant.id
            ),
            Some(&admin),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "merchant_id");
    let (code, body) = p
        .get("/stats/payments/monthly-amounts?year=1999", Some(&admin))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "year");
}

/// A service token that may record movements at past times, as an import tool (the
/// seeder's identity) would.
fn importer() -> String {
    platform::auth::TokenIssuer::new(&crate::harness::jwt_for("seeder"))
        .unwrap()
        .service_token(&[
            "topups.read",
            "topups.write",
            "withdraws.write",
            "transfers.write",
            "saldo.backdate",
        ])
        .unwrap()
        .token
        .expose()
        .to_owned()
}

async fn import_withdraw(
    p: &Platform,
    number: &str,
    amount: i64,
    method: &str,
    when: DateTime<Utc>,
) -> Result<(), tonic::Status> {
    let mut client = proto::withdraw::v1::withdraw_service_client::WithdrawServiceClient::connect(
        p.withdraw_grpc.clone(),
    )
    .await
    .unwrap();
    client
        .create_withdraw(platform::grpc::outgoing(
            proto::withdraw::v1::CreateWithdrawRequest {
                idempotency_key: uuid::Uuid::new_v4().to_string(),
                card_number: number.to_owned(),
                method: method.into(),
                amount,
                effective_at: Some(platform::time::to_proto(when)),
            },
            Some(&importer()),
            Duration::from_secs(10),
        ))
        .await
        .map(drop)
}

/// A transfer imported with its own past time (`effective_at`), as the demo seed does.
pub(crate) async fn import_transfer(
    p: &Platform,
    from: &str,
    to: &str,
    amount: i64,
    when: DateTime<Utc>,
) -> Result<(), tonic::Status> {
    let mut client = proto::transfer::v1::transfer_service_client::TransferServiceClient::connect(
        p.transfer_grpc.clone(),
    )
    .await
    .unwrap();
    client
        .create_transfer(platform::grpc::outgoing(
            proto::transfer::v1::CreateTransferRequest {
                idempotency_key: uuid::Uuid::new_v4().to_string(),
                from_card_number: from.to_owned(),
                to_card_number: to.to_owned(),
                amount,
                effective_at: Some(platform::time::to_proto(when)),
            },
            Some(&importer()),
            Duration::from_secs(10),
        ))
        .await
        .map(drop)
}

/// `(period, method, amount)` of a methods report.
fn methods(v: &Value) -> Vec<(i64, String, i64)> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["period"].as_i64().unwrap(),
                i["method"].as_str().unwrap().to_owned(),
                i["amount"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// `[(month, sum)]` of a source table's rows for one card column, from PostgreSQL directly.
async fn monthly_from_rows(
    db: &sqlx::PgPool,
    table: &str,
    column: &str,
    card: &str,
    status: &str,
) -> Vec<i64> {
    let rows: Vec<(i32, i64)> = sqlx::query_as(&format!(
        "SELECT extract(month FROM created_at AT TIME ZONE 'UTC')::int, sum(amount)::bigint
         FROM {table}
         WHERE {column} = $1 AND status = $2 AND created_at >= '2024-01-01T00:00:00Z'
           AND created_at < '2025-01-01T00:00:00Z'
         GROUP BY 1 ORDER BY 1"
    ))
    .bind(uuid::Uuid::parse_str(card).unwrap())
    .bind(status)
    .fetch_all(db)
    .await
    .unwrap();
    let mut months = vec![0; 12];
    for (month, amount) in rows {
        months[usize::try_from(month - 1).unwrap()] = amount;
    }
    months
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn withdraw_and_transfer_statistics_per_card_direction_and_status() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, alice) = p.customer(&admin).await;
    let (_, bob) = p.customer(&admin).await;
    let a = p.card(&alice, "IDR").await;
    let b = p.card(&bob, "IDR").await;

    // Funds in April 2024 (the top-up test owns the platform-wide figures of January-March),
    // then withdraws across the April/May boundary and transfers across June/July, each month
    // with one refusal (more than the balance), recorded as failed.
    import_topup(&p, &a.number, 100_000, at(2024, 4, 2, 0, 0, 0)).await;
    import_withdraw(&p, &a.number, 5_000, "bca", at(2024, 4, 30, 23, 59, 59))
        .await
        .unwrap();
    import_withdraw(&p, &a.number, 7_000, "mandiri", at(2024, 5, 1, 0, 0, 0))
        .await
        .unwrap();
    let refused = import_withdraw(&p, &a.number, 9_000_000, "bca", at(2024, 5, 15, 8, 0, 0))
        .await
        .unwrap_err();
    assert_eq!(
        platform::error::status_reason(&refused).as_deref(),
        Some("INSUFFICIENT_FUNDS"),
        "{refused:?}"
    );
    import_transfer(&p, &a.number, &b.number, 3_000, at(2024, 6, 30, 23, 59, 59))
        .await
        .unwrap();
    import_transfer(&p, &a.number, &b.number, 4_000, at(2024, 7, 1, 0, 0, 0))
        .await
        .unwrap();
    import_transfer(&p, &a.number, &b.number, 8_000_000, at(2024, 7, 2, 0, 0, 0))
        .await
        .unwrap_err();

    let mut withdrawn = vec![0; 12];
    withdrawn[3] = 5_000;
    withdrawn[4] = 7_000;
    let mut transferred = vec![0; 12];
    transferred[5] = 3_000;
    transferred[6] = 4_000;
    let withdraws = format!(
        "/stats/withdraws/monthly-amounts?year=2024&card_id={}",
        a.id
    );
    let sent = format!(
        "/stats/transfers/monthly-amounts?year=2024&card_id={}",
        a.id
    );
    let received = format!(
        "/stats/transfers/monthly-amounts?year=2024&card_id={}&direction=received",
        b.id
    );
    for (path, token, expected) in [
        (&withdraws, &alice, &withdrawn),
        (&sent, &alice, &transferred),
        (&received, &bob, &transferred),
    ] {
        testkit::eventually(Duration::from_secs(30), "statistics consumed", || async {
            let (status, body) = p.get(path, Some(token)).await;
            (status == StatusCode::OK && &amounts(&body) == expected).then_some(())
        })
        .await;
    }

    // The same numbers straight from the source rows, succeeded and failed.
    let db = sqlx::PgPool::connect(&p.database_url).await.unwrap();
    assert_eq!(
        monthly_from_rows(&db, "withdraw_svc.movements", "card_id", &a.id, "succeeded").await,
        withdrawn
    );
    assert_eq!(
        monthly_from_rows(&db, "transfer_svc.movements", "card_id", &a.id, "succeeded").await,
        transferred
    );
    assert_eq!(
        monthly_from_rows(
            &db,
            "transfer_svc.movements",
            "to_card_id",
            &b.id,
            "succeeded"
        )
        .await,
        transferred
    );
    let failed_withdraws =
        monthly_from_rows(&db, "withdraw_svc.movements", "card_id", &a.id, "failed").await;
    assert_eq!(failed_withdraws[4], 9_000_000);
    // (A refusal's event comes after the successes the loop above waited for.)
    let failed_of = |path: String, expected: Vec<i64>| {
        let (p, alice) = (&p, &alice);
        async move {
            testkit::eventually(Duration::from_secs(30), "refusals counted", || async {
                let (_, failed) = p.get(&path, Some(alice)).await;
                (amounts(&failed) == expected).then_some(failed)
            })
            .await
        }
    };
    let failed = failed_of(
        format!("{withdraws}&status=failed"),
        failed_withdraws.clone(),
    )
    .await;
    assert_eq!(amounts(&failed), failed_withdraws, "{failed}");
    let failed_transfers =
        monthly_from_rows(&db, "transfer_svc.movements", "card_id", &a.id, "failed").await;
    assert_eq!(failed_transfers[6], 8_000_000);
    let failed = failed_of(format!("{sent}&status=failed"), failed_transfers.clone()).await;
    assert_eq!(amounts(&failed), failed_transfers, "{failed}");

    // Bob sent nothing; Alice received nothing.
    let (_, nothing) = p
        .get(
            &format!(
                "/stats/transfers/monthly-amounts?year=2024&card_id={}",
                b.id
            ),
            Some(&bob),
        )
        .await;
    assert_eq!(amounts(&nothing), vec![0; 12], "{nothing}");

    // Methods per month; the months compared with the ones before.
    let (_, by_method) = p
        .get(
            &format!(
                "/stats/withdraws/monthly-methods?year=2024&card_id={}",
                a.id
            ),
            Some(&alice),
        )
        .await;
    assert_eq!(
        methods(&by_method),
        vec![
            (4, "bca".to_owned(), 5_000),
            (5, "mandiri".to_owned(), 7_000)
        ],
        "{by_method}"
    );
    let (_, may) = p
        .get(
            &format!(
                "/stats/withdraws/monthly-status?year=2024&month=5&card_id={}",
                a.id
            ),
            Some(&alice),
        )
        .await;
    assert_eq!(may["current"]["succeeded"]["amount"], 7_000, "{may}");
    assert_eq!(may["current"]["failed"]["count"], 1, "{may}");
    assert_eq!(may["current"]["failed"]["amount"], 9_000_000, "{may}");
    assert_eq!(may["previous"]["succeeded"]["amount"], 5_000, "{may}");
    assert_eq!(may["previous"]["failed"]["count"], 0, "{may}");
    let (_, july) = p
        .get(
            &format!(
                "/stats/transfers/monthly-status?year=2024&month=7&card_id={}&direction=received",
                b.id
            ),
            Some(&bob),
        )
        .await;
    assert_eq!(july["current"]["succeeded"]["amount"], 4_000, "{july}");
    assert_eq!(july["previous"]["succeeded"]["amount"], 3_000, "{july}");
    let (_, year) = p
        .get(
            &format!("/stats/transfers/yearly-status?year=2024&card_id={}", a.id),
            Some(&alice),
        )
        .await;
    assert_eq!(year["current"]["succeeded"]["count"], 2, "{year}");
    assert_eq!(year["current"]["succeeded"]["amount"], 7_000, "{year}");
    assert_eq!(year["current"]["failed"]["count"], 1, "{year}");
    assert_eq!(year["previous"]["succeeded"]["count"], 0, "{year}");
    let (_, years) = p
        .get(
            &format!("/stats/withdraws/yearly-amounts?year=2025&card_id={}", a.id),
            Some(&alice),
        )
        .await;
    assert_eq!(amounts(&years), vec![0, 0, 0, 12_000, 0], "{years}");

    // Platform-wide (admins): nobody else in the run records withdraws or transfers in
    // April-July 2024.
    let (_, all) = p
        .get("/stats/withdraws/monthly-amounts?year=2024", Some(&admin))
        .await;
    assert_eq!(amounts(&all)[3..5], withdrawn[3..5], "{all}");
    let (_, all) = p
        .get("/stats/transfers/monthly-amounts?year=2024", Some(&admin))
        .await;
    assert_eq!(amounts(&all)[5..7], transferred[5..7], "{all}");

    // The dashboards agree.
    // (The balance comes from saldo's own rollup, whose consumer may still be behind.)
    let dash = testkit::eventually(Duration::from_secs(30), "balance rollup", || async {
        let (_, dash) = p
            .get(&format!("/stats/dashboard?card_id={}", a.id), Some(&alice))
            .await;
        (dash["balance"] == 100_000 - 12_000 - 7_000).then_some(dash)
    })
    .await;
    assert_eq!(dash["withdraws"]["amount"], 12_000, "{dash}");
    assert_eq!(dash["transfers_sent"]["amount"], 7_000, "{dash}");
    assert_eq!(dash["balance"], 100_000 - 12_000 - 7_000, "{dash}");
    let (_, dash) = p
        .get(&format!("/stats/dashboard?card_id={}", b.id), Some(&bob))
        .await;
    assert_eq!(dash["transfers_received"]["amount"], 7_000, "{dash}");

    // Permissions and bad input.
    let (code, _) = p.get(&sent, Some(&bob)).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = p.get(&received, Some(&alice)).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = p
        .get("/stats/withdraws/monthly-amounts?year=2024", Some(&alice))
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, body) = p
        .get(&format!("{withdraws}&direction=received"), Some(&alice))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("direction"), "{body}");

    // Rebuilding both rollups from their source rows gives the same rows.
    for (schema, card) in [("withdraw_svc", &a.id), ("transfer_svc", &b.id)] {
        let rows = format!(
            "SELECT * FROM {schema}.stats_monthly
             WHERE scope_id = $1 OR (scope = 'all' AND month >= '2024-04-01' AND month < '2024-08-01')
             ORDER BY 1, 2, 3, 4, 5"
        );
        type Row = (
            String,
            uuid::Uuid,
            chrono::NaiveDate,
            String,
            String,
            i64,
            i64,
        );
        let id = uuid::Uuid::parse_str(card).unwrap();
        let before: Vec<Row> = sqlx::query_as(&rows).bind(id).fetch_all(&db).await.unwrap();
        let pool = platform::db::connect(&p.database_url, schema, 2)
            .await
            .unwrap();
        movement::stats::rebuild(&pool, "UTC").await.unwrap();
        let after: Vec<Row> = sqlx::query_as(&rows).bind(id).fetch_all(&db).await.unwrap();
        assert!(!before.is_empty());
        assert_eq!(before, after, "{schema}");
    }
}
