//! Two-phase payments and fees end to end, through NGINX: a merchant authorizes (the money is
//! held on the card, the ledger refusing to let anything else spend it), captures part of it
//! (the rest released) and refunds some; voids, customer cancels and the expiry job release
//! an authorization; concurrent captures and voids settle it exactly once; a pricing plan's
//! fee is booked as the third leg of the payment's own posting and returned by refunds in
//! proportion. The books balance after each.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::receiver::{Received, Receiver, signed_with};
use crate::harness::{Card, Merchant, Options, Platform};

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn body(card: &Card, amount: i64, capture: bool) -> Value {
    json!({"card_number": card.number, "cvv": card.cvv, "amount": amount, "method": "visa",
           "description": "order 42", "capture": capture})
}

async fn authorize(p: &Platform, merchant: &Merchant, card: &Card, amount: i64) -> Value {
    let (status, payment, _) = p
        .pay(&merchant.key, &key(), body(card, amount, false))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["status"], "authorized", "{payment}");
    assert_eq!(payment["capture_method"], "manual");
    payment
}

async fn capture(
    p: &Platform,
    merchant: &Merchant,
    payment: &str,
    idempotency_key: &str,
    amount: Option<i64>,
) -> (StatusCode, Value) {
    p.call_with(
        "POST",
        &format!("/payments/{payment}/capture"),
        None,
        Some(amount.map_or(json!({}), |a| json!({"amount": a}))),
        &[
            ("X-Api-Key", &merchant.key),
            ("Idempotency-Key", idempotency_key),
        ],
    )
    .await
}

async fn void(p: &Platform, api_key: &str, payment: &str) -> (StatusCode, Value) {
    p.call_with(
        "POST",
        &format!("/payments/{payment}/void"),
        None,
        None,
        &[("X-Api-Key", api_key)],
    )
    .await
}

/// (balance, held, available) of a card.
async fn card_account(p: &Platform, token: &str, card: &Card) -> (i64, i64, i64) {
    let (status, a) = p
        .get(&format!("/cards/{}/balance", card.id), Some(token))
        .await;
    assert_eq!(status, StatusCode::OK, "{a}");
    (
        a["balance"].as_i64().unwrap(),
        a["held"].as_i64().unwrap(),
        a["available"].as_i64().unwrap(),
    )
}

fn reason(body: &Value) -> &str {
    body["error"]["reason"].as_str().unwrap_or_default()
}

