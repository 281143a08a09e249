//! Money from the outside world: top-ups are charges at payment providers (two sandbox
//! provider processes, `sandpay` first and `kilat` second on every method's route), booked
//! only on the provider's word — its signed callback through NGINX, or the status poller.
//! The provider misbehaves as scripted per request: declines, lost, duplicate and early
//! callbacks, errors after taking the money, downtime.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use crate::harness::Platform;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A top-up through NGINX, as the customer sent it (no waiting).
async fn top_up(
    p: &Platform,
    token: &str,
    number: &str,
    amount: i64,
    key: &str,
) -> (StatusCode, Value) {
    p.post_idem(
        "/topups",
        token,
        key,
        json!({"card_number": number, "amount": amount, "method": "bca"}),
    )
    .await
}

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The callbacks the platform stored for a top-up: (event id, outcome, deliveries).
async fn callbacks(p: &Platform, topup_id: &str) -> Vec<(String, String, i32)> {
    let pool = sqlx::PgPool::connect(&p.database_url).await.unwrap();
    let rows: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT event_id, outcome, deliveries FROM topup_svc.provider_callbacks WHERE reference = $1
         ORDER BY received_at",
    )
    .bind(topup_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

/// POSTs a callback body to the platform's endpoint for `provider`, signed with `secret` at
/// `signed_at` (unix seconds).
async fn deliver(
    p: &Platform,
    provider: &str,
    secret: &str,
    signed_at: i64,
    body: &Value,
) -> (StatusCode, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let answer = p
        .http
        .post(format!("{}/provider-callbacks/{provider}/topups", p.base))
        .header("content-type", "application/json")
        .header(
            "sandbox-signature",
            providers::sandbox::sign(secret, signed_at, &bytes),
        )
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    (status, answer.json().await.unwrap_or(Value::Null))
}

/// A `charge.succeeded` event for a top-up, as the sandbox would send it.
fn success_event(topup: &Value, provider_reference: &str) -> Value {
    json!({
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
        "type": "charge.succeeded",
        "created_at": chrono::Utc::now(),
        "data": {
            "id": provider_reference,
            "kind": "charge",
            "reference": topup["id"],
            "amount": topup["amount"],
            "currency": topup["currency"],
            "method": "bca",
            "status": "succeeded",
            "created_at": chrono::Utc::now(),
            "updated_at": chrono::Utc::now(),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_top_up_is_pending_until_the_providers_callback_books_it_once() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, alice) = p.customer(&admin).await;
    let card = p.card(&alice, "IDR").await;
    p.sandpay
        .script(json!({"match": {"amount": 120_000}, "scenario": {"decide_after_ms": 1_500, "callback": "twice"}}))
        .await
        .unwrap();

    let (status, pending) = top_up(&p, &alice, &card.number, 120_000, &key()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{pending}");
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["provider"], "sandpay");
    assert!(
        pending["provider_reference"]
            .as_str()
            .unwrap()
            .starts_with("op_")
    );
    // Not a minor unit before the provider says so.
    assert_eq!(p.balance(&alice, &card.id).await, 0);

    let settled = p.settled_topup(&alice, &pending).await;
    assert_eq!(settled["status"], "succeeded", "{settled}");
    assert_eq!(p.balance(&alice, &card.id).await, 120_000);
    // The callback came twice: one event, stored once, applied once, one posting.
    let id = pending["id"].as_str().unwrap();
    testkit::eventually(Duration::from_secs(10), "the second delivery", || async {
        let seen = p
            .nginx
            .access_log()
            .matches("/api/v1/provider-callbacks/sandpay/topups")
            .count();
        (seen >= 2).then_some(())
    })
    .await;
    let stored = callbacks(&p, id).await;
    assert_eq!(stored.len(), 1, "one event: {stored:?}");
    assert_eq!(
        (stored[0].1.as_str(), stored[0].2),
        ("applied", 2),
        "{stored:?}"
    );
    assert_eq!(p.balance(&alice, &card.id).await, 120_000);
    let (_, posting) = p.get(&format!("/saldo/postings/{id}"), Some(&admin)).await;
    assert_eq!(posting["id"], id, "{posting}");
    p.assert_books_balance(&admin).await;

    // A callback lost on the way: the status poller asks the provider and books it.
    p.sandpay
        .script(json!({"match": {"amount": 33_000}, "scenario": {"callback": "lost"}}))
        .await
        .unwrap();
    let (status, lost) = top_up(&p, &alice, &card.number, 33_000, &key()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{lost}");
    let settled = p.settled_topup(&alice, &lost).await;
    assert_eq!(settled["status"], "succeeded", "{settled}");
    assert!(
        callbacks(&p, lost["id"].as_str().unwrap()).await.is_empty(),
        "no callback came"
    );
    assert_eq!(p.balance(&alice, &card.id).await, 153_000);

    // A provider that decides before it answers the charge (its callback overtakes the
    // answer): settled by whichever comes first, once.
    p.sandpay
        .script(json!({"match": {"amount": 7_000}, "scenario": {"callback": "before_response"}}))
        .await
        .unwrap();
    let (status, early) = top_up(&p, &alice, &card.number, 7_000, &key()).await;
    assert_eq!(status, StatusCode::CREATED, "decided at once: {early}");
    assert_eq!(early["status"], "succeeded");
    assert_eq!(p.balance(&alice, &card.id).await, 160_000);
    p.assert_books_balance(&admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_declined_top_up_fails_with_the_providers_reason_and_books_nothing() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, alice) = p.customer(&admin).await;
    let card = p.card(&alice, "IDR").await;
    p.sandpay
        .script(json!({"match": {"amount": 40_000}, "scenario": {"outcome": "decline", "failure_code": "insufficient_funds"}}))
        .await
        .unwrap();
    let (status, pending) = top_up(&p, &alice, &card.number, 40_000, &key()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{pending}");
    let failed = p.settled_topup(&alice, &pending).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["failure_reason"], "PROVIDER_DECLINED");
    assert_eq!(failed["provider_failure_code"], "insufficient_funds");
    assert_eq!(p.balance(&alice, &card.id).await, 0);
    let (status, _) = p
        .get(
            &format!("/saldo/postings/{}", pending["id"].as_str().unwrap()),
            Some(&admin),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was posted");
    p.assert_books_balance(&admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_stale_and_misdirected_callbacks_book_nothing() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, mallory) = p.customer(&admin).await;
    let card = p.card(&mallory, "IDR").await;
    // A top-up the provider never decides: only a forged callback could credit it.
    p.sandpay
        .script(json!({"match": {"amount": 900_000}, "scenario": {"outcome": "never"}}))
        .await
        .unwrap();
    let (status, pending) = top_up(&p, &mallory, &card.number, 900_000, &key()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{pending}");
    let reference = pending["provider_reference"].as_str().unwrap().to_owned();
    let event = success_event(&pending, &reference);
    let now = chrono::Utc::now().timestamp();

    // Signed with a guessed secret.
    let (status, body) = deliver(&p, "sandpay", "whsec_guess", now, &event).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["reason"], "CALLBACK_SIGNATURE_INVALID");
    // Unsigned.
    let answer = p
        .http
        .post(format!("{}/provider-callbacks/sandpay/topups", p.base))
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    // Signed with the other provider's secret, sent to this provider's endpoint.
    let (status, _) = deliver(&p, "sandpay", &p.kilat.webhook_secret, now, &event).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The right secret, but signed 10 minutes ago (a replayed old callback).
    let (status, body) = deliver(&p, "sandpay", &p.sandpay.webhook_secret, now - 600, &event).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["reason"], "CALLBACK_STALE");
    // A provider we do not have.
    let (status, _) = deliver(&p, "acme", &p.sandpay.webhook_secret, now, &event).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Correctly signed but about another amount than the top-up: stored, not applied.
    let mut inflated = success_event(&pending, &reference);
    inflated["data"]["amount"] = json!(9_000_000);
    let (status, body) = deliver(&p, "sandpay", &p.sandpay.webhook_secret, now, &inflated).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "ignored");

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(p.balance(&mallory, &card.id).await, 0, "no forged money");
    let (_, still) = p
        .get(
            &format!("/topups/{}", pending["id"].as_str().unwrap()),
            Some(&mallory),
        )
        .await;
    assert_eq!(still["status"], "pending");

    // The provider's own word, at last: booked once, even when delivered again later.
    p.sandpay
        .control(
            &format!("operations/{reference}/decide"),
            json!({"outcome": "approve", "callback": "twice"}),
        )
        .await
        .unwrap();
    let settled = p.settled_topup(&mallory, &pending).await;
    assert_eq!(settled["status"], "succeeded");
    assert_eq!(p.balance(&mallory, &card.id).await, 900_000);
    p.assert_books_balance(&admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_down_fails_over_only_when_safe_and_its_breaker_opens_and_closes() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, alice) = p.customer(&admin).await;
    let card = p.card(&alice, "IDR").await;

    // sandpay down (503 unavailable: it took nothing): kilat, next on the route, takes it.
    p.sandpay.set_down(true).await.unwrap();
    let (status, moved) = p.topup(&alice, &card.number, 10_000).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(moved["provider"], "kilat", "{moved}");
    assert_eq!(moved["status"], "succeeded");
    // Three failures open sandpay's breaker: requests no longer wait for it. Each replica
    // keeps a breaker of its own (NGINX spreads the top-ups over them), so with n replicas
    // it takes up to 3·n top-ups until every one has seen three failures.
    let circuit = || {
        platform::status::snapshot()
            .get("provider:topup:sandpay")
            .map(|r| r.detail["circuit"].as_str().unwrap_or_default().to_owned())
    };
    let mut failed_over = 1;
    let mut fail_over = || {
        failed_over += 1;
        async {
            let (_, t) = p.topup(&alice, &card.number, 10_000).await;
            assert_eq!(t["provider"], "kilat");
        }
    };
    for _ in 1..3 * p.replica_count() {
        fail_over().await;
    }
    // The open breaker is in the service's status (`/status`, `make status`); replicas in
    // one test process share that status, so one more top-up while a replica still reports
    // its breaker closed (NGINX need not have spread them evenly).
    let opened = std::time::Instant::now();
    while circuit().as_deref() != Some("open") {
        assert!(
            opened.elapsed() < Duration::from_secs(10),
            "sandpay's circuit never opened: {:?}",
            circuit()
        );
        if p.replica_count() > 1 {
            fail_over().await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Both down: nothing is charged anywhere, a clear 503, and the key may be retried.
    p.kilat.set_down(true).await.unwrap();
    let retry_key = key();
    let started = std::time::Instant::now();
    let (status, body) = top_up(&p, &alice, &card.number, 5_000, &retry_key).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["reason"], "PROVIDER_UNAVAILABLE");
    assert!(started.elapsed() < Duration::from_secs(2), "fails fast");
    p.kilat.set_down(false).await.unwrap();
    let (status, retried) = top_up(&p, &alice, &card.number, 5_000, &retry_key).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "the same key works again: {retried}"
    );
    assert_eq!(retried["provider"], "kilat");
    p.settled_topup(&alice, &retried).await;

    // sandpay back: after its breaker's open period the next top-up probes it and it is
    // first on the route again.
    p.sandpay.set_down(false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let (_, back) = p.topup(&alice, &card.number, 1_000).await;
    assert_eq!(back["provider"], "sandpay", "{back}");
    testkit::eventually(
        Duration::from_secs(5),
        "sandpay's closed circuit in /status",
        || async { (circuit().as_deref() == Some("closed")).then_some(()) },
    )
    .await;

    // sandpay fails with a 500 after recording the charge: the status check finds it there,
    // so it is not sent to kilat (that would charge twice).
    p.sandpay
        .script(
            json!({"match": {"amount": 2_222}, "scenario": {"http_status": 500, "record": true}}),
        )
        .await
        .unwrap();
    let (_, kept) = p.topup(&alice, &card.number, 2_222).await;
    assert_eq!(kept["provider"], "sandpay", "{kept}");
    assert_eq!(kept["status"], "succeeded");
    let at_kilat = p.kilat.operations().await.unwrap();
    assert!(
        at_kilat.iter().all(|op| op["reference"] != kept["id"]),
        "kilat never charged it"
    );
    assert_eq!(
        p.balance(&alice, &card.id).await,
        10_000 * failed_over + 5_000 + 1_000 + 2_222
    );
    p.assert_books_balance(&admin).await;
}

/// One provider's part of a reconciliation run's report.
fn provider_day(report: &Value, provider: &str) -> Value {
    report["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["provider"] == provider)
        .cloned()
        .unwrap_or_else(|| panic!("no {provider} in {report}"))
}

/// The balance of a system account (`payouts-in-transit:IDR`, `provider:sandpay:IDR`).
async fn system_balance(p: &Platform, admin: &str, code: &str) -> i64 {
    let (status, accounts) = p
        .get("/saldo/accounts?kind=system&page_size=100", Some(admin))
        .await;
    assert_eq!(status, StatusCode::OK, "{accounts}");
    accounts["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["code"] == code)
        .map_or(0, |a| a["balance"].as_i64().unwrap())
}

async fn withdraw(p: &Platform, token: &str, number: &str, amount: i64) -> (StatusCode, Value) {
    p.post_idem(
        "/withdraws",
        token,
        &key(),
        json!({"card_number": number, "amount": amount, "method": "mandiri"}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_withdrawal_is_held_then_paid_out_or_returned_never_both() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, alice) = p.customer(&admin).await;
    let card = p.card(&alice, "IDR").await;
    p.topup(&alice, &card.number, 100_000).await;

    // Paid out: the amount leaves the card at once (held in transit), then goes to the
    // provider's account when the provider confirms.
    p.sandpay
        .script(json!({"match": {"amount": 30_000}, "scenario": {"decide_after_ms": 1_500}}))
        .await
        .unwrap();
    let (status, pending) = withdraw(&p, &alice, &card.number, 30_000).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{pending}");
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["provider"], "sandpay");
    assert_eq!(p.balance(&alice, &card.id).await, 70_000, "held at once");
    assert_eq!(
        system_balance(&p, &admin, "payouts-in-transit:IDR").await,
        30_000
    );
    let paid = p.settled("withdraws", &alice, &pending).await;
    assert_eq!(paid["status"], "succeeded", "{paid}");
    assert_eq!(p.balance(&alice, &card.id).await, 70_000);
    assert_eq!(
        system_balance(&p, &admin, "payouts-in-transit:IDR").await,
        0
    );

    // Declined by the provider: the held amount comes back to the card, nothing is paid out.
    p.sandpay
        .script(json!({"match": {"amount": 20_000}, "scenario": {"outcome": "decline", "failure_code": "invalid_account", "decide_after_ms": 800}}))
        .await
        .unwrap();
    let (status, pending) = withdraw(&p, &alice, &card.number, 20_000).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{pending}");
    assert_eq!(p.balance(&alice, &card.id).await, 50_000, "held");
    let returned = p.settled("withdraws", &alice, &pending).await;
    assert_eq!(returned["status"], "failed", "{returned}");
    assert_eq!(returned["failure_reason"], "PROVIDER_DECLINED");
    assert_eq!(returned["provider_failure_code"], "invalid_account");
    assert_eq!(p.balance(&alice, &card.id).await, 70_000, "returned");
    assert_eq!(
        system_balance(&p, &admin, "payouts-in-transit:IDR").await,
        0
    );

    // No provider can take it: the amount is returned at once and the answer says why.
    p.sandpay.set_down(true).await.unwrap();
    p.kilat.set_down(true).await.unwrap();
    let (status, body) = withdraw(&p, &alice, &card.number, 10_000).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["reason"], "PROVIDER_UNAVAILABLE");
    assert_eq!(p.balance(&alice, &card.id).await, 70_000);
    p.sandpay.set_down(false).await.unwrap();
    p.kilat.set_down(false).await.unwrap();

    // What left the books went to the providers' accounts: 100 000 in, 30 000 out.
    let sandpay = system_balance(&p, &admin, "provider:sandpay:IDR").await;
    let kilat = system_balance(&p, &admin, "provider:kilat:IDR").await;
    assert_eq!(sandpay + kilat, -100_000 + 30_000, "charges minus payouts");
    p.assert_books_balance(&admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn held_money_cannot_be_spent_twice_by_a_concurrent_transfer() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, alice) = p.customer(&admin).await;
    let (_, bob) = p.customer(&admin).await;
    let to = p.card(&bob, "IDR").await;
    // Slow payouts: the transfers race while every withdrawal is still pending.
    p.sandpay
        .script(json!({"match": {"kind": "payout"}, "scenario": {"decide_after_ms": 1_000}}))
        .await
        .unwrap();
    for _ in 0..5 {
        let card = p.card(&alice, "IDR").await;
        p.topup(&alice, &card.number, 50_000).await;
        let (out, moved) = tokio::join!(
            withdraw(&p, &alice, &card.number, 50_000),
            p.transfer(&alice, &card.number, &to.number, 50_000)
        );
        let withdrew = out.0 == StatusCode::ACCEPTED;
        let transferred = moved.0 == StatusCode::CREATED;
        assert!(
            withdrew ^ transferred,
            "exactly one spends the 50 000: {out:?} {moved:?}"
        );
        let refused = if withdrew { &moved.1 } else { &out.1 };
        assert_eq!(
            refused["error"]["reason"], "INSUFFICIENT_FUNDS",
            "{refused}"
        );
        if withdrew {
            let paid = p.settled("withdraws", &alice, &out.1).await;
            assert_eq!(paid["status"], "succeeded");
        }
        assert_eq!(p.balance(&alice, &card.id).await, 0);
    }
    p.assert_books_balance(&admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconciliation_finds_every_injected_mismatch_and_nothing_else() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, alice) = p.customer(&admin).await;
    let card = p.card(&alice, "IDR").await;
    let mut topups = Vec::new();
    for amount in [11_000, 12_000, 13_000, 14_000, 15_000] {
        let (_, t) = p.topup(&alice, &card.number, amount).await;
        assert_eq!(t["provider"], "sandpay", "{t}");
        topups.push(t["id"].as_str().unwrap().to_owned());
    }
    // One more whose callback is lost: settled at the provider, still pending here when the
    // run starts (the poller's first check is 5 s away). The run asks the provider first, so
    // it is booked, not reported missing on our side.
    p.sandpay
        .script(json!({"match": {"amount": 16_000}, "scenario": {"callback": "lost"}}))
        .await
        .unwrap();
    let (status, late) = top_up(&p, &alice, &card.number, 16_000, &key()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{late}");
    assert_eq!(late["status"], "pending", "{late}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let today = chrono::Utc::now().date_naive().to_string();
    let run = |operations: &'static str| {
        let (p, admin, today) = (&p, admin.clone(), today.clone());
        async move {
            let (status, report) = p
                .post(
                    &format!("/admin/reconciliation/{operations}/runs"),
                    Some(&admin),
                    json!({ "date": today }),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{report}");
            report
        }
    };
    let day = provider_day;

    // A clean day: every line matches, nothing else.
    let report = run("topups").await;
    let sandpay = day(&report, "sandpay");
    assert_eq!(
        (sandpay["lines"].as_i64(), sandpay["matched"].as_i64()),
        (Some(6), Some(6)),
        "{report}"
    );
    assert_eq!(sandpay["settled"]["IDR"], 81_000);
    let (_, late) = p
        .get(
            &format!("/topups/{}", late["id"].as_str().unwrap()),
            Some(&alice),
        )
        .await;
    assert_eq!(late["status"], "succeeded", "{late}");
    // The ledger posted exactly what the provider settled against its system account.
    assert_eq!(sandpay["ledger"], sandpay["settled"], "{report}");
    assert_eq!(sandpay["exceptions"], json!([]));
    assert_eq!(day(&report, "kilat")["exceptions"], json!([]));
    // The operator's command agrees: a clean day exits successfully.
    movement::app::reconcile_providers(
        movement::Kind::Topup,
        &p.topup_config,
        "topup_svc",
        Some(&today),
    )
    .await
    .unwrap();

    // The provider's report drifts, one way per kind of mismatch.
    for adjustment in [
        json!({"action": "drop", "reference": topups[0]}),
        json!({"action": "amount", "reference": topups[1], "amount": 12_500}),
        json!({"action": "currency", "reference": topups[2], "currency": "USD"}),
        json!({"action": "duplicate", "reference": topups[3]}),
        json!({"action": "extra", "reference": "not-ours", "kind": "charge", "amount": 999,
               "currency": "IDR", "date": today}),
    ] {
        p.sandpay
            .control("settlement-adjustments", adjustment)
            .await
            .unwrap();
    }
    // And our own books drift: a top-up recorded succeeded whose posting the ledger does not
    // hold (its row now names a posting that was never made). Completed rows are immutable,
    // so the corruption goes around the guard, as only a bug or a hand edit could.
    let db = sqlx::PgPool::connect(&p.database_url).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .unwrap();
    let unbooked: (uuid::Uuid,) =
        sqlx::query_as("UPDATE topup_svc.movements SET id = $2 WHERE id = $1 RETURNING id")
            .bind(uuid::Uuid::parse_str(&topups[4]).unwrap())
            .bind(uuid::Uuid::now_v7())
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    let unbooked = unbooked.0.to_string();
    let report = run("topups").await;
    let mut found: Vec<(String, String)> = day(&report, "sandpay")["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["reference"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    let mut expected = vec![
        ("missing_at_provider".to_owned(), topups[0].clone()),
        ("amount_mismatch".to_owned(), topups[1].clone()),
        ("currency_mismatch".to_owned(), topups[2].clone()),
        ("duplicate".to_owned(), topups[3].clone()),
        ("missing_on_our_side".to_owned(), "not-ours".to_owned()),
        ("ledger_mismatch".to_owned(), unbooked.clone()),
    ];
    expected.sort();
    assert_eq!(found, expected, "{report}");
    // The totals differ by exactly what the exceptions say: the report settles 12 500 + 14 000
    // (once) + 15 000 + 999 (+ 16 000) in IDR and 13 000 in USD; the ledger holds 12 000 +
    // 13 000 (IDR, ours) + 14 000 (+ 16 000), and nothing for the unbooked one.
    let sandpay = day(&report, "sandpay");
    assert_eq!(
        sandpay["settled"],
        json!({"IDR": 42_499 + 16_000, "USD": 13_000}),
        "{report}"
    );
    assert_eq!(
        sandpay["ledger"],
        json!({"IDR": 39_000 + 16_000}),
        "{report}"
    );
    // The command exits with an error while exceptions are open.
    let refused = movement::app::reconcile_providers(
        movement::Kind::Topup,
        &p.topup_config,
        "topup_svc",
        Some(&today),
    )
    .await
    .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("6 reconciliation exceptions are open"),
        "{refused:#}"
    );
    // Each exception is announced once, on the reconciliation topic.
    let reader = testkit::topic_reader(&events::topics::physical(
        events::topics::RECONCILIATION_EVENTS,
    ))
    .unwrap();
    let mut announced = std::collections::HashSet::new();
    while announced.len() < 6 {
        let (kind, reference) = testkit::next_matching(&reader, Duration::from_secs(20), |v| {
            (v["type"] == "reconciliation.exception_opened" && v["data"]["provider"] == "sandpay")
                .then(|| {
                    (
                        v["data"]["kind"].as_str().unwrap().to_owned(),
                        v["data"]["reference"].as_str().unwrap().to_owned(),
                    )
                })
        })
        .await
        .expect("an exception_opened event per exception");
        assert!(
            expected.contains(&(kind.clone(), reference.clone())),
            "{kind} {reference}"
        );
        assert!(announced.insert((kind, reference)), "announced twice");
    }
    let amount = day(&report, "sandpay")["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "amount_mismatch")
        .cloned()
        .unwrap();
    assert_eq!(
        (
            amount["expected_amount"].as_i64(),
            amount["reported_amount"].as_i64()
        ),
        (Some(12_000), Some(12_500))
    );

    // Idempotent: a second run records nothing new.
    run("topups").await;
    let (_, open) = p
        .get(
            "/admin/reconciliation/topups/exceptions?state=open",
            Some(&admin),
        )
        .await;
    assert_eq!(open["items"].as_array().unwrap().len(), 6, "{open}");

    // An operator resolves one with a note; it cannot be resolved twice, nor without a note.
    let id = amount["id"].as_str().unwrap();
    let path = format!("/admin/reconciliation/topups/exceptions/{id}/resolve");
    let (status, body) = p.post(&path, Some(&admin), json!({"note": " "})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "note");
    let (status, resolved) = p
        .post(
            &path,
            Some(&admin),
            json!({"note": "the provider charged a 500 fee; booked by finance"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["state"], "resolved");
    assert!(resolved["resolved_by"].as_str().unwrap().len() > 10);
    let (status, _) = p.post(&path, Some(&admin), json!({"note": "again"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, open) = p
        .get(
            "/admin/reconciliation/topups/exceptions?state=open",
            Some(&admin),
        )
        .await;
    assert_eq!(open["items"].as_array().unwrap().len(), 5);
    let resolution = testkit::next_matching(&reader, Duration::from_secs(20), |v| {
        (v["type"] == "reconciliation.exception_resolved" && v["data"]["id"] == id)
            .then(|| v["data"].clone())
    })
    .await
    .expect("an exception_resolved event");
    assert_eq!(resolution["state"], "resolved");
    assert_eq!(
        resolution["note"],
        "the provider charged a 500 fee; booked by finance"
    );

    // Only operators reconcile; payouts are reconciled by the withdraw service the same way.
    let (status, _) = p
        .post(
            "/admin/reconciliation/topups/runs",
            Some(&alice),
            json!({"date": today}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let report = run("withdraws").await;
    assert_eq!(day(&report, "sandpay")["lines"], 0, "{report}");
    assert_eq!(day(&report, "sandpay")["exceptions"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operators_correct_a_balance_only_by_an_audited_adjustment() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (alice_id, alice) = p.customer(&admin).await;
    let card = p.card(&alice, "IDR").await;
    let credit = |amount: i64, reason: &str| json!({"card_id": card.id, "direction": "credit", "amount": amount, "reason": reason});
    let reason = "goodwill credit for ticket #4711, approved by finance";

    // A customer cannot adjust, not even their own card; nothing moves.
    let (status, body) = p
        .post_idem("/admin/adjustments", &alice, &key(), credit(5_000, reason))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // An operator must say why (and which way, and how much); each bad field is named.
    let (status, body) = p
        .post_idem(
            "/admin/adjustments",
            &admin,
            &key(),
            json!({"card_id": card.id, "direction": "sideways", "amount": 0, "reason": "oops"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let mut fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["amount", "direction", "reason"], "{body}");
    assert_eq!(p.balance(&alice, &card.id).await, 0);

    // A credit is posted against the adjustments account, once per key.
    let first_key = key();
    let (status, adjusted) = p
        .post_idem(
            "/admin/adjustments",
            &admin,
            &first_key,
            credit(5_000, reason),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{adjusted}");
    assert_eq!(adjusted["status"], "posted");
    assert_eq!(adjusted["currency"], "IDR");
    let (status, again) = p
        .post_idem(
            "/admin/adjustments",
            &admin,
            &first_key,
            credit(5_000, reason),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(
        again["id"], adjusted["id"],
        "a retry is the same adjustment"
    );
    let (status, body) = p
        .post_idem(
            "/admin/adjustments",
            &admin,
            &first_key,
            credit(9_000, reason),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["reason"], "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(p.balance(&alice, &card.id).await, 5_000);
    assert_eq!(system_balance(&p, &admin, "adjustments:IDR").await, -5_000);

    // A debit beyond the balance is refused by the ledger, and still on the record.
    let (status, refused) = p
        .post_idem(
            "/admin/adjustments",
            &admin,
            &key(),
            json!({"card_id": card.id, "direction": "debit", "amount": 7_000,
                   "reason": "reverse a duplicated goodwill credit"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["status"], "rejected");
    assert_eq!(refused["rejection_reason"], "INSUFFICIENT_FUNDS");
    assert_eq!(p.balance(&alice, &card.id).await, 5_000);

    // The audit trail: who, why, what the ledger did; customers cannot read it.
    let (status, trail) = p
        .get(
            &format!("/admin/adjustments?card_id={}", card.id),
            Some(&admin),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{trail}");
    let items = trail["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{trail}");
    assert_eq!(items[0]["status"], "rejected");
    assert_eq!(items[1]["reason"], reason);
    assert!(items.iter().all(|a| a["requested_by"] != alice_id.as_str()));
    assert!(items[1]["requested_by"].as_str().unwrap().len() >= 32);
    let (status, _) = p.get("/admin/adjustments", Some(&alice)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The ledger's posting is of its own kind, never a top-up.
    let (status, posting) = p
        .get(
            &format!("/saldo/postings/{}", adjusted["id"].as_str().unwrap()),
            Some(&admin),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{posting}");
    assert_eq!(posting["kind"], "adjustment");
    p.assert_books_balance(&admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_order_based_provider_api_books_charges_and_payouts_the_same_way() {
    use crate::harness::KILAT_FIRST;
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, alice) = p.customer(&admin).await;
    let card = p.card(&alice, "IDR").await;
    assert_eq!(p.kilat.dialect, "orders");

    // A charge at kilat (its method's first provider): decimal amounts, notifications signed
    // with HMAC-SHA512 and sent twice here, booked once.
    p.kilat
        .script(json!({"match": {"amount": 25_050}, "scenario": {"decide_after_ms": 500, "callback": "twice"}}))
        .await
        .unwrap();
    // `collection` (topups, withdraws) through kilat's method, as the customer sent it.
    let via_kilat = |collection: &'static str, amount: i64| {
        let (p, alice, number) = (&p, alice.clone(), card.number.clone());
        async move {
            p.post_idem(
                &format!("/{collection}"),
                &alice,
                &key(),
                json!({"card_number": number, "amount": amount, "method": KILAT_FIRST}),
            )
            .await
        }
    };
    let (status, pending) = via_kilat("topups", 25_050).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{pending}");
    assert_eq!(pending["provider"], "kilat", "{pending}");
    let settled = p.settled_topup(&alice, &pending).await;
    assert_eq!(settled["status"], "succeeded", "{settled}");
    let id = pending["id"].as_str().unwrap();
    testkit::eventually(Duration::from_secs(10), "both notifications", || async {
        let stored = callbacks(&p, id).await;
        (stored.len() == 1 && stored[0].2 == 2).then_some(stored)
    })
    .await;
    assert_eq!(p.balance(&alice, &card.id).await, 25_050);

    // A notification forged with the other API's scheme, or with a wrong key, books nothing.
    let forged = serde_json::to_vec(&json!({
        "notification_id": "ntf_forged", "transaction_id": "op_forged", "order_id": id,
        "type": "charge", "transaction_status": "settlement", "gross_amount": "99999.00",
        "currency": "IDR"
    }))
    .unwrap();
    let now = chrono::Utc::now().timestamp();
    for headers in [
        vec![(
            "sandbox-signature",
            providers::sandbox::sign(&p.kilat.webhook_secret, now, &forged),
        )],
        vec![
            ("x-orders-timestamp", now.to_string()),
            (
                "x-orders-signature",
                providers::orders::sign("not-the-secret", now, &forged),
            ),
        ],
    ] {
        let mut request = p
            .http
            .post(format!("{}/provider-callbacks/kilat/topups", p.base))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let answer = request.body(forged.clone()).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(p.balance(&alice, &card.id).await, 25_050);

    // A payout at kilat: held, then paid out on its word.
    let (status, payout) = via_kilat("withdraws", 10_025).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{payout}");
    assert_eq!(payout["provider"], "kilat", "{payout}");
    let paid = p.settled("withdraws", &alice, &payout).await;
    assert_eq!(paid["status"], "succeeded", "{paid}");
    assert_eq!(p.balance(&alice, &card.id).await, 15_025);
    assert_eq!(
        system_balance(&p, &admin, "provider:kilat:IDR").await,
        -25_050 + 10_025
    );

    // Its CSV settlement report reconciles cleanly with the books, both ways.
    let today = chrono::Utc::now().date_naive().to_string();
    for (operations, amount) in [("topups", 25_050), ("withdraws", 10_025)] {
        let (status, report) = p
            .post(
                &format!("/admin/reconciliation/{operations}/runs"),
                Some(&admin),
                json!({ "date": today }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        let kilat = provider_day(&report, "kilat");
        assert_eq!(kilat["matched"], 1, "{report}");
        assert_eq!(kilat["exceptions"], json!([]), "{report}");
        assert_eq!(kilat["settled"]["IDR"], amount, "{report}");
        assert_eq!(kilat["ledger"], kilat["settled"], "{report}");
    }
    p.assert_books_balance(&admin).await;
}
