//! The demo data set: seeded through the services' APIs with 24 months of history, the books
//! balance, backdated records keep their time, and a second run changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::harness::Platform;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_small_demo_seed_has_history_balances_its_books_and_runs_once() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let services = p.demo_services();
    let summary = seeders::demo::run(&services, seeders::demo::Size::Small)
        .await
        .unwrap();
    assert!(!summary.already_present);
    assert_eq!((summary.customers, summary.merchants), (8, 3));
    assert!(summary.operations > 500, "{summary:?}");
    let report = p.assert_books_balance(&admin).await;
    assert!(report["postings"].as_u64().unwrap() > 500, "{report}");

    // A demo customer logs in and sees history reaching back about two years, in order.
    let login = p
        .post(
            "/auth/login",
            None,
            json!({"email": "customer0001@demo.payments.local", "password": seeders::demo::DEMO_PASSWORD}),
        )
        .await;
    assert_eq!(login.0, StatusCode::OK, "{}", login.1);
    let token = login.1["access_token"].as_str().unwrap().to_owned();
    let (_, cards) = p.get("/cards", Some(&token)).await;
    // Newest first: the last is the customer's first card, the one the top-ups go to.
    let items = cards["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{cards}");
    let card_id = items[1]["id"].as_str().unwrap().to_owned();
    let (_, topups) = p
        .get(
            &format!("/topups?card_id={card_id}&page_size=100"),
            Some(&token),
        )
        .await;
    let times: Vec<DateTime<Utc>> = topups["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["created_at"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(times.len(), 24, "one top-up a month: {topups}");
    let oldest = *times.iter().min().unwrap();
    assert!(
        Utc::now() - oldest > chrono::Duration::days(690),
        "oldest {oldest}"
    );
    let long_ago = (Utc::now() - chrono::Duration::days(600))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (status, statement) = p
        .get(
            &format!("/cards/{card_id}/statement?to={long_ago}"),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{statement}");
    assert!(
        !statement["items"].as_array().unwrap().is_empty(),
        "ledger postings keep their past time: {statement}"
    );

    // Payments with merchants, some refunded; a pending merchant waits for review.
    let (_, payments) = p.get("/payments?page_size=1", Some(&admin)).await;
    assert!(
        payments["page"]["total_items"].as_u64().unwrap() > 300,
        "{payments}"
    );
    let (_, refunds) = p.get("/refunds?status=succeeded", Some(&admin)).await;
    assert!(
        refunds["page"]["total_items"].as_u64().unwrap() > 5,
        "{refunds}"
    );
    let (_, pending) = p.get("/merchants?status=pending", Some(&admin)).await;
    assert_eq!(pending["page"]["total_items"], 1, "{pending}");

    // Nobody but the seeder's own token may backdate: not even an admin over gRPC.
    let mut topups =
        proto::topup::v1::topup_service_client::TopupServiceClient::connect(p.topup_grpc.clone())
            .await
            .unwrap();
    let mut request = tonic::Request::new(proto::topup::v1::CreateTopupRequest {
        idempotency_key: "admin-backdate".into(),
        card_number: "4000000000000002".into(),
        method: "bca".into(),
        amount: 1_000,
        effective_at: Some(platform::time::to_proto(
            Utc::now() - chrono::Duration::days(30),
        )),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {admin}").parse().unwrap());
    let refused = topups.create_topup(request).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("saldo.backdate"), "{refused:?}");

    let again = seeders::demo::run(&services, seeders::demo::Size::Small)
        .await
        .unwrap();
    assert!(again.already_present);
    let report2 = p.assert_books_balance(&admin).await;
    assert_eq!(
        report["postings"], report2["postings"],
        "a second run posts nothing"
    );
}

/// A seed that stops part-way (here: aborted after a few months, and the run that resumed it
/// aborted again in the middle of a later month) is finished by running it again: months an
/// earlier run completed are skipped, the ones a run was in the middle of are completed
/// (operations already done are refused as reused keys, so nothing happens twice), and every
/// planned operation happened exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_demo_seed_resumes_where_it_stopped() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let services = p.demo_services();
    let db = sqlx::PgPool::connect(&p.database_url).await.unwrap();
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    let topups = || {
        count("SELECT count(*) FROM topup_svc.movements WHERE idempotency_key LIKE 'demo-topup-%'")
    };

    let first = tokio::spawn({
        let services = services.clone();
        async move { seeders::demo::run(&services, seeders::demo::Size::Small).await }
    });
    // 8 customers, one top-up each at the start of every month: stop in the sixth month.
    testkit::eventually(
        std::time::Duration::from_secs(120),
        "five months seeded",
        || async { (topups().await > 8 * 5).then_some(()) },
    )
    .await;
    first.abort();
    let _ = first.await;
    let stopped_at = topups().await;
    assert!(stopped_at < 8 * 24, "the first run was stopped part-way");

    // The resumed run, stopped again in the middle of a month it began (a third of the way
    // in or more, before two thirds): the run after it must not take that month for finished.
    let monthly = i64::try_from(seeders::demo::Size::Small.payments().div_ceil(24)).unwrap();
    let payments = || {
        count(
            "SELECT count(DISTINCT idempotency_key) FROM transaction_svc.payments
             WHERE idempotency_key LIKE 'demo-payment-%'",
        )
    };
    let second = tokio::spawn({
        let services = services.clone();
        async move { seeders::demo::run(&services, seeders::demo::Size::Small).await }
    });
    let mid_month = testkit::eventually(
        std::time::Duration::from_secs(120),
        "the resumed run in the middle of a later month",
        || async {
            let n = payments().await;
            (n > monthly * 8 && (monthly / 3..=monthly * 2 / 3).contains(&(n % monthly)))
                .then_some(n)
        },
    )
    .await;
    second.abort();
    let _ = second.await;
    assert!(
        payments().await < monthly * 24,
        "stopped at {mid_month} payments"
    );

    let resumed = seeders::demo::run(&services, seeders::demo::Size::Small)
        .await
        .unwrap();
    assert!(!resumed.already_present);
    assert_eq!(topups().await, 8 * 24, "every planned top-up, once");
    let per_month: Vec<(String, i64)> = sqlx::query_as(
        "SELECT split_part(idempotency_key, '-', 3), count(*) FROM topup_svc.movements
         WHERE idempotency_key LIKE 'demo-topup-%' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(per_month.len(), 24, "{per_month:?}");
    assert!(per_month.iter().all(|(_, n)| *n == 8), "{per_month:?}");
    assert_eq!(
        payments().await,
        monthly * 24,
        "every planned payment, once"
    );
    // Each resumed run issued new cards (the earlier runs' CVVs are gone): six for customer 1.
    let login = p
        .post(
            "/auth/login",
            None,
            json!({"email": "customer0001@demo.payments.local", "password": seeders::demo::DEMO_PASSWORD}),
        )
        .await;
    let token = login.1["access_token"].as_str().unwrap().to_owned();
    let (_, cards) = p.get("/cards", Some(&token)).await;
    assert_eq!(cards["items"].as_array().unwrap().len(), 6, "{cards}");
    p.assert_books_balance(&admin).await;

    let again = seeders::demo::run(&services, seeders::demo::Size::Small)
        .await
        .unwrap();
    assert!(again.already_present);
}
