//! Cards, the ledger and money movements end to end: HTTP through NGINX → gateway → gRPC
//! services → PostgreSQL, with card accounts opened from Kafka events.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::harness::Platform;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_customer_moves_money_and_every_record_agrees() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (alice_id, alice) = p.customer(&admin).await;
    let (bob_id, bob) = p.customer(&admin).await;

    // A new card shows a zero balance once saldo has consumed card.created.
    let a = p.card(&alice, "IDR").await;
    let b = p.card(&bob, "IDR").await;
    assert_eq!(p.balance(&alice, &a.id).await, 0);
    assert!(card_number_valid(&a.number));
    assert_eq!(a.cvv.len(), 3);

    let (status, topup) = p.topup(&alice, &a.number, 100_000).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{topup}");
    assert_eq!(topup["status"], "succeeded", "{topup}");
    assert_eq!(topup["method"], "bca");
    let (status, transfer) = p.transfer(&alice, &a.number, &b.number, 30_000).await;
    assert_eq!(status, StatusCode::CREATED, "{transfer}");
    assert_eq!(transfer["to_user_id"], bob_id.as_str());
    assert_eq!(transfer["from_user_id"], alice_id.as_str());
    let (status, withdraw) = p.withdraw(&alice, &a.number, 20_000).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{withdraw}");
    assert_eq!(withdraw["status"], "succeeded", "{withdraw}");

    assert_eq!(p.balance(&alice, &a.id).await, 50_000);
    assert_eq!(p.balance(&bob, &b.id).await, 30_000);

    // History: lists per kind and per card, and the statement with running balances.
    let (_, topups) = p
        .get(&format!("/cards/{}/topups", a.id), Some(&alice))
        .await;
    assert_eq!(topups["page"]["total_items"], 1);
    let (_, sent) = p
        .get(
            &format!("/cards/{}/transfers?direction=outgoing", a.id),
            Some(&alice),
        )
        .await;
    assert_eq!(sent["page"]["total_items"], 1);
    let (_, received) = p.get("/transfers", Some(&bob)).await;
    assert_eq!(received["items"][0]["id"], transfer["id"]);
    let (_, withdraws) = p.get("/withdraws?status=succeeded", Some(&alice)).await;
    assert_eq!(withdraws["page"]["total_items"], 1);
    let (status, statement) = p
        .get(&format!("/cards/{}/statement", a.id), Some(&alice))
        .await;
    assert_eq!(status, StatusCode::OK, "{statement}");
    let lines: Vec<(String, i64, i64)> = statement["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap().to_owned(),
                l["amount"].as_i64().unwrap(),
                l["balance_after"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            ("withdraw".to_owned(), -20_000, 50_000),
            ("transfer".to_owned(), -30_000, 70_000),
            ("topup".to_owned(), 100_000, 100_000),
        ]
    );
    assert_eq!(statement["items"][1]["posting_id"], transfer["id"]);
    let (_, posting) = p
        .get(
            &format!("/saldo/postings/{}", transfer["id"].as_str().unwrap()),
            Some(&admin),
        )
        .await;
    assert_eq!(posting["status"], "posted");
    assert_eq!(posting["amount"], 30_000);

    // Every balance change and every completion went out through the outbox to Kafka.
    let reader =
        testkit::topic_reader(&events::topics::physical(events::topics::SALDO_EVENTS)).unwrap();
    let mut deltas = Vec::new();
    while deltas.len() < 3 {
        let delta = testkit::next_matching(&reader, Duration::from_secs(20), |v| {
            (v["type"] == "balance.changed" && v["data"]["card_id"] == a.id.as_str()).then(|| {
                (
                    v["data"]["delta"].as_i64().unwrap(),
                    v["data"]["balance"].as_i64().unwrap(),
                )
            })
        })
        .await
        .expect("balance.changed events of the card");
        deltas.push(delta);
    }
    assert_eq!(
        deltas,
        vec![(100_000, 100_000), (-30_000, 70_000), (-20_000, 50_000)]
    );
    let reader =
        testkit::topic_reader(&events::topics::physical(events::topics::TRANSFER_EVENTS)).unwrap();
    let event = testkit::next_matching(&reader, Duration::from_secs(20), |v| {
        (v["subject"] == transfer["id"]).then(|| v.clone())
    })
    .await
    .unwrap();
    assert_eq!(event["type"], "transfer.succeeded");
    assert_eq!(event["data"]["amount"], 30_000);
    assert_eq!(event["data"]["to_user_id"], bob_id.as_str());

    // Lists mask numbers; single lookups by the owner show them.
    let (_, cards) = p.get("/cards", Some(&alice)).await;
    assert_eq!(
        cards["items"][0]["masked_number"],
        format!("**** **** **** {}", &a.number[12..])
    );
    assert!(cards["items"][0].get("number").is_none());
    let (_, own) = p
        .post("/cards/lookup", Some(&alice), json!({"number": a.number}))
        .await;
    assert_eq!(own["id"], a.id.as_str());

    // Another customer sees none of it and cannot move it.
    for path in [
        format!("/cards/{}", a.id),
        format!("/cards/{}/balance", a.id),
        format!("/cards/{}/statement", a.id),
        format!("/topups/{}", topup["id"].as_str().unwrap()),
    ] {
        let (status, body) = p.get(&path, Some(&bob)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    // Someone else's card number and a number nobody holds answer alike.
    let (status, theirs) = p
        .post("/cards/lookup", Some(&bob), json!({"number": a.number}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{theirs}");
    let mut unknown = a.number.clone();
    unknown.replace_range(6..15, "000000000");
    let unknown = luhn_complete(&unknown[..15]);
    assert_ne!(unknown, a.number);
    let (status, nobodys) = p
        .post("/cards/lookup", Some(&bob), json!({"number": unknown}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{nobodys}");
    assert_eq!(theirs["error"]["reason"], nobodys["error"]["reason"]);
    assert_eq!(theirs["error"]["message"], nobodys["error"]["message"]);
    // No card number ever appears in a URL, so none is in NGINX's access log.
    let log = p.nginx.access_log();
    assert!(!log.is_empty());
    assert!(
        !log.contains(&a.number) && !log.contains(&b.number),
        "{log}"
    );
    let (status, body) = p.transfer(&bob, &a.number, &b.number, 1_000).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["reason"], "CARD_NOT_OWNED");
    assert_eq!(body["error"]["details"][0]["field"], "from_card_number");
    let (status, body) = p.withdraw(&bob, &a.number, 1_000).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = p
        .get("/topups?user_id=".to_owned().as_str(), Some(&bob))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = p
        .get(&format!("/topups?user_id={alice_id}"), Some(&bob))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = p.get("/saldo/reconcile", Some(&bob)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Completed movements cannot be changed or deleted.
    for method in ["PATCH", "DELETE", "PUT"] {
        let (status, _) = p
            .call(
                method,
                &format!("/transfers/{}", transfer["id"].as_str().unwrap()),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
    }

    // A card holding money cannot be deleted permanently; an empty one can.
    let (status, _) = p
        .post(&format!("/cards/{}/trash", a.id), Some(&alice), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = p
        .call("DELETE", &format!("/cards/{}", a.id), Some(&alice), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["reason"], "CARD_HAS_BALANCE");
    let (status, body) = p.topup(&alice, &a.number, 1_000).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["reason"], "CARD_INACTIVE");
    let empty = p.card(&alice, "IDR").await;
    p.post(
        &format!("/cards/{}/trash", empty.id),
        Some(&alice),
        json!({}),
    )
    .await;
    let (status, body) = p
        .call(
            "DELETE",
            &format!("/cards/{}", empty.id),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    p.assert_books_balance(&admin).await;
}

/// `prefix` (15 digits) with the Luhn check digit appended.
fn luhn_complete(prefix: &str) -> String {
    (0..10)
        .map(|d| format!("{prefix}{d}"))
        .find(|n| card_number_valid(n))
        .unwrap()
}

fn card_number_valid(number: &str) -> bool {
    let digits: Vec<u32> = number.chars().map(|c| c.to_digit(10).unwrap()).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                *d
            }
        })
        .sum();
    digits.len() == 16 && sum.is_multiple_of(10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_criss_cross_movements_never_create_or_lose_money() {
    let p = Arc::new(Platform::start().await);
    let admin = p.admin_token().await;
    const START: i64 = 500_000;
    let mut people = Vec::new();
    for _ in 0..4 {
        let (_, token) = p.customer(&admin).await;
        let card = p.card(&token, "IDR").await;
        let (status, body) = p.topup(&token, &card.number, START).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["status"], "succeeded", "{body}");
        people.push((token, card));
    }
    let people = Arc::new(people);

    // 80 transfers criss-crossing the same four cards (i→j and j→i at once), with amounts
    // large enough that some must fail for insufficient funds, plus 12 topups and 12
    // withdraws on the same cards, all in flight together.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..104_usize {
        let p = p.clone();
        let people = people.clone();
        tasks.spawn(async move {
            let amount = 20_000 + (n as i64 * 7_919) % 180_000;
            let i = n % 4;
            let (token, card) = &people[i];
            let (kind, (status, body)) = if n < 80 {
                let j = (i + 1 + (n / 4) % 3) % 4;
                (
                    "transfer",
                    p.transfer(token, &card.number, &people[j].1.number, amount)
                        .await,
                )
            } else if n % 2 == 0 {
                ("topup", p.topup(token, &card.number, amount).await)
            } else {
                ("withdraw", p.withdraw(token, &card.number, amount).await)
            };
            (kind, amount, status, body)
        });
    }
    let mut outcomes: HashMap<(&str, &str), usize> = HashMap::new();
    let (mut topped_up, mut withdrawn) = (4 * START, 0);
    while let Some(result) = tasks.join_next().await {
        let (kind, amount, status, body) = result.unwrap();
        let outcome = match status {
            StatusCode::CREATED => "succeeded",
            // A top-up: accepted pending, then decided by its provider (awaited by p.topup).
            StatusCode::ACCEPTED if body["status"] == "succeeded" => "succeeded",
            StatusCode::UNPROCESSABLE_ENTITY if body["error"]["reason"] == "INSUFFICIENT_FUNDS" => {
                "insufficient_funds"
            }
            other => panic!("{kind} of {amount}: unexpected {other}: {body}"),
        };
        if outcome == "succeeded" {
            match kind {
                "topup" => topped_up += amount,
                "withdraw" => withdrawn += amount,
                _ => {}
            }
        }
        *outcomes.entry((kind, outcome)).or_default() += 1;
    }
    eprintln!("outcomes: {outcomes:?}");
    assert!(
        outcomes
            .get(&("transfer", "succeeded"))
            .copied()
            .unwrap_or(0)
            > 20
    );

    let mut total = 0;
    for (token, card) in people.iter() {
        let balance = p.balance(token, &card.id).await;
        assert!(balance >= 0, "negative balance {balance}");
        total += balance;
    }
    assert_eq!(total, topped_up - withdrawn, "money was created or lost");
    let report = p.assert_books_balance(&admin).await;
    assert_eq!(report["negative_card_balances"], 0);

    // Every failed transfer is recorded as failed, every success as succeeded.
    let (_, failed) = p
        .get("/transfers?status=failed&page_size=100", Some(&admin))
        .await;
    let expected_failed = outcomes
        .get(&("transfer", "insufficient_funds"))
        .copied()
        .unwrap_or(0);
    assert_eq!(failed["page"]["total_items"], expected_failed as u64);
    let (_, pending) = p.get("/transfers?status=pending", Some(&admin)).await;
    assert_eq!(pending["page"]["total_items"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_keys_replay_refuse_and_serialize() {
    let p = Arc::new(Platform::start().await);
    let admin = p.admin_token().await;
    let (_, alice) = p.customer(&admin).await;
    let card = p.card(&alice, "IDR").await;
    let body = json!({"card_number": card.number, "amount": 10_000, "method": "ovo"});

    // No key: refused, naming the header.
    let (status, err) = p.post("/topups", Some(&alice), body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["details"][0]["field"], "Idempotency-Key");

    // Same key twice: one top-up. While its provider decides, the replay answers it pending
    // (202); once decided, with the outcome (201) — never a second charge.
    let (s1, first) = p.post_idem("/topups", &alice, "key-1", body.clone()).await;
    let (s2, second) = p.post_idem("/topups", &alice, "key-1", body.clone()).await;
    assert_eq!(s1, StatusCode::ACCEPTED, "{first}");
    assert!(
        matches!(s2, StatusCode::ACCEPTED | StatusCode::CREATED),
        "{s2}: {second}"
    );
    assert_eq!(first["id"], second["id"]);
    let settled = p.settled_topup(&alice, &first).await;
    assert_eq!(settled["status"], "succeeded", "{settled}");
    let (s3, third) = p.post_idem("/topups", &alice, "key-1", body.clone()).await;
    assert_eq!(s3, StatusCode::CREATED, "{third}");
    assert_eq!(third, settled);
    assert_eq!(p.balance(&alice, &card.id).await, 10_000);
    let charges = p.sandpay.operations().await.unwrap();
    assert_eq!(
        charges
            .iter()
            .filter(|op| op["reference"] == first["id"])
            .count(),
        1,
        "charged once"
    );

    // Same key, different body: 422, nothing moves.
    let mut other = body.clone();
    other["amount"] = json!(99_000);
    let (status, err) = p.post_idem("/topups", &alice, "key-1", other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["reason"], "IDEMPOTENCY_KEY_REUSED");

    // Keys are per caller: another customer's "key-1" is theirs.
    let (_, bob) = p.customer(&admin).await;
    let bob_card = p.card(&bob, "IDR").await;
    let (status, _) = p
        .post_idem(
            "/topups",
            &bob,
            "key-1",
            json!({"card_number": bob_card.number, "amount": 10_000, "method": "ovo"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // Twelve concurrent requests with one new key: one movement; the others replay it or
    // are told it is in progress.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let p = p.clone();
        let alice = alice.clone();
        let number = card.number.clone();
        tasks.spawn(async move {
            p.post_idem(
                "/transfers",
                &alice,
                "key-concurrent",
                json!({"from_card_number": number, "to_card_number": "4000000000000002", "amount": 100}),
            )
            .await
        });
    }
    // (the receiver does not exist: every attempt is refused before anything is recorded)
    while let Some(result) = tasks.join_next().await {
        let (status, body) = result.unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let p = p.clone();
        let alice = alice.clone();
        let body = json!({"card_number": card.number, "amount": 1_000, "method": "gopay"});
        tasks.spawn(async move {
            p.post_idem("/withdraws", &alice, "key-concurrent", body)
                .await
        });
    }
    // A withdrawal is a payout: answered 202 while its provider pays it out (201 once it
    // has); every answer is the one withdrawal.
    let mut created = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (status, body) = result.unwrap();
        match status {
            StatusCode::ACCEPTED | StatusCode::CREATED => created.push(body),
            StatusCode::CONFLICT => {
                assert_eq!(
                    body["error"]["reason"], "IDEMPOTENCY_KEY_IN_PROGRESS",
                    "{body}"
                )
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(!created.is_empty());
    assert!(
        created.iter().all(|b| b["id"] == created[0]["id"]),
        "replays differ"
    );
    assert_eq!(p.balance(&alice, &card.id).await, 9_000, "held once");
    let paid = p.settled("withdraws", &alice, &created[0]).await;
    assert_eq!(paid["status"], "succeeded", "{paid}");
    assert_eq!(p.balance(&alice, &card.id).await, 9_000);
    let (_, withdraws) = p.get("/withdraws", Some(&alice)).await;
    assert_eq!(withdraws["page"]["total_items"], 1);

    // A failed movement replays as the same failure.
    let transfer = json!({"from_card_number": card.number, "to_card_number": bob_card.number, "amount": 50_000});
    let (s1, e1) = p
        .post_idem("/transfers", &alice, "key-fail", transfer.clone())
        .await;
    let (s2, e2) = p
        .post_idem("/transfers", &alice, "key-fail", transfer)
        .await;
    assert_eq!(
        (s1, s2),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::UNPROCESSABLE_ENTITY
        )
    );
    assert_eq!(e1["error"]["reason"], "INSUFFICIENT_FUNDS");
    assert_eq!(e1["error"]["message"], e2["error"]["message"]);
    let (_, failed) = p.get("/transfers?status=failed", Some(&alice)).await;
    assert_eq!(failed["page"]["total_items"], 1);

    assert_eq!(p.balance(&alice, &card.id).await, 9_000);
    assert_eq!(p.balance(&bob, &bob_card.id).await, 10_000);
    p.assert_books_balance(&admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_movements_are_refused_precisely_and_move_nothing() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, alice) = p.customer(&admin).await;
    let (_, bob) = p.customer(&admin).await;
    let a = p.card(&alice, "IDR").await;
    let a2 = p.card(&alice, "IDR").await;
    let usd = p.card(&alice, "USD").await;
    let b = p.card(&bob, "IDR").await;
    let (status, _) = p.topup(&alice, &a.number, 10_000).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let expect =
        |status: StatusCode, body: &Value, want: StatusCode, reason: &str, field: Option<&str>| {
            assert_eq!(status, want, "{body}");
            assert_eq!(body["error"]["reason"], reason, "{body}");
            if let Some(field) = field {
                let fields: Vec<&str> = body["error"]["details"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d["field"].as_str().unwrap())
                    .collect();
                assert!(fields.contains(&field), "{field} not in {body}");
            }
        };

    let (s, body) = p.transfer(&alice, &a.number, &a.number, 1_000).await;
    expect(
        s,
        &body,
        StatusCode::BAD_REQUEST,
        "VALIDATION_FAILED",
        Some("to_card_number"),
    );
    let (s, body) = p.transfer(&alice, &a.number, &b.number, 0).await;
    expect(
        s,
        &body,
        StatusCode::BAD_REQUEST,
        "VALIDATION_FAILED",
        Some("amount"),
    );
    let (s, body) = p.transfer(&alice, &a.number, &b.number, -5_000).await;
    expect(
        s,
        &body,
        StatusCode::BAD_REQUEST,
        "VALIDATION_FAILED",
        Some("amount"),
    );
    let (s, body) = p.topup(&alice, &a.number, 50).await;
    expect(
        s,
        &body,
        StatusCode::BAD_REQUEST,
        "VALIDATION_FAILED",
        Some("amount"),
    );
    let (s, body) = p.transfer(&alice, &a.number, &b.number, 10_001).await;
    expect(
        s,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "INSUFFICIENT_FUNDS",
        Some("amount"),
    );
    let (s, body) = p.withdraw(&alice, &a.number, 10_001).await;
    expect(
        s,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "INSUFFICIENT_FUNDS",
        Some("amount"),
    );
    let (s, body) = p.transfer(&alice, &a.number, &usd.number, 1_000).await;
    expect(
        s,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "CURRENCY_MISMATCH",
        None,
    );
    let (s, body) = p
        .transfer(&alice, &a.number, "4000000000000002", 1_000)
        .await;
    expect(
        s,
        &body,
        StatusCode::NOT_FOUND,
        "CARD_NOT_FOUND",
        Some("to_card_number"),
    );
    let (s, body) = p.transfer(&alice, &a.number, "12ab", 1_000).await;
    expect(
        s,
        &body,
        StatusCode::BAD_REQUEST,
        "VALIDATION_FAILED",
        Some("to_card_number"),
    );
    let (s, body) = p
        .post_idem(
            "/topups",
            &alice,
            "k-method",
            json!({"card_number": a.number, "amount": 1_000, "method": "bitcoin"}),
        )
        .await;
    expect(
        s,
        &body,
        StatusCode::BAD_REQUEST,
        "VALIDATION_FAILED",
        Some("method"),
    );
    let (s, body) = p
        .post_idem(
            "/topups",
            &alice,
            "k-field",
            json!({"card_number": a.number, "amount": "lots", "method": "bca"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "amount");

    // An expired card (its expiry month has passed) moves nothing, either way.
    let pool = sqlx::PgPool::connect(&p.database_url).await.unwrap();
    sqlx::query(
        "UPDATE card_svc.cards SET expiry_year = 2024, expiry_month = 1 WHERE id = $1::uuid",
    )
    .bind(&a2.id)
    .execute(&pool)
    .await
    .unwrap();
    let (s, body) = p.transfer(&alice, &a.number, &a2.number, 1_000).await;
    expect(
        s,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "CARD_EXPIRED",
        Some("to_card_number"),
    );
    let (s, body) = p.topup(&alice, &a2.number, 1_000).await;
    expect(
        s,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "CARD_EXPIRED",
        Some("card_number"),
    );

    assert_eq!(p.balance(&alice, &a.id).await, 10_000);
    assert_eq!(p.balance(&alice, &a2.id).await, 0);
    assert_eq!(p.balance(&bob, &b.id).await, 0);
    p.assert_books_balance(&admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_duplicated_card_created_event_opens_one_account() {
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, alice) = p.customer(&admin).await;
    let card = p.card(&alice, "IDR").await;

    // Find the original event and deliver it again: once as is (a redelivery) and once with a
    // fresh event id (a producer that retried), both keyed like the original.
    let reader =
        testkit::topic_reader(&events::topics::physical(events::topics::CARD_EVENTS)).unwrap();
    let original = testkit::next_matching(&reader, Duration::from_secs(20), |v| {
        (v["type"] == "card.created" && v["data"]["card_id"] == card.id.as_str()).then(|| v.clone())
    })
    .await
    .unwrap();
    let mut fresh_id = original.clone();
    fresh_id["id"] = json!(uuid::Uuid::now_v7());
    // A sentinel for another card on the same partition: once its account exists, the
    // duplicates before it have been consumed.
    let sentinel_card = uuid::Uuid::now_v7();
    let mut sentinel = fresh_id.clone();
    sentinel["id"] = json!(uuid::Uuid::now_v7());
    sentinel["data"]["card_id"] = json!(sentinel_card);
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", testkit::kafka_brokers())
        .create()
        .unwrap();
    for event in [&original, &fresh_id, &original, &sentinel] {
        let payload = event.to_string();
        producer
            .send(
                FutureRecord::to(&events::topics::physical(events::topics::CARD_EVENTS))
                    .key(card.id.as_str())
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let pool = sqlx::PgPool::connect(&p.database_url).await.unwrap();
    testkit::eventually(
        Duration::from_secs(30),
        "sentinel account opened",
        || async {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM saldo_svc.accounts WHERE card_id = $1")
                    .bind(sentinel_card)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            (n == 1).then_some(())
        },
    )
    .await;
    let accounts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM saldo_svc.accounts WHERE card_id = $1::uuid")
            .bind(&card.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(accounts, 1);
    let opened: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM saldo_svc.outbox WHERE event_type = 'account.opened'
         AND payload->'data'->>'card_id' = $1",
    )
    .bind(&card.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(opened, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn card_lifecycle_admin_views_and_bad_input() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (carol_id, carol) = p.customer(&admin).await;
    let (_, dave) = p.customer(&admin).await;

    // An admin issues a card for a customer; a customer cannot issue one for someone else,
    // and a card for a user who does not exist is refused.
    let (status, body) = p
        .post(
            "/cards",
            Some(&admin),
            json!({"brand": "jcb", "card_type": "credit", "currency": "USD", "user_id": carol_id, "valid_years": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["card"]["user_id"], carol_id.as_str());
    assert!(body["card"]["number"].as_str().unwrap().starts_with("35"));
    let issued_id = body["card"]["id"].as_str().unwrap().to_owned();
    let last4 = body["card"]["number"].as_str().unwrap()[12..].to_owned();
    let (status, body) = p
        .post(
            "/cards",
            Some(&dave),
            json!({"brand": "visa", "card_type": "debit", "currency": "IDR", "user_id": carol_id}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = p
        .post(
            "/cards",
            Some(&admin),
            json!({"brand": "visa", "card_type": "debit", "currency": "IDR", "user_id": uuid::Uuid::now_v7()}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["reason"], "USER_NOT_FOUND");

    // Bad input names every field and creates nothing.
    let (status, body) = p
        .post(
            "/cards",
            Some(&carol),
            json!({"brand": "amex", "card_type": "debit", "currency": "XXX", "valid_years": 11}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["brand", "currency", "valid_years"]);
    let (status, body) = p
        .post(
            "/cards",
            Some(&carol),
            json!({"brand": "visa", "card_type": "prepaid", "currency": "IDR"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "card_type");

    // Update: type and renewal; an expiry in the past is refused.
    let (status, body) = p
        .call(
            "PATCH",
            &format!("/cards/{issued_id}"),
            Some(&carol),
            Some(json!({"card_type": "debit"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["card_type"], "debit");
    let (status, body) = p
        .call(
            "PATCH",
            &format!("/cards/{issued_id}"),
            Some(&carol),
            Some(json!({"expiry_month": 1, "expiry_year": 2020})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Lists: own cards with search, trashed and active views; admins see everyone's.
    let funded = p.card(&carol, "IDR").await;
    let empty = p.card(&carol, "IDR").await;
    let (status, _) = p.topup(&carol, &funded.number, 5_000).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, found) = p.get(&format!("/cards?search={last4}"), Some(&carol)).await;
    assert!(
        found["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == issued_id.as_str())
    );
    let (_, mine) = p.get("/cards", Some(&carol)).await;
    assert_eq!(mine["page"]["total_items"], 3);
    let (status, _) = p.get("/cards?user_id=all", Some(&carol)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, all) = p
        .get(&format!("/cards?user_id={carol_id}"), Some(&admin))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["page"]["total_items"], 3);
    for id in [&funded.id, &empty.id, &issued_id] {
        let (status, _) = p
            .post(&format!("/cards/{id}/trash"), Some(&carol), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (_, trashed) = p.get("/cards?status=trashed", Some(&carol)).await;
    assert_eq!(trashed["page"]["total_items"], 3);
    let (_, active) = p.get("/cards", Some(&carol)).await;
    assert_eq!(active["page"]["total_items"], 0);
    let (status, restored) = p
        .post(
            &format!("/cards/{issued_id}/restore"),
            Some(&carol),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(restored["deleted_at"].is_null());

    // Bulk: customers may not; deleting all trashed keeps the card that holds money.
    let (status, _) = p.call("DELETE", "/cards/trash", Some(&carol), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = p.call("DELETE", "/cards/trash", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["affected"].as_u64().unwrap() >= 1);
    let (status, _) = p.get(&format!("/cards/{}", empty.id), Some(&carol)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the empty trashed card is gone"
    );
    let (status, kept) = p.get(&format!("/cards/{}", funded.id), Some(&carol)).await;
    assert_eq!(status, StatusCode::OK, "the funded card is kept");
    assert!(!kept["deleted_at"].is_null());
    let (status, body) = p.post("/cards/restore-all", Some(&admin), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, active) = p.get("/cards", Some(&carol)).await;
    assert_eq!(active["page"]["total_items"], 2);

    // Ledger views: admins list accounts; a customer only their own.
    let (status, accounts) = p
        .get("/saldo/accounts?kind=card&min_balance=1", Some(&admin))
        .await;
    assert_eq!(status, StatusCode::OK, "{accounts}");
    assert!(
        accounts["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["card_id"] == funded.id.as_str())
    );
    let (status, _) = p.get("/saldo/accounts", Some(&carol)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, own) = p
        .get(
            &format!("/saldo/accounts?owner_user_id={carol_id}"),
            Some(&carol),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    let (status, body) = p.get("/saldo/accounts?kind=savings", Some(&admin)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["details"][0]["field"], "kind");
    // `/ledger/*` is the documented alias of `/saldo/*`: the same answers, the same doors.
    let (status, aliased) = p
        .get("/ledger/accounts?kind=card&min_balance=1", Some(&admin))
        .await;
    assert_eq!(status, StatusCode::OK, "{aliased}");
    assert_eq!(aliased, accounts);
    let (status, _) = p.get("/ledger/accounts", Some(&carol)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    p.assert_books_balance(&admin).await;
}
