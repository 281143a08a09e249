//! Merchants, payments and refunds end to end through NGINX: the merchant lifecycle, API keys,
//! the customer's CVV consent, ledger balances on both sides, refunds under concurrency, and
//! the emails each step sends to a real SMTP server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use crate::harness::Platform;
use reqwest::StatusCode;
use serde_json::json;

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn payment_body(card: &crate::harness::Card, amount: i64) -> serde_json::Value {
    json!({"card_number": card.number, "cvv": card.cvv, "amount": amount, "method": "visa",
           "description": "order 42"})
}

/// The "done when": a user becomes a merchant, is approved, gets a key, charges a
/// customer card with the customer's CVV and refunds part of it; balances, statements and
/// the emails of every step are right, and the payment email belongs to the request's trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_merchant_charges_a_customer_and_refunds_part_with_emails_for_each_step() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, owner, owner_email) = p.customer_with_email(&admin).await;
    let (_, customer, customer_email) = p.customer_with_email(&admin).await;
    let wait = Duration::from_secs(30);

    // Apply: pending, and an email says it was received.
    let merchant = p.apply_merchant(&owner, "IDR").await;
    p.smtp
        .wait_for(&owner_email, "We received your merchant application", wait)
        .await
        .unwrap();

    // A document, reviewed by the admin (a rejection needs a note).
    let (status, doc) = p
        .post(
            &format!("/merchants/{}/documents", merchant.id),
            Some(&owner),
            json!({"document_type": "tax_id", "document_url": "https://files.example/tax.pdf"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{doc}");
    let doc_id = doc["id"].as_str().unwrap();
    let (status, body) = p
        .post(
            &format!("/merchant-documents/{doc_id}/review"),
            Some(&admin),
            json!({"status": "rejected"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "note", "{body}");
    let (status, body) = p
        .post(
            &format!("/merchant-documents/{doc_id}/review"),
            Some(&owner),
            json!({"status": "approved"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "owners do not review: {body}"
    );
    let (status, body) = p
        .post(
            &format!("/merchant-documents/{doc_id}/review"),
            Some(&admin),
            json!({"status": "approved", "note": "matches the registry"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "approved");
    let mail = p
        .smtp
        .wait_for(&owner_email, "document for", wait)
        .await
        .unwrap();
    assert!(
        mail.contains("was approved") && mail.contains("matches the registry"),
        "{mail}"
    );

    // Approval opens the settlement account and tells the owner.
    let (status, body) = p
        .post(
            &format!("/merchants/{}/status", merchant.id),
            Some(&admin),
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    p.smtp
        .wait_for(
            &owner_email,
            &format!("Your merchant {} is approved", merchant.name),
            wait,
        )
        .await
        .unwrap();
    testkit::eventually(wait, "merchant account", || async {
        let (status, _) = p
            .get(&format!("/merchants/{}/balance", merchant.id), Some(&owner))
            .await;
        (status == StatusCode::OK).then_some(())
    })
    .await;

    // The customer funds a card, then pays with the CVV.
    let card = p.card(&customer, "IDR").await;
    let (status, body) = p.topup(&customer, &card.number, 100_000).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "succeeded", "{body}");
    let pay_key = key();
    let (status, payment, headers) = p
        .pay(&merchant.key, &pay_key, payment_body(&card, 30_000))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["status"], "succeeded");
    assert_eq!(payment["merchant_id"], merchant.id.as_str());
    assert_eq!(payment["refunded_amount"], 0);
    let payment_id = payment["id"].as_str().unwrap().to_owned();
    let trace_id = headers["x-trace-id"].to_str().unwrap().to_owned();
    assert_eq!(p.balance(&customer, &card.id).await, 70_000);
    assert_eq!(p.merchant_balance(&owner, &merchant.id).await, 30_000);

    // A replay returns the same payment and moves nothing.
    let (status, replay, _) = p
        .pay(&merchant.key, &pay_key, payment_body(&card, 30_000))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{replay}");
    assert_eq!(replay["id"], payment["id"]);
    assert_eq!(p.balance(&customer, &card.id).await, 70_000);

    // Partial refund, then the rest is the most that can still go back.
    let (status, refund) = p.refund(&merchant.key, &payment_id, &key(), 12_000).await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    assert_eq!(refund["status"], "succeeded");
    let (status, body) = p.refund(&merchant.key, &payment_id, &key(), 18_001).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["reason"], "REFUND_EXCEEDS_PAYMENT");
    assert_eq!(p.balance(&customer, &card.id).await, 82_000);
    assert_eq!(p.merchant_balance(&owner, &merchant.id).await, 18_000);

    // Every party sees it: the customer, the owner (JWT), the merchant (key), statements.
    let (status, seen) = p
        .get(&format!("/payments/{payment_id}"), Some(&customer))
        .await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen["refunded_amount"], 12_000);
    let (status, list) = p
        .get(
            &format!("/merchants/{}/payments", merchant.id),
            Some(&owner),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["page"]["total_items"], 1);
    let (status, list) = p
        .call_with(
            "GET",
            "/payments",
            None,
            None,
            &[("X-Api-Key", &merchant.key)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["items"][0]["id"], payment_id.as_str());
    let (status, list) = p
        .get(&format!("/cards/{}/payments", card.id), Some(&customer))
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["page"]["total_items"], 1);
    let (status, refunds) = p
        .get(&format!("/payments/{payment_id}/refunds"), Some(&owner))
        .await;
    assert_eq!(status, StatusCode::OK, "{refunds}");
    assert_eq!(refunds["items"][0]["amount"], 12_000);
    let (status, statement) = p
        .get(
            &format!("/merchants/{}/statement", merchant.id),
            Some(&owner),
        )
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
            ("refund".into(), -12_000, 18_000),
            ("payment".into(), 30_000, 30_000)
        ]
    );
    let (status, statement) = p
        .get(&format!("/cards/{}/statement", card.id), Some(&customer))
        .await;
    assert_eq!(status, StatusCode::OK, "{statement}");
    let kinds: Vec<&str> = statement["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["refund", "payment", "topup"]);

    // Another customer sees nothing of it.
    let (_, stranger) = p.customer(&admin).await;
    let (status, _) = p
        .get(&format!("/payments/{payment_id}"), Some(&stranger))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = p
        .get(
            &format!("/merchants/{}/balance", merchant.id),
            Some(&stranger),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The customer's emails: top-up, payment (in the request's trace), refund.
    p.smtp
        .wait_for(&customer_email, "Top-up of IDR 1,000.00 succeeded", wait)
        .await
        .unwrap();
    let mail = p
        .smtp
        .wait_for(
            &customer_email,
            &format!("Payment of IDR 300.00 to {}", merchant.name),
            wait,
        )
        .await
        .unwrap();
    assert!(mail.contains("order 42"), "{mail}");
    assert!(
        mail.contains(&format!("X-Trace-Id: {trace_id}")),
        "the payment email must carry the payment request's trace id {trace_id}: {mail}"
    );
    assert!(mail.contains("Content-Type: text/html") && mail.contains("Content-Type: text/plain"));
    let mail = p
        .smtp
        .wait_for(
            &customer_email,
            &format!("Refund of IDR 120.00 from {}", merchant.name),
            wait,
        )
        .await
        .unwrap();
    assert!(mail.contains("customer returned the goods"), "{mail}");
    p.assert_books_balance(&admin).await;
}

/// Twenty concurrent refunds of a tenth each: exactly ten succeed, the rest are refused, and
/// the customer gets back exactly the payment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refunds_never_exceed_the_payment() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, owner) = p.customer(&admin).await;
    let (_, customer) = p.customer(&admin).await;
    let merchant = p.active_merchant(&admin, &owner, "IDR").await;
    let card = p.card(&customer, "IDR").await;
    p.topup(&customer, &card.number, 50_000).await;
    let (status, payment, _) = p
        .pay(&merchant.key, &key(), payment_body(&card, 10_000))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    let payment_id = payment["id"].as_str().unwrap().to_owned();

    let attempts = (0..20).map(|_| {
        let (p, merchant, payment_id) = (&p, &merchant, &payment_id);
        async move { p.refund(&merchant.key, payment_id, &key(), 1_000).await }
    });
    let results = futures::future::join_all(attempts).await;
    let succeeded = results
        .iter()
        .filter(|(s, b)| *s == StatusCode::CREATED && b["status"] == "succeeded")
        .count();
    let refused = results
        .iter()
        .filter(|(s, b)| {
            *s == StatusCode::UNPROCESSABLE_ENTITY
                && b["error"]["reason"] == "REFUND_EXCEEDS_PAYMENT"
        })
        .count();
    assert_eq!((succeeded, refused), (10, 10), "{results:?}");
    assert_eq!(p.balance(&customer, &card.id).await, 50_000);
    assert_eq!(p.merchant_balance(&owner, &merchant.id).await, 0);
    let (_, seen) = p
        .get(&format!("/payments/{payment_id}"), Some(&customer))
        .await;
    assert_eq!(seen["refunded_amount"], 10_000);

    // Nothing is left for another refund.
    let (status, body) = p.refund(&merchant.key, &payment_id, &key(), 1).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "amount");
    p.assert_books_balance(&admin).await;
}

/// Pending, rejected and deactivated merchants, unknown, revoked and expired keys, wrong
/// CVVs and a locked card: nothing moves, and each error says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn charges_that_are_not_allowed_move_nothing_and_say_why() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, owner) = p.customer(&admin).await;
    let (_, customer) = p.customer(&admin).await;
    let card = p.card(&customer, "IDR").await;
    p.topup(&customer, &card.number, 20_000).await;
    let refused = |status: StatusCode, body: &serde_json::Value, code: StatusCode, reason: &str| {
        assert_eq!(status, code, "{body}");
        assert_eq!(body["error"]["reason"], reason, "{body}");
    };

    // A pending merchant's key.
    let pending = p.apply_merchant(&owner, "IDR").await;
    let (s, b, _) = p
        .pay(&pending.key, &key(), payment_body(&card, 1_000))
        .await;
    refused(s, &b, StatusCode::FORBIDDEN, "MERCHANT_PENDING");

    // Rejected (a reason is required).
    let (s, b) = p
        .post(
            &format!("/merchants/{}/status", pending.id),
            Some(&admin),
            json!({"status": "rejected"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["error"]["details"][0]["field"], "reason");
    let (s, b) = p
        .post(
            &format!("/merchants/{}/status", pending.id),
            Some(&admin),
            json!({"status": "rejected", "reason": "incomplete documents"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b, _) = p
        .pay(&pending.key, &key(), payment_body(&card, 1_000))
        .await;
    refused(s, &b, StatusCode::FORBIDDEN, "MERCHANT_REJECTED");
    let (s, b) = p
        .post(
            &format!("/merchants/{}/status", pending.id),
            Some(&admin),
            json!({"status": "active"}),
        )
        .await;
    refused(
        s,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_STATUS_TRANSITION",
    );

    // Deactivated.
    let merchant = p.active_merchant(&admin, &owner, "IDR").await;
    let (s, b) = p
        .post(
            &format!("/merchants/{}/status", merchant.id),
            Some(&admin),
            json!({"status": "inactive", "reason": "chargeback review"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b, _) = p
        .pay(&merchant.key, &key(), payment_body(&card, 1_000))
        .await;
    refused(s, &b, StatusCode::FORBIDDEN, "MERCHANT_INACTIVE");
    let (s, b) = p
        .post(
            &format!("/merchants/{}/status", merchant.id),
            Some(&admin),
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Keys: unknown, revoked, rotated (the old one works during the overlap only).
    let (s, b, _) = p.pay("mk_0000", &key(), payment_body(&card, 1_000)).await;
    refused(s, &b, StatusCode::UNAUTHORIZED, "INVALID_API_KEY");
    let (s, rotated) = p
        .post(
            &format!(
                "/merchants/{}/api-keys/{}/rotate",
                merchant.id, merchant.key_id
            ),
            Some(&owner),
            json!({"overlap_seconds": 0}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{rotated}");
    let (s, b, _) = p
        .pay(&merchant.key, &key(), payment_body(&card, 1_000))
        .await;
    refused(s, &b, StatusCode::UNAUTHORIZED, "API_KEY_EXPIRED");
    let new_key = rotated["api_key"].as_str().unwrap().to_owned();
    let new_key_id = rotated["key"]["id"].as_str().unwrap();
    let (s, b) = p
        .call(
            "DELETE",
            &format!("/merchants/{}/api-keys/{new_key_id}", merchant.id),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "revoked");
    let (s, b, _) = p.pay(&new_key, &key(), payment_body(&card, 1_000)).await;
    refused(s, &b, StatusCode::UNAUTHORIZED, "API_KEY_REVOKED");
    let (s, fresh) = p
        .post(
            &format!("/merchants/{}/api-keys", merchant.id),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{fresh}");
    let live_key = fresh["api_key"].as_str().unwrap().to_owned();

    // Bad input names the field; a user token cannot create payments.
    let (s, b, _) = p
        .pay(
            &live_key,
            &key(),
            json!({"card_number": card.number, "amount": 1_000, "method": "visa", "cvv": ""}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["error"]["details"][0]["field"], "cvv", "{b}");
    let (s, b) = p
        .post_idem("/payments", &customer, &key(), payment_body(&card, 1_000))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");

    // A USD card cannot pay an IDR merchant.
    let usd = p.card(&customer, "USD").await;
    let (s, b, _) = p.pay(&live_key, &key(), payment_body(&usd, 1_000)).await;
    refused(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "CURRENCY_MISMATCH");

    // Wrong CVVs: two mismatches, then the third locks the card; the right CVV is refused
    // while it is locked.
    let wrong = if card.cvv == "000" { "001" } else { "000" };
    let mut bad = payment_body(&card, 1_000);
    bad["cvv"] = json!(wrong);
    for _ in 0..2 {
        let (s, b, _) = p.pay(&live_key, &key(), bad.clone()).await;
        refused(s, &b, StatusCode::FORBIDDEN, "CVV_MISMATCH");
    }
    let (s, b, _) = p.pay(&live_key, &key(), bad.clone()).await;
    refused(s, &b, StatusCode::TOO_MANY_REQUESTS, "CARD_LOCKED");
    let (s, b, _) = p.pay(&live_key, &key(), payment_body(&card, 1_000)).await;
    refused(s, &b, StatusCode::TOO_MANY_REQUESTS, "CARD_LOCKED");

    // More than the balance is a recorded failure, not a debit.
    let other = p.card(&customer, "IDR").await;
    let (s, b, _) = p.pay(&live_key, &key(), payment_body(&other, 1_000)).await;
    refused(
        s,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "INSUFFICIENT_FUNDS",
    );

    assert_eq!(p.balance(&customer, &card.id).await, 20_000);
    assert_eq!(p.balance(&customer, &other.id).await, 0);
    assert_eq!(p.merchant_balance(&owner, &merchant.id).await, 0);
    p.assert_books_balance(&admin).await;
}

/// The merchant admin lifecycle: list filters, trash and restore (a trashed merchant's key
/// stops working), permanent delete refused while its account holds money.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn merchant_admin_lifecycle() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (owner_id, owner) = p.customer(&admin).await;
    let (_, customer) = p.customer(&admin).await;
    let merchant = p.active_merchant(&admin, &owner, "IDR").await;
    let pending = p.apply_merchant(&owner, "USD").await;

    let (s, list) = p.get("/merchants?status=pending", Some(&admin)).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == pending.id.as_str())
    );
    assert!(
        !list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == merchant.id.as_str())
    );
    let (s, list) = p.get("/merchants", Some(&owner)).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["page"]["total_items"], 2);
    let (s, _) = p.get("/merchants?user_id=*", Some(&owner)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, list) = p
        .get(&format!("/merchants?user_id={owner_id}"), Some(&admin))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["page"]["total_items"], 2);
    let (s, b) = p
        .call(
            "PATCH",
            &format!("/merchants/{}", merchant.id),
            Some(&owner),
            Some(json!({"description": "Fresh bread daily"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["description"], "Fresh bread daily");

    // Money in the account blocks permanent deletion.
    let card = p.card(&customer, "IDR").await;
    p.topup(&customer, &card.number, 5_000).await;
    let (s, b, _) = p
        .pay(&merchant.key, &key(), payment_body(&card, 2_000))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = p
        .post(
            &format!("/merchants/{}/trash", merchant.id),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only admins trash merchants: {b}");
    let (s, b) = p
        .post(
            &format!("/merchants/{}/trash", merchant.id),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b, _) = p
        .pay(&merchant.key, &key(), payment_body(&card, 1_000))
        .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "a trashed merchant's key is invalid: {b}"
    );
    let (s, b) = p
        .call(
            "DELETE",
            &format!("/merchants/{}", merchant.id),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["reason"], "MERCHANT_HAS_BALANCE");
    let (s, b) = p
        .post("/merchants/restore-all", Some(&admin), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b["affected"].as_u64().unwrap() >= 1);

    // An empty, trashed merchant can be deleted.
    let (s, _) = p
        .post(
            &format!("/merchants/{}/trash", pending.id),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = p
        .call(
            "DELETE",
            &format!("/merchants/{}", pending.id),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (s, _) = p
        .get(&format!("/merchants/{}", pending.id), Some(&admin))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = p
        .get(
            &format!("/merchants/{}/api-keys", merchant.id),
            Some(&owner),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["items"][0]["status"], "active");
    assert!(
        b["items"][0].get("api_key").is_none(),
        "lists never show secrets: {b}"
    );
}