/// The platform's fee revenue account (`fees:IDR`) as the admin sees it.
async fn revenue(p: &Platform, admin: &str) -> (String, i64) {
    let (status, accounts) = p
        .get("/saldo/accounts?kind=system&page_size=100", Some(admin))
        .await;
    assert_eq!(status, StatusCode::OK, "{accounts}");
    accounts["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["code"] == "fees:IDR")
        .map(|a| {
            (
                a["id"].as_str().unwrap().to_owned(),
                a["balance"].as_i64().unwrap(),
            )
        })
        .unwrap_or_default()
}

/// The fee test: 100 000 at 2.9 % + 2 000 books 100 000 out of the card, 95 100 to
/// the merchant and 4 900 to revenue in one posting; a refund of half returns half the fee.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fee_is_the_third_leg_of_the_payments_posting_and_refunds_return_it_in_proportion() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, owner) = p.customer(&admin).await;
    let (customer, card) = p.funded_card(&admin, 150_000).await;
    let merchant = p.active_merchant(&admin, &owner, "IDR").await;
    let pricing = format!("/merchants/{}/pricing", merchant.id);
    let plan = json!({"currency": "IDR", "percent_bps": 290, "fixed_fee": 2_000});

    // Only an admin sets a plan; bad input names its field.
    let (status, _) = p
        .call_with("PUT", &pricing, Some(&owner), Some(plan.clone()), &[])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (bad, field) in [
        (
            json!({"currency": "IDR", "percent_bps": 10_001, "fixed_fee": 0}),
            "percent_bps",
        ),
        (
            json!({"currency": "IDR", "percent_bps": 100, "fixed_fee": -1}),
            "fixed_fee",
        ),
        (
            json!({"currency": "idr", "percent_bps": 100, "fixed_fee": 0}),
            "currency",
        ),
        (
            json!({"currency": "IDR", "percent_bps": 1, "fixed_fee": 0, "refund_fee": "some"}),
            "refund_fee",
        ),
    ] {
        let (status, error) = p
            .call_with("PUT", &pricing, Some(&admin), Some(bad.clone()), &[])
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {error}");
        assert_eq!(error["error"]["details"][0]["field"], field, "{error}");
    }
    let (status, set) = p
        .call_with("PUT", &pricing, Some(&admin), Some(plan), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    let (status, plans) = p.get(&pricing, Some(&owner)).await;
    assert_eq!(status, StatusCode::OK, "{plans}");
    assert_eq!(plans["items"][0]["percent_bps"], 290);
    assert_eq!(plans["items"][0]["refund_fee"], "proportional");

    let (status, payment, _) = p
        .pay(&merchant.key, &key(), body(&card, 100_000, true))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(payment["fee_amount"], 4_900);
    assert_eq!(payment["net_amount"], 95_100);
    let payment_id = payment["id"].as_str().unwrap();
    assert_eq!(p.balance(&customer, &card.id).await, 50_000);
    assert_eq!(p.merchant_balance(&owner, &merchant.id).await, 95_100);
    let (fees_account, fees) = revenue(&p, &admin).await;
    assert_eq!(fees, 4_900);

    // One posting with all three legs.
    let (status, posting) = p
        .get(&format!("/saldo/postings/{payment_id}"), Some(&admin))
        .await;
    assert_eq!(status, StatusCode::OK, "{posting}");
    assert_eq!(posting["amount"], 100_000);
    assert_eq!(posting["fee_amount"], 4_900);
    assert_eq!(posting["fee_account_id"], fees_account.as_str());
    // Statements show gross, fee and net.
    let (_, statement) = p
        .get(
            &format!("/merchants/{}/statement", merchant.id),
            Some(&owner),
        )
        .await;
    let line = &statement["items"][0];
    assert_eq!(line["posting_id"], payment_id, "{statement}");
    assert_eq!(
        (&line["gross"], &line["fee"], &line["amount"]),
        (&json!(100_000), &json!(4_900), &json!(95_100))
    );
    let (_, statement) = p
        .get(&format!("/cards/{}/statement", card.id), Some(&customer))
        .await;
    assert_eq!(statement["items"][0]["amount"], -100_000);
    assert_eq!(statement["items"][0]["fee"], 0, "the customer pays no fee");

    // A refund of half returns half the fee: the merchant pays 47 550, revenue 2 450.
    let (status, refund) = p.refund(&merchant.key, payment_id, &key(), 50_000).await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    assert_eq!(refund["fee_returned"], 2_450);
    assert_eq!(p.balance(&customer, &card.id).await, 100_000);
    assert_eq!(p.merchant_balance(&owner, &merchant.id).await, 47_550);
    assert_eq!(revenue(&p, &admin).await.1, 2_450);

    // A payment the fee would swallow is refused, naming the amount; nothing moves.
    let (status, error, _) = p.pay(&merchant.key, &key(), body(&card, 2_000, true)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(reason(&error), "AMOUNT_BELOW_FEE");
    assert_eq!(error["error"]["details"][0]["field"], "amount");
    assert_eq!(p.balance(&customer, &card.id).await, 100_000);
    p.assert_books_balance(&admin).await;
}

/// The "done when": through NGINX a merchant registers an endpoint, authorizes a
/// customer's payment, captures part of it, refunds some; its receiver gets every event
/// exactly once with a valid signature; the events API lists them; statements show the hold
/// while it lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authorize_capture_part_and_refund_with_every_event_delivered_once() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, owner) = p.customer(&admin).await;
    let (customer, card) = p.funded_card(&admin, 100_000).await;
    let merchant = p.active_merchant(&admin, &owner, "IDR").await;
    let hook = Receiver::start().await;
    let (status, endpoint) = p
        .post(
            &format!("/merchants/{}/webhook-endpoints", merchant.id),
            Some(&owner),
            json!({"url": hook.url, "event_types": ["payment.authorized", "payment.captured",
                   "payment.voided", "refund.succeeded", "settlement.balance_changed"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");
    let secret = endpoint["secret"].as_str().unwrap().to_owned();

    let payment = authorize(&p, &merchant, &card, 50_000).await;
    let id = payment["id"].as_str().unwrap();
    assert_eq!(payment["captured_amount"], 0);
    assert!(payment["expires_at"].is_string());
    // Held, not moved: the balance stays, the available balance drops, both statements
    // show the hold.
    assert_eq!(
        card_account(&p, &customer, &card).await,
        (100_000, 50_000, 50_000)
    );
    assert_eq!(p.merchant_balance(&owner, &merchant.id).await, 0);
    let (_, statement) = p
        .get(&format!("/cards/{}/statement", card.id), Some(&customer))
        .await;
    assert_eq!(statement["holds"][0]["id"], id, "{statement}");
    assert_eq!(statement["holds"][0]["amount"], 50_000);
    let (_, statement) = p
        .get(
            &format!("/merchants/{}/statement", merchant.id),
            Some(&owner),
        )
        .await;
    assert_eq!(statement["holds"][0]["id"], id, "{statement}");

    // Nothing moved, so nothing can be refunded; a capture cannot exceed the authorization.
    let (status, error) = p.refund(&merchant.key, id, &key(), 1_000).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(reason(&error), "PAYMENT_NOT_REFUNDABLE");
    let (status, error) = capture(&p, &merchant, id, &key(), Some(50_001)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["details"][0]["field"], "amount");
    let (status, error) = capture(&p, &merchant, id, &key(), Some(0)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    // Another merchant's key does not see it.
    let other = p.active_merchant(&admin, &owner, "IDR").await;
    let (status, _) = capture(&p, &other, id, &key(), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Capture 30 000: it moves, the other 20 000 is released. A retry with the same key is
    // the same capture; another capture is refused.
    let capture_key = key();
    let (status, captured) = capture(&p, &merchant, id, &capture_key, Some(30_000)).await;
    assert_eq!(status, StatusCode::OK, "{captured}");
    assert_eq!(captured["status"], "succeeded");
    assert_eq!(captured["captured_amount"], 30_000);
    let (status, again) = capture(&p, &merchant, id, &capture_key, Some(30_000)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["captured_amount"], 30_000);
    let (status, error) = capture(&p, &merchant, id, &key(), Some(10_000)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(reason(&error), "PAYMENT_NOT_AUTHORIZED");
    let (status, _) = void(&p, &merchant.key, id).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        card_account(&p, &customer, &card).await,
        (70_000, 0, 70_000)
    );
    assert_eq!(p.merchant_balance(&owner, &merchant.id).await, 30_000);

    // Refunds apply to the captured 30 000 only.
    let (status, refund) = p.refund(&merchant.key, id, &key(), 10_000).await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    let refund_id = refund["id"].as_str().unwrap().to_owned();
    let (status, error) = p.refund(&merchant.key, id, &key(), 20_001).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(reason(&error), "REFUND_EXCEEDS_PAYMENT");
    assert_eq!(
        card_account(&p, &customer, &card).await,
        (80_000, 0, 80_000)
    );

    // authorized, captured, refunded, and the settlement account's two movements: each once,
    // signed, the payment's events in order.
    let received = hook.wait_for_accepted(5, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        hook.received().len(),
        received.len(),
        "nothing more, nothing twice"
    );
    let types: Vec<&str> = received.iter().map(Received::event_type).collect();
    let mut sorted = types.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "payment.authorized",
            "payment.captured",
            "refund.succeeded",
            "settlement.balance_changed",
            "settlement.balance_changed"
        ]
    );
    let ids: HashSet<&str> = received.iter().map(Received::event_id).collect();
    assert_eq!(ids.len(), 5);
    assert!(received.iter().all(|r| signed_with(r, &secret)));
    let at = |t: &str| types.iter().position(|x| *x == t).unwrap();
    assert!(at("payment.authorized") < at("payment.captured"));
    assert!(at("payment.captured") < at("refund.succeeded"));
    let captured_event = &received[at("payment.captured")].event["data"];
    assert_eq!(captured_event["status"], "succeeded");
    assert_eq!(captured_event["amount"], 50_000);
    assert_eq!(captured_event["captured_amount"], 30_000);
    assert_eq!(
        received[at("refund.succeeded")].event["data"]["id"],
        refund_id.as_str()
    );

    // The events API lists them.
    let (status, listed) = p
        .get(
            &format!("/merchants/{}/events?type=payment.captured", merchant.id),
            Some(&owner),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["items"][0]["data"]["id"], id);
    p.assert_books_balance(&admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_void_or_a_customers_cancel_releases_the_hold_and_nothing_moves() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, owner) = p.customer(&admin).await;
    let (customer, card) = p.funded_card(&admin, 100_000).await;
    let merchant = p.active_merchant(&admin, &owner, "IDR").await;

    let voided = authorize(&p, &merchant, &card, 40_000).await;
    let voided = voided["id"].as_str().unwrap();
    let other = p.active_merchant(&admin, &owner, "IDR").await;
    let (status, _) = void(&p, &other.key, voided).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another merchant cannot void it"
    );
    let (status, body) = void(&p, &merchant.key, voided).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "voided");
    assert_eq!(
        card_account(&p, &customer, &card).await,
        (100_000, 0, 100_000)
    );
    let (status, error) = capture(&p, &merchant, voided, &key(), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(reason(&error), "PAYMENT_NOT_AUTHORIZED");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("voided"),
        "{error}"
    );
    let (status, _) = void(&p, &merchant.key, voided).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "voided once");

    // The customer cancels an authorization on their card; nobody else can.
    let cancelled = authorize(&p, &merchant, &card, 60_000).await;
    let cancelled = cancelled["id"].as_str().unwrap();
    let cancel = format!("/payments/{cancelled}/cancel");
    let (status, _) = p.post(&cancel, None, json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, stranger) = p.customer(&admin).await;
    let (status, _) = p.post(&cancel, Some(&stranger), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, error) = p
        .call_with("POST", &cancel, None, None, &[("X-Api-Key", &merchant.key)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a merchant voids: {error}");
    assert_eq!(
        card_account(&p, &customer, &card).await,
        (100_000, 60_000, 40_000)
    );
    let (status, body) = p.post(&cancel, Some(&customer), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(
        card_account(&p, &customer, &card).await,
        (100_000, 0, 100_000)
    );
    assert_eq!(p.merchant_balance(&owner, &merchant.id).await, 0);
    p.assert_books_balance(&admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_authorization_expires_and_its_money_is_available_again() {
    let p = Platform::start_with(Options {
        authorization_ttl: Duration::from_secs(2),
        ..Options::default()
    })
    .await;
    let admin = p.admin_token().await;
    let (_, owner) = p.customer(&admin).await;
    let (customer, card) = p.funded_card(&admin, 100_000).await;
    let merchant = p.active_merchant(&admin, &owner, "IDR").await;
    let payment = authorize(&p, &merchant, &card, 70_000).await;
    let id = payment["id"].as_str().unwrap().to_owned();
    assert_eq!(
        card_account(&p, &customer, &card).await,
        (100_000, 70_000, 30_000)
    );
    let expired = testkit::eventually(Duration::from_secs(20), "the expiry job", || async {
        let (_, now) = p.get(&format!("/payments/{id}"), Some(&customer)).await;
        (now["status"] == "expired").then_some(now)
    })
    .await;
    assert!(expired["settled_at"].is_string());
    assert_eq!(
        card_account(&p, &customer, &card).await,
        (100_000, 0, 100_000)
    );
    let (status, error) = capture(&p, &merchant, &id, &key(), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(reason(&error), "PAYMENT_NOT_AUTHORIZED");
    // The released money can be spent.
    let (_, other) = p.customer(&admin).await;
    let other_card = p.card(&other, "IDR").await;
    let (status, transfer) = p
        .transfer(&customer, &card.number, &other_card.number, 100_000)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{transfer}");
    p.assert_books_balance(&admin).await;
}

/// Captures (each with its own key) and voids of one authorization at once: exactly one
/// request wins, and the money is exactly what it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_captures_and_voids_of_one_authorization_settle_it_once() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, owner) = p.customer(&admin).await;
    let merchant = p.active_merchant(&admin, &owner, "IDR").await;
    for round in 0..3_i64 {
        let (customer, card) = p.funded_card(&admin, 100_000).await;
        let before = p.merchant_balance(&owner, &merchant.id).await;
        let payment = authorize(&p, &merchant, &card, 50_000).await;
        let id = payment["id"].as_str().unwrap().to_owned();
        let mut requests = Vec::new();
        for n in 0..8_i64 {
            let (p, merchant, id) = (&p, &merchant, id.clone());
            requests.push(async move {
                if (n + round) % 2 == 0 {
                    capture(p, merchant, &id, &key(), Some(10_000 + n * 1_000)).await
                } else {
                    void(p, &merchant.key, &id).await
                }
            });
        }
        let answers = futures::future::join_all(requests).await;
        let winners: Vec<&Value> = answers
            .iter()
            .filter(|(status, _)| *status == StatusCode::OK)
            .map(|(_, body)| body)
            .collect();
        assert_eq!(winners.len(), 1, "exactly one wins: {answers:?}");
        for (status, body) in &answers {
            if *status != StatusCode::OK {
                assert_eq!(*status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
                assert_eq!(reason(body), "PAYMENT_NOT_AUTHORIZED", "{body}");
            }
        }
        let captured = winners[0]["captured_amount"].as_i64().unwrap();
        assert_eq!(
            card_account(&p, &customer, &card).await,
            (100_000 - captured, 0, 100_000 - captured)
        );
        assert_eq!(
            p.merchant_balance(&owner, &merchant.id).await,
            before + captured
        );
    }
    p.assert_books_balance(&admin).await;
}

/// An authorization and a transfer racing for the same money: the ledger lets only one of
/// them have it; while the hold stands, a transfer can spend only what is available.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn held_money_cannot_be_spent_by_a_concurrent_transfer() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, owner) = p.customer(&admin).await;
    let merchant = p.active_merchant(&admin, &owner, "IDR").await;
    let (_, payee) = p.customer(&admin).await;
    let payee_card = p.card(&payee, "IDR").await;
    for _ in 0..3 {
        let (customer, card) = p.funded_card(&admin, 100_000).await;
        let payment_key = key();
        let ((held, payment, _), (moved, transfer)) = tokio::join!(
            p.pay(&merchant.key, &payment_key, body(&card, 70_000, false)),
            p.transfer(&customer, &card.number, &payee_card.number, 70_000)
        );
        let authorized = held == StatusCode::CREATED && payment["status"] == "authorized";
        let transferred = moved == StatusCode::CREATED && transfer["status"] == "succeeded";
        assert!(
            authorized != transferred,
            "exactly one gets the money: {held} {payment} / {moved} {transfer}"
        );
        let (balance, on_hold, available) = card_account(&p, &customer, &card).await;
        if authorized {
            assert_eq!((balance, on_hold, available), (100_000, 70_000, 30_000));
            // Only the available 30 000 can be spent while the hold stands.
            let (status, refused) = p
                .transfer(&customer, &card.number, &payee_card.number, 30_001)
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
            let (status, _) = p
                .transfer(&customer, &card.number, &payee_card.number, 30_000)
                .await;
            assert_eq!(status, StatusCode::CREATED);
            let id = payment["id"].as_str().unwrap();
            let (status, captured) = capture(&p, &merchant, id, &key(), None).await;
            assert_eq!(status, StatusCode::OK, "{captured}");
            assert_eq!(card_account(&p, &customer, &card).await, (0, 0, 0));
        } else {
            assert_eq!((balance, on_hold, available), (30_000, 0, 30_000));
        }
    }
    p.assert_books_balance(&admin).await;
}

/// A crash after a capture or a void claimed an authorization and before the ledger answered
/// leaves the claim (the state below is exactly that: the claim written, the ledger's hold
/// untouched). Recovery finishes both — the capture moves the money once, the void releases
/// it — and a retry of the capture with its key answers with the same capture.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recovery_finishes_captures_and_voids_a_crash_left_claimed() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, owner) = p.customer(&admin).await;
    let (customer, card) = p.funded_card(&admin, 100_000).await;
    let merchant = p.active_merchant(&admin, &owner, "IDR").await;
    let captured = authorize(&p, &merchant, &card, 40_000).await;
    let captured = captured["id"].as_str().unwrap().to_owned();
    let voided = authorize(&p, &merchant, &card, 30_000).await;
    let voided = voided["id"].as_str().unwrap().to_owned();
    let db = sqlx::PgPool::connect(&p.database_url).await.unwrap();
    sqlx::query(
        "UPDATE transaction_svc.payments SET authorization_state = 'capturing',
             capture_amount = 25000, capture_key = 'crashed-capture', fee_amount = 0,
             claimed_at = now() - interval '1 minute'
         WHERE id = $1::uuid",
    )
    .bind(&captured)
    .execute(&db)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE transaction_svc.payments SET authorization_state = 'releasing',
             release_reason = 'voided', claimed_at = now() - interval '1 minute'
         WHERE id = $1::uuid",
    )
    .bind(&voided)
    .execute(&db)
    .await
    .unwrap();
    for (id, state) in [(&captured, "succeeded"), (&voided, "voided")] {
        testkit::eventually(Duration::from_secs(20), "recovery", || async {
            let (_, now) = p.get(&format!("/payments/{id}"), Some(&customer)).await;
            (now["status"] == state).then_some(())
        })
        .await;
    }
    assert_eq!(
        card_account(&p, &customer, &card).await,
        (75_000, 0, 75_000)
    );
    assert_eq!(p.merchant_balance(&owner, &merchant.id).await, 25_000);
    let (status, again) = capture(&p, &merchant, &captured, "crashed-capture", Some(25_000)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["captured_amount"], 25_000);
    assert_eq!(
        card_account(&p, &customer, &card).await,
        (75_000, 0, 75_000)
    );
    p.assert_books_balance(&admin).await;
}
