//! Webhooks end to end: a merchant registers an endpoint through NGINX, takes payments and
//! refunds, and a real HTTP receiver in the test gets every event once, signed (the test
//! checks the signature as a merchant would), in order per payment — through failures,
//! a receiver that is down, a delivery worker that stops, two replicas, and a run of failures
//! that disables the endpoint. The events API lists, shows and re-sends them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::receiver::{Received, Receiver, signed_with};
use crate::harness::{Card, Options, Platform};

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn payment_body(card: &Card, amount: i64) -> Value {
    json!({"card_number": card.number, "cvv": card.cvv, "amount": amount, "method": "visa",
           "description": "order 7"})
}

/// Registers `url` for `types` on the merchant; returns (endpoint, secret).
async fn register(
    p: &Platform,
    token: &str,
    merchant_id: &str,
    url: &str,
    types: &[&str],
) -> (Value, String) {
    let (status, body) = p
        .post(
            &format!("/merchants/{merchant_id}/webhook-endpoints"),
            Some(token),
            json!({"url": url, "event_types": types, "description": "shop backend"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (body["endpoint"].clone(), secret)
}

/// A payment of `amount`; retried with its idempotency key while the platform answers 502,
/// 503 or 504 (a replica just stopped mid-request), as a client should.
async fn pay(p: &Platform, api_key: &str, card: &Card, amount: i64) -> String {
    let idempotency_key = key();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, payment, _) = p
            .pay(api_key, &idempotency_key, payment_body(card, amount))
            .await;
        let retry = matches!(
            status,
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        );
        if !retry || tokio::time::Instant::now() > deadline {
            assert_eq!(status, StatusCode::CREATED, "{payment}");
            return payment["id"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// An event's deliveries once the latest has its result: the receiver has the request a
/// moment before the delivery worker records the answer.
async fn recorded_deliveries(p: &Platform, owner: &str, events: &str, event_id: &str) -> Value {
    let path = format!("{events}/{event_id}/deliveries");
    testkit::eventually(
        Duration::from_secs(10),
        "the delivery's result recorded",
        || async {
            let (_, deliveries) = p.get(&path, Some(owner)).await;
            (deliveries["items"][0]["status"] != "pending").then_some(deliveries)
        },
    )
    .await
}

fn position(received: &[Received], event_type: &str, object_id: &str) -> usize {
    received
        .iter()
        .position(|r| r.event_type() == event_type && r.event["data"]["id"] == object_id)
        .unwrap_or_else(|| panic!("no {event_type} of {object_id}"))
}

/// The "done when" for webhooks: registration (bad URLs and types refused, the secret
/// shown once), every event type a merchant's day makes arriving exactly once with a valid
/// signature and a payment's events in order, the events API (list with filters and cursors,
/// one event, its deliveries, a re-send), and nobody else seeing any of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_merchant_gets_every_event_once_signed_in_order_and_can_list_and_resend_them() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, owner) = p.customer(&admin).await;
    let card = p.funded_card(&admin, 500_000).await.1;
    let merchant = p.active_merchant(&admin, &owner, "IDR").await;
    let hooks = format!("/merchants/{}/webhook-endpoints", merchant.id);
    let hook = Receiver::start().await;

    // Bad input names the field and registers nothing.
    for (body, field) in [
        (
            json!({"url": "http://shop.example/hooks", "event_types": ["*"]}),
            "url",
        ),
        (
            json!({"url": hook.url, "event_types": ["payment.exploded"]}),
            "event_types",
        ),
        (json!({"url": hook.url, "event_types": []}), "event_types"),
        (json!({"url": hook.url}), "event_types"),
    ] {
        let (status, error) = p.post(&hooks, Some(&owner), body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {error}");
        assert_eq!(error["error"]["details"][0]["field"], field, "{error}");
    }
    let (secret_endpoint, secret) = register(&p, &owner, &merchant.id, &hook.url, &["*"]).await;
    assert_eq!(secret_endpoint["enabled"], true);
    let endpoint_id = secret_endpoint["id"].as_str().unwrap().to_owned();
    let (status, listed) = p.get(&hooks, Some(&owner)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert!(
        !listed.to_string().contains(&secret),
        "the secret is shown once"
    );

    // A merchant's day: a new API key, a payment, a partial refund, a declined payment.
    let (status, _) = p
        .post(
            &format!("/merchants/{}/api-keys", merchant.id),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let payment_id = pay(&p, &merchant.key, &card, 100_000).await;
    let (status, refund) = p.refund(&merchant.key, &payment_id, &key(), 30_000).await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    let refund_id = refund["id"].as_str().unwrap().to_owned();
    let (status, declined, _) = p
        .pay(&merchant.key, &key(), payment_body(&card, 9_000_000))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{declined}");

    let wait = Duration::from_secs(30);
    let received = hook.wait_for_accepted(6, wait).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let received = {
        let again = hook.received();
        assert_eq!(again.len(), received.len(), "nothing more, nothing twice");
        again
    };
    let mut types: Vec<&str> = received.iter().map(Received::event_type).collect();
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "merchant.api_key_created",
            "payment.failed",
            "payment.succeeded",
            "refund.succeeded",
            "settlement.balance_changed",
            "settlement.balance_changed"
        ]
    );
    let ids: HashSet<&str> = received.iter().map(Received::event_id).collect();
    assert_eq!(ids.len(), 6, "each event once");
    for r in &received {
        assert!(
            signed_with(r, &secret),
            "signed: {}",
            r.header("payments-signature")
        );
        assert!(!signed_with(r, "whsec_not-the-secret"));
        assert_eq!(r.header("payments-event-id"), r.event_id());
        assert_eq!(r.header("payments-event-type"), r.event_type());
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(r.event["object"], "event");
        assert_eq!(r.event["api_version"], "2026-12-01");
        assert!(
            r.event["data"].get("user_id").is_none(),
            "no customer ids: {}",
            r.event
        );
        assert!(
            r.event["data"].get("card_id").is_none(),
            "no customer ids: {}",
            r.event
        );
    }
    // A payment's events in order; the settlement account's movements in order.
    assert!(
        position(&received, "payment.succeeded", &payment_id)
            < position(&received, "refund.succeeded", &refund_id)
    );
    let deltas: Vec<i64> = received
        .iter()
        .filter(|r| r.event_type() == "settlement.balance_changed")
        .map(|r| r.event["data"]["delta"].as_i64().unwrap())
        .collect();
    assert_eq!(deltas, [100_000, -30_000]);
    let paid = &received[position(&received, "payment.succeeded", &payment_id)];
    assert_eq!(paid.event["data"]["amount"], 100_000);
    assert_eq!(paid.event["data"]["status"], "succeeded");

    // The events API: newest first, by type, a page at a time. It also has the events from
    // before the endpoint existed (the approval, the first key): eight in all.
    let events = format!("/merchants/{}/events", merchant.id);
    let (status, all) = p.get(&events, Some(&owner)).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let all = all["items"].as_array().unwrap().clone();
    assert_eq!(all.len(), 8, "{all:?}");
    assert_eq!(all[0]["type"], "payment.failed", "newest first");
    assert_eq!(all[7]["type"], "merchant.api_key_created");
    assert_eq!(all[6]["type"], "merchant.status_changed");
    let (_, refunds) = p
        .get(&format!("{events}?type=refund.succeeded"), Some(&owner))
        .await;
    assert_eq!(refunds["items"].as_array().unwrap().len(), 1);
    assert_eq!(refunds["items"][0]["data"]["id"], refund_id.as_str());
    let (_, first) = p.get(&format!("{events}?limit=4"), Some(&owner)).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = p
        .get(&format!("{events}?limit=4&cursor={cursor}"), Some(&owner))
        .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 4);
    assert!(second["next_cursor"].is_null(), "{second}");
    let paged: HashSet<String> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paged.len(), 8);
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?type=payment.exploded", "type"),
        ("?cursor=garbage", "cursor"),
        ("?created_from=yesterday", "created_from"),
    ] {
        let (status, error) = p.get(&format!("{events}{query}"), Some(&owner)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {error}");
        assert_eq!(
            error["error"]["details"][0]["field"], field,
            "{query}: {error}"
        );
    }
    let (status, one) = p
        .get(&format!("{events}/{}", paid.event_id()), Some(&owner))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        one["data"], paid.event["data"],
        "what was sent is what is listed"
    );
    let deliveries = recorded_deliveries(&p, &owner, &events, paid.event_id()).await;
    let delivery = &deliveries["items"][0];
    assert_eq!(delivery["status"], "succeeded", "{deliveries}");
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["attempt_log"][0]["status_code"], 200);
    assert_eq!(delivery["attempt_log"][0]["succeeded"], true);

    // A re-send: the same event again, a new delivery.
    let (status, resent) = p
        .post(
            &format!("{events}/{}/resend", paid.event_id()),
            Some(&owner),
            json!({"endpoint_id": endpoint_id}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{resent}");
    assert_eq!(resent["manual"], true);
    let received = hook.wait_for_accepted(7, wait).await;
    let again = received.last().unwrap();
    assert_eq!(again.event_id(), paid.event_id());
    assert_ne!(
        again.header("payments-delivery-id"),
        paid.header("payments-delivery-id")
    );
    assert!(signed_with(again, &secret));

    // Nobody else sees or changes any of it.
    let (_, stranger) = p.customer(&admin).await;
    for path in [
        hooks.clone(),
        events.clone(),
        format!("{events}/{}", paid.event_id()),
    ] {
        let (status, _) = p.get(&path, Some(&stranger)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _) = p
        .post(
            &hooks,
            Some(&stranger),
            json!({"url": hook.url, "event_types": ["*"]}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = p.get(&hooks, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The merchant's status changes are events too.
    let (status, body) = p
        .post(
            &format!("/merchants/{}/status", merchant.id),
            Some(&admin),
            json!({"status": "inactive", "reason": "chargeback review"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let received = hook.wait_for_accepted(8, wait).await;
    let changed = received.last().unwrap();
    assert_eq!(changed.event_type(), "merchant.status_changed");
    assert_eq!(changed.event["data"]["status"], "inactive");
    assert_eq!(changed.event["data"]["reason"], "chargeback review");
}

/// Retries and order: a receiver answering 500 gets the event on the next attempt; one that
/// is down for seconds gets a payment's events later, in order; with two replicas, one of
/// them stopped mid-way and a delivery worker started afresh, no event reaches the receiver
/// twice after it answered 2xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_and_unreachable_receivers_get_every_event_later_in_order_and_never_twice() {
    let options = Options::default();
    let replicas = options.replicas.max(2);
    let p = Platform::start_with(Options {
        replicas,
        ..options
    })
    .await;
    let admin = p.admin_token().await;
    let (_, owner) = p.customer(&admin).await;
    let card = p.funded_card(&admin, 1_000_000).await.1;
    let merchant = p.active_merchant(&admin, &owner, "IDR").await;
    let hook = Receiver::start().await;
    let (_, secret) = register(
        &p,
        &owner,
        &merchant.id,
        &hook.url,
        &["payment.succeeded", "refund.succeeded"],
    )
    .await;
    let wait = Duration::from_secs(30);
    let events = format!("/merchants/{}/events", merchant.id);

    // 500, then 200 on the retry.
    hook.answer_next(&[500]);
    let first = pay(&p, &merchant.key, &card, 10_000).await;
    let accepted = hook.wait_for_accepted(1, wait).await;
    assert_eq!(accepted[0].event["data"]["id"], first.as_str());
    assert_eq!(hook.received().len(), 2, "one failure, one success");
    let deliveries = recorded_deliveries(&p, &owner, &events, accepted[0].event_id()).await;
    let log = &deliveries["items"][0]["attempt_log"];
    assert_eq!(log[0]["status_code"], 500, "{deliveries}");
    assert_eq!(log[0]["succeeded"], false);
    assert_eq!(log[0]["error"], "the endpoint answered HTTP 500");
    assert_eq!(log[1]["status_code"], 200);
    assert_eq!(deliveries["items"][0]["status"], "succeeded");

    // Down for a few seconds: a payment and its refund wait, then arrive in order.
    hook.go_down().await;
    let second = pay(&p, &merchant.key, &card, 20_000).await;
    let (status, refund) = p.refund(&merchant.key, &second, &key(), 5_000).await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    let refund_id = refund["id"].as_str().unwrap().to_owned();
    let (_, pending) = testkit::eventually(wait, "failed attempts while down", || async {
        let (_, page) = p
            .get(
                &format!("{events}?type=payment.succeeded&limit=1"),
                Some(&owner),
            )
            .await;
        let id = page["items"][0]["id"].as_str()?.to_owned();
        let (_, deliveries) = p
            .get(&format!("{events}/{id}/deliveries"), Some(&owner))
            .await;
        (deliveries["items"][0]["attempts"].as_i64()? >= 2).then_some((id, deliveries))
    })
    .await;
    assert_eq!(pending["items"][0]["status"], "pending", "{pending}");
    let log = &pending["items"][0]["attempt_log"];
    assert!(log[0]["status_code"].is_null(), "{pending}");
    assert_eq!(log[0]["error"], "the endpoint could not be reached");
    hook.come_back().await;
    let accepted = hook.wait_for_accepted(3, wait).await;
    assert!(
        position(&accepted, "payment.succeeded", &second)
            < position(&accepted, "refund.succeeded", &refund_id),
        "a payment's events in order"
    );

    // One replica stops (its delivery worker with it); a worker starts afresh beside the
    // other. Every event still arrives, none twice.
    p.stop_replica(0);
    let third = pay(&p, &merchant.key, &card, 30_000).await;
    let restarted = platform::shutdown::Shutdown::new();
    let pool = platform::db::connect(&p.database_url, merchant_service::SCHEMA, 2)
        .await
        .unwrap();
    let config = crate::harness::webhook_config("unused", &Options::default());
    let worker = merchant_service::webhooks::delivery::Deliverer::new(
        pool,
        merchant_service::webhooks::secrets::SecretBox::new(config.secrets_key.expose()).unwrap(),
        config,
    )
    .unwrap();
    tokio::spawn(worker.run(restarted.clone()));
    let fourth = pay(&p, &merchant.key, &card, 40_000).await;
    let accepted = hook.wait_for_accepted(5, wait).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    restarted.trigger();
    let accepted_now = hook.accepted();
    assert_eq!(accepted_now.len(), accepted.len(), "nothing accepted twice");
    let ids: HashSet<&str> = accepted_now.iter().map(Received::event_id).collect();
    assert_eq!(ids.len(), 5, "five events, each accepted once");
    for payment in [&first, &second, &third, &fourth] {
        position(&accepted_now, "payment.succeeded", payment);
    }
    assert!(accepted_now.iter().all(|r| signed_with(r, &secret)));
}

/// A long run of failures disables the endpoint and emails the owner; nothing is sent to it
/// (a re-send is refused) until it is enabled again, and then what waited is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_endpoint_failing_for_long_is_disabled_its_owner_told_and_it_resumes_when_enabled() {
    let p = Platform::start_with(Options {
        webhook_disable_after_failures: 3,
        ..Options::default()
    })
    .await;
    let admin = p.admin_token().await;
    let (_, owner, owner_email) = p.customer_with_email(&admin).await;
    let card = p.funded_card(&admin, 100_000).await.1;
    let merchant = p.active_merchant(&admin, &owner, "IDR").await;
    let hook = Receiver::start().await;
    let (endpoint, secret) =
        register(&p, &owner, &merchant.id, &hook.url, &["payment.succeeded"]).await;
    let endpoint_path = format!(
        "/merchants/{}/webhook-endpoints/{}",
        merchant.id,
        endpoint["id"].as_str().unwrap()
    );
    hook.answer_next(&[500, 502, 503]);
    let payment = pay(&p, &merchant.key, &card, 10_000).await;
    let wait = Duration::from_secs(30);
    let disabled = testkit::eventually(wait, "endpoint disabled", || async {
        let (_, endpoint) = p.get(&endpoint_path, Some(&owner)).await;
        (endpoint["enabled"] == false).then_some(endpoint)
    })
    .await;
    assert!(
        disabled["disabled_reason"]
            .as_str()
            .unwrap()
            .starts_with("disabled after 3 failed attempts in a row"),
        "{disabled}"
    );
    p.smtp
        .wait_for(
            &owner_email,
            &format!("A webhook endpoint of {} was disabled", merchant.name),
            wait,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hook.received().len(), 3, "nothing sent while disabled");
    let (_, events) = p
        .get(&format!("/merchants/{}/events", merchant.id), Some(&owner))
        .await;
    let event_id = events["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, refused) = p
        .post(
            &format!("/merchants/{}/events/{event_id}/resend", merchant.id),
            Some(&owner),
            json!({"endpoint_id": endpoint["id"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["reason"], "WEBHOOK_ENDPOINT_DISABLED");

    // Enabled again: its run of failures is cleared and the waiting delivery goes out.
    let (status, enabled) = p
        .call(
            "PATCH",
            &endpoint_path,
            Some(&owner),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{enabled}");
    assert_eq!(enabled["consecutive_failures"], 0);
    assert!(enabled["disabled_reason"].is_null());
    let accepted = hook.wait_for_accepted(1, wait).await;
    assert_eq!(accepted[0].event["data"]["id"], payment.as_str());
    assert!(signed_with(&accepted[0], &secret));
}

/// Secrets rotate with an overlap (both sign meanwhile; an overlap of 0 ends the old one at
/// once), and no URL can point the platform at its own network.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secrets_rotate_with_an_overlap_and_urls_cannot_reach_the_platforms_network() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, owner) = p.customer(&admin).await;
    let card = p.funded_card(&admin, 100_000).await.1;
    let merchant = p.active_merchant(&admin, &owner, "IDR").await;
    let hooks = format!("/merchants/{}/webhook-endpoints", merchant.id);
    for url in [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.7/hooks",
        "https://192.168.1.1/hooks",
        "https://[::1]/hooks",
        "https://localhost/hooks",
        "https://postgres/hooks",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://saldo-service.payments.svc.cluster.local/",
        "https://user:password@shop.example/hooks",
        "http://shop.example/hooks",
        "file:///etc/passwd",
        "gopher://shop.example/",
    ] {
        let (status, error) = p
            .post(
                &hooks,
                Some(&owner),
                json!({"url": url, "event_types": ["*"]}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {error}");
        assert_eq!(
            error["error"]["details"][0]["field"], "url",
            "{url}: {error}"
        );
    }
    let (_, listed) = p.get(&hooks, Some(&owner)).await;
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        0,
        "none registered"
    );

    let hook = Receiver::start().await;
    let (endpoint, old) =
        register(&p, &owner, &merchant.id, &hook.url, &["payment.succeeded"]).await;
    let rotate = format!("{hooks}/{}/rotate-secret", endpoint["id"].as_str().unwrap());
    let (status, error) = p
        .post(&rotate, Some(&owner), json!({"overlap_seconds": 700_000}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["error"]["details"][0]["field"], "overlap_seconds");
    let (status, rotated) = p
        .post(&rotate, Some(&owner), json!({"overlap_seconds": 3600}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated["endpoint"]["previous_secret_expires_at"].is_string());
    pay(&p, &merchant.key, &card, 1_000).await;
    let wait = Duration::from_secs(30);
    let during = hook.wait_for_accepted(1, wait).await;
    assert!(signed_with(&during[0], &old), "the old secret still signs");
    assert!(signed_with(&during[0], &new), "the new one too");

    let (status, ended) = p
        .post(&rotate, Some(&owner), json!({"overlap_seconds": 0}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ended}");
    let newest = ended["secret"].as_str().unwrap().to_owned();
    pay(&p, &merchant.key, &card, 1_000).await;
    let after = hook.wait_for_accepted(2, wait).await;
    assert!(signed_with(&after[1], &newest));
    assert!(
        !signed_with(&after[1], &new),
        "an overlap of 0 ends it at once"
    );
    assert!(!signed_with(&after[1], &old));
}
