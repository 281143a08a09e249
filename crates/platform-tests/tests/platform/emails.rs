//! The email service against a real SMTP server (aiosmtpd): each lifecycle event mails the
//! right person with the right subject and content, and a backdated import nobody; a burst on
//! more lanes than database connections goes out in seconds; an SMTP outage is retried and
//! ends in exactly one delivery; malformed events go to the dead-letter topic without stopping
//! the consumer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Duration;

use crate::harness::{Options, PASSWORD, Platform, email};
use reqwest::StatusCode;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Every message carries its event id; no event may have caused two.
pub(crate) fn assert_no_duplicates(p: &Platform) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for message in p.smtp.messages() {
        if let Some(line) = message.lines().find(|l| l.starts_with("X-Event-Id: ")) {
            *seen.entry(line.to_owned()).or_default() += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "events mailed more than once: {twice:?}");
}

/// A backdated import (history, the demo seed's) mails nobody — the consumer passes it over
/// without a transaction — while the live transfer made after it is mailed as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backdated_import_mails_nobody_and_a_live_transfer_after_it_is_mailed() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, customer, address) = p.customer_with_email(&admin).await;
    let card = p.card(&customer, "IDR").await;
    let (_, friend) = p.customer(&admin).await;
    let friend_card = p.card(&friend, "IDR").await;
    let (status, topup) = p.topup(&customer, &card.number, 50_000).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{topup}");
    p.smtp
        .wait_for(&address, "Subject: Top-up of IDR 500.00 succeeded", WAIT)
        .await
        .unwrap();

    let forty_days_ago = chrono::Utc::now() - chrono::Duration::days(40);
    crate::stats::import_transfer(&p, &card.number, &friend_card.number, 1_200, forty_days_ago)
        .await
        .unwrap();
    p.transfer(&customer, &card.number, &friend_card.number, 3_400)
        .await;
    p.smtp
        .wait_for(&address, "Subject: Transfer of IDR 34.00 succeeded", WAIT)
        .await
        .unwrap();
    // Both were announced together; give the import's event time to be (not) mailed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        p.smtp.find(&address, "Transfer of IDR 12.00").is_empty(),
        "a backdated import was mailed"
    );
    assert_eq!(p.smtp.find(&address, "Subject: Transfer of").len(), 1);
    assert_no_duplicates(&p);
    // Passed over, not taken in a transaction: no processed-event record of the import's
    // event, while the live transfer's has one.
    let db = sqlx::PgPool::connect(&p.database_url).await.unwrap();
    let recorded = |amount: i64| {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM email_svc.processed_events e
             JOIN transfer_svc.outbox o ON o.event_id = e.event_id
             WHERE (o.payload -> 'data' ->> 'amount')::bigint = $1",
        )
        .bind(amount)
        .fetch_one(&db)
    };
    assert_eq!(recorded(1_200).await.unwrap(), 0);
    assert!(recorded(3_400).await.unwrap() >= 1);
}

/// A burst of account emails on more consumer lanes than the email service has database
/// connections (8 lanes, 6 connections in the tests) goes out without any lane waiting out the
/// pool's 5 s acquire timeout. Each lane holds a transaction while its handler writes the
/// delivery log; with one pool for both, lanes that held every connection each waited for one
/// more until that timeout, again and again (this burst took 12 s, not 1.4).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_on_more_lanes_than_connections_is_mailed_in_seconds() {
    use rdkafka::producer::FutureRecord;

    const PEOPLE: usize = 24;
    const EACH: usize = 2;
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    // One at a time: each sign-up hashes a password, and a queue of them may be refused
    // (busy) on a loaded machine.
    let mut people: Vec<(String, String)> = Vec::new();
    for _ in 0..PEOPLE {
        let address = email("burst");
        let (status, body) = p
            .post(
                "/users",
                Some(&admin),
                json!({"email": address, "password": PASSWORD, "first_name": "Bea",
                       "last_name": "Burst", "email_verified": true}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        people.push((body["id"].as_str().unwrap().to_owned(), address));
    }
    // Their welcome emails are out of the way first, so the burst below is all that is queued.
    for (_, address) in &people {
        p.smtp
            .wait_for(address, "Subject: Your account is ready", WAIT)
            .await
            .unwrap();
    }

    // Each person's address is verified twice over (distinct events, as a user who verifies
    // again would cause), all published at once.
    let producer = events::outbox::producer(&testkit::kafka_brokers()).unwrap();
    let topic = events::topics::physical(events::topics::USER_EVENTS);
    let mut sends = Vec::new();
    for round in 0..EACH {
        for (id, address) in &people {
            let payload = json!({
                "id": uuid::Uuid::new_v4(), "type": "user.verified", "version": 1,
                "occurred_at": chrono::Utc::now().to_rfc3339(), "source": "test",
                "subject": id,
                "data": {"user_id": id, "email": address, "first_name": format!("Bea{round}"),
                         "last_name": "Burst"}
            })
            .to_string();
            let (producer, topic) = (&producer, &topic);
            sends.push(async move {
                producer
                    .send(
                        FutureRecord::to(topic).key(id.as_str()).payload(&payload),
                        Duration::from_secs(10),
                    )
                    .await
                    .map_err(|(e, _)| e)
                    .unwrap();
            });
        }
    }
    futures::future::join_all(sends).await;
    let published = std::time::Instant::now();

    let subject = "Subject: Your email address is verified";
    for (_, address) in &people {
        testkit::eventually(WAIT, "the burst's emails", || async {
            (p.smtp.find(address, subject).len() >= EACH).then_some(())
        })
        .await;
    }
    let took = published.elapsed();
    for (_, address) in &people {
        assert_eq!(p.smtp.find(address, subject).len(), EACH, "{address}");
    }
    // A lane that waited for a connection held by lanes waiting too would have sat out the
    // pool's whole acquire timeout.
    assert!(
        took < Duration::from_secs(5),
        "{} emails took {took:?}: lanes waited for database connections",
        PEOPLE * EACH
    );
    assert_no_duplicates(&p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_lifecycle_event_mails_the_right_person() {
    let p = Platform::start().await;
    let admin = p.admin_token().await;

    // Registration → verification link; verification → confirmation.
    let address = email("mailme");
    let (_, tokens) = p.verified_customer(&address).await;
    let mail = p
        .smtp
        .wait_for(&address, "Subject: Verify your email address", WAIT)
        .await
        .unwrap();
    assert!(
        mail.contains("http://payments.test/account/verify-email#token="),
        "{mail}"
    );
    assert!(mail.contains("Hello Ana"), "{mail}");
    p.smtp
        .wait_for(&address, "Subject: Your email address is verified", WAIT)
        .await
        .unwrap();

    // Password reset → link; reset → "changed".
    let (status, _) = p
        .post("/auth/forgot-password", None, json!({"email": address}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mail = p
        .smtp
        .wait_for(&address, "Subject: Reset your password", WAIT)
        .await
        .unwrap();
    // The token is in the link's fragment (never sent to a server, so in no access log);
    // the link's page is the platform's own and posts the token to the API.
    let token =
        crate::harness::token_in_mail(&mail, "http://payments.test/account/reset-password#token=");
    assert_eq!(
        token,
        p.token_from_event("user.password_reset_requested", &address)
            .await
    );
    let page = p
        .http
        .get(format!("{}/account/reset-password", p.nginx.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("/account/account.js"), "{html}");
    let script = p
        .http
        .get(format!("{}/account/account.js", p.nginx.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(script.contains("reset-password") && script.contains("location.hash"));
    let (status, body) = p
        .post(
            "/auth/reset-password",
            None,
            json!({"token": token, "new_password": "Another-Secret-77"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    p.smtp
        .wait_for(&address, "Subject: Your password was changed", WAIT)
        .await
        .unwrap();
    drop(tokens);
    let customer = p.login(&address, "Another-Secret-77").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Money: top-up, withdraw (succeeded and failed), transfer.
    let card = p.card(&customer, "IDR").await;
    let (_, friend) = p.customer(&admin).await;
    let friend_card = p.card(&friend, "IDR").await;
    let (status, topup) = p.topup(&customer, &card.number, 50_000).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{topup}");
    let mail = p
        .smtp
        .wait_for(&address, "Subject: Top-up of IDR 500.00 succeeded", WAIT)
        .await
        .unwrap();
    assert!(mail.contains("via bca"), "{mail}");
    // It was pending first (202): the customer was told it is with the provider.
    let pending = p
        .smtp
        .wait_for(&address, "Subject: Top-up of IDR 500.00 is pending", WAIT)
        .await
        .unwrap();
    assert!(pending.contains(topup["id"].as_str().unwrap()), "{pending}");
    p.withdraw(&customer, &card.number, 10_000).await;
    let held = p
        .smtp
        .wait_for(
            &address,
            "Subject: Withdrawal of IDR 100.00 is pending",
            WAIT,
        )
        .await
        .unwrap();
    assert!(held.contains("is held on your card"), "{held}");
    p.smtp
        .wait_for(
            &address,
            "Subject: Withdrawal of IDR 100.00 succeeded",
            WAIT,
        )
        .await
        .unwrap();
    let (status, _) = p.withdraw(&customer, &card.number, 999_900).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let mail = p
        .smtp
        .wait_for(&address, "Subject: Withdrawal of IDR 9,999.00 failed", WAIT)
        .await
        .unwrap();
    assert!(mail.contains("INSUFFICIENT_FUNDS"), "{mail}");
    p.transfer(&customer, &card.number, &friend_card.number, 5_000)
        .await;
    p.smtp
        .wait_for(&address, "Subject: Transfer of IDR 50.00 succeeded", WAIT)
        .await
        .unwrap();

    // Merchant status changes and document reviews reach the owner.
    let (_, owner, owner_email) = p.customer_with_email(&admin).await;
    let merchant = p.active_merchant(&admin, &owner, "IDR").await;
    p.smtp
        .wait_for(
            &owner_email,
            &format!("Subject: Your merchant {} is approved", merchant.name),
            WAIT,
        )
        .await
        .unwrap();
    let (status, _) = p
        .post(
            &format!("/merchants/{}/status", merchant.id),
            Some(&admin),
            json!({"status": "inactive", "reason": "unusual refund rate"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mail = p
        .smtp
        .wait_for(
            &owner_email,
            &format!("Subject: Your merchant {} was deactivated", merchant.name),
            WAIT,
        )
        .await
        .unwrap();
    assert!(mail.contains("unusual refund rate"), "{mail}");
    p.post(
        &format!("/merchants/{}/status", merchant.id),
        Some(&admin),
        json!({"status": "active"}),
    )
    .await;
    p.smtp
        .wait_for(
            &owner_email,
            &format!("Subject: Your merchant {} is active again", merchant.name),
            WAIT,
        )
        .await
        .unwrap();
    let rejected = p.apply_merchant(&owner, "IDR").await;
    p.post(
        &format!("/merchants/{}/status", rejected.id),
        Some(&admin),
        json!({"status": "rejected", "reason": "duplicate business"}),
    )
    .await;
    let mail = p
        .smtp
        .wait_for(
            &owner_email,
            &format!("application for {} was rejected", rejected.name),
            WAIT,
        )
        .await
        .unwrap();
    assert!(mail.contains("duplicate business"), "{mail}");
    let (_, doc) = p
        .post(&format!("/merchants/{}/documents", merchant.id), Some(&owner),
            json!({"document_type": "business_license", "document_url": "https://files.example/l.pdf"}))
        .await;
    p.post(
        &format!("/merchant-documents/{}/review", doc["id"].as_str().unwrap()),
        Some(&admin),
        json!({"status": "rejected", "note": "the scan is unreadable"}),
    )
    .await;
    let mail = p
        .smtp
        .wait_for(
            &owner_email,
            "Subject: Your business license document for",
            WAIT,
        )
        .await
        .unwrap();
    assert!(
        mail.contains("was rejected") && mail.contains("the scan is unreadable"),
        "{mail}"
    );

    // Payments: a failed one (no money on the card) and a refund.
    let empty = p.card(&customer, "IDR").await;
    let (status, body, _) = p
        .pay(
            &merchant.key,
            &key(),
            json!({"card_number": empty.number, "cvv": empty.cvv,
            "amount": 2_500, "method": "visa"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let mail = p
        .smtp
        .wait_for(
            &address,
            &format!("Subject: Payment to {} failed", merchant.name),
            WAIT,
        )
        .await
        .unwrap();
    assert!(mail.contains("Nothing was charged"), "{mail}");
    let (status, payment, _) = p
        .pay(
            &merchant.key,
            &key(),
            json!({"card_number": card.number, "cvv": card.cvv,
            "amount": 2_500, "method": "visa"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    p.smtp
        .wait_for(
            &address,
            &format!("Subject: Payment of IDR 25.00 to {}", merchant.name),
            WAIT,
        )
        .await
        .unwrap();
    let (status, _) = p
        .refund(
            &merchant.key,
            payment["id"].as_str().unwrap(),
            &key(),
            2_500,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    p.smtp
        .wait_for(
            &address,
            &format!("Subject: Refund of IDR 25.00 from {}", merchant.name),
            WAIT,
        )
        .await
        .unwrap();

    // Nothing went to the wrong person, nothing twice.
    assert!(p.smtp.find(&owner_email, "Top-up").is_empty());
    assert_no_duplicates(&p);
    let _ = PASSWORD;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_smtp_outage_is_retried_and_the_email_delivered_exactly_once() {
    let mut p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, customer, address) = p.customer_with_email(&admin).await;
    let card = p.card(&customer, "IDR").await;
    let db = sqlx::PgPool::connect(&p.database_url).await.unwrap();
    // The customer's earlier emails are out of the way first.
    p.smtp
        .wait_for(&address, "Subject: Your account is ready", WAIT)
        .await
        .unwrap();

    p.smtp.stop().await;
    let (status, topup) = p.topup(&customer, &card.number, 7_700).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{topup}");
    assert_eq!(topup["status"], "succeeded", "{topup}");
    let topup_id = topup["id"].as_str().unwrap().to_owned();
    // The consumer keeps trying with backoff, counting attempts in the delivery log.
    let topup_delivery = "SELECT status, attempts FROM email_svc.deliveries
        WHERE recipient = $1 AND event_type = 'topup.succeeded'";
    testkit::eventually(
        Duration::from_secs(60),
        "failed delivery attempts",
        || async {
            let row: Option<(String, i32)> = sqlx::query_as(topup_delivery)
                .bind(&address)
                .fetch_optional(&db)
                .await
                .unwrap();
            row.filter(|(status, attempts)| status == "failed" && *attempts >= 2)
                .map(|_| ())
        },
    )
    .await;
    assert!(p.smtp.find(&address, "Top-up").is_empty());

    p.smtp.resume().await.unwrap();
    let succeeded = "Subject: Top-up of IDR 77.00 succeeded";
    let mail = p
        .smtp
        .wait_for(&address, succeeded, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(mail.contains(&format!("Reference: {topup_id}")), "{mail}");
    // Give a duplicate every chance to show up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(p.smtp.find(&address, succeeded).len(), 1);
    let (status, attempts): (String, i32) = sqlx::query_as(topup_delivery)
        .bind(&address)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(status, "sent");
    assert!(attempts >= 2, "delivered on retry {attempts}");
    assert_no_duplicates(&p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_events_are_dead_lettered_and_the_next_event_is_still_mailed() {
    use rdkafka::Message;
    use rdkafka::message::Headers;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let dead_letters = testkit::unique("email-dlq");
    events::topics::ensure_named(&testkit::kafka_brokers(), &dead_letters, 1)
        .await
        .unwrap();
    let p = Platform::start_with(Options {
        dead_letter_topic: Some(dead_letters.clone()),
        ..Options::default()
    })
    .await;
    let admin = p.admin_token().await;
    let (_, customer, address) = p.customer_with_email(&admin).await;
    let card = p.card(&customer, "IDR").await;

    // Two bad messages on a topic the email service reads: not JSON at all, and a
    // well-formed envelope whose data lacks the fields of its type.
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", testkit::kafka_brokers())
        .create()
        .unwrap();
    let marker = testkit::unique("poison");
    let garbage = format!("not an event {marker}");
    let bad_data = json!({
        "id": uuid::Uuid::new_v4(), "type": "topup.succeeded", "version": 1,
        "occurred_at": "2026-01-01T00:00:00Z", "source": "test", "subject": marker,
        "data": {"id": "not-a-uuid"}
    })
    .to_string();
    for payload in [&garbage, &bad_data] {
        producer
            .send(
                FutureRecord::to(&events::topics::physical(events::topics::TOPUP_EVENTS))
                    .key(marker.as_str())
                    .payload(payload.as_str()),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }

    // The next good event is still mailed.
    let (_, topup) = p.topup(&customer, &card.number, 4_200).await;
    p.smtp
        .wait_for(
            &address,
            &format!("Reference: {}", topup["id"].as_str().unwrap()),
            WAIT,
        )
        .await
        .unwrap();

    // Both bad messages are on the dead-letter topic, with the reason.
    let reader = testkit::topic_reader(&events::topics::physical(&dead_letters)).unwrap();
    let mut reasons = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while reasons.len() < 2 && std::time::Instant::now() < deadline {
        let Ok(Ok(message)) = tokio::time::timeout(
            Duration::from_secs(5),
            rdkafka::consumer::StreamConsumer::recv(&reader),
        )
        .await
        else {
            continue;
        };
        let payload = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
        if !payload.contains(&marker) {
            continue;
        }
        let reason = message
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "dlq-reason"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        reasons.push((payload, reason));
    }
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|(payload, reason)| payload == &garbage && reason.contains("malformed")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|(payload, reason)| payload == &bad_data
            && reason.contains("malformed topup.succeeded data")),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_are_listed_replayed_and_purged_through_the_admin_api() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let p = Platform::start().await;
    let admin = p.admin_token().await;
    let (_, customer) = p.customer(&admin).await;

    // A message no consumer can read, on a topic two groups consume (top-up statistics and
    // email): each group dead-letters it.
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", testkit::kafka_brokers())
        .create()
        .unwrap();
    let poison = testkit::unique("not an event");
    producer
        .send(
            FutureRecord::to(&events::topics::physical(events::topics::TOPUP_EVENTS))
                .key("poison")
                .payload(poison.as_str()),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    let listed = testkit::eventually(WAIT, "two dead letters", || async {
        let (status, body) = p.get("/admin/dead-letters", Some(&admin)).await;
        (status == StatusCode::OK && body["open"] == 2).then_some(body)
    })
    .await;
    let messages = listed["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{listed}");
    for message in messages {
        assert!(
            message["reason"].as_str().unwrap().starts_with("malformed"),
            "{message}"
        );
        assert_eq!(message["source_topic"], events::topics::TOPUP_EVENTS);
        assert_eq!(message["payload"], poison.as_str());
    }
    let first = messages[0]["offset"].as_i64().unwrap();
    let (_, one) = p
        .get(&format!("/admin/dead-letters?offset={first}"), Some(&admin))
        .await;
    assert_eq!(one["messages"].as_array().unwrap().len(), 1, "{one}");

    // Only operators; bad input is named.
    let (status, body) = p.get("/admin/dead-letters", Some(&customer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = p.get("/admin/dead-letters", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = p
        .post(
            "/admin/dead-letters/replay",
            Some(&customer),
            json!({"open": true}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = p
        .post("/admin/dead-letters/replay", Some(&admin), json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "open", "{body}");
    let (status, body) = p
        .post(
            "/admin/dead-letters/purge",
            Some(&admin),
            json!({"through": -1}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "through", "{body}");
    let (status, _) = p
        .get("/admin/dead-letters?offset=first", Some(&admin))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Replayed to its topic, it is read (and, still unreadable, dead-lettered) again by
    // both groups.
    let (status, body) = p
        .post(
            "/admin/dead-letters/replay",
            Some(&admin),
            json!({"offset": first}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["count"], 1);
    testkit::eventually(WAIT, "the replayed message dead-lettered again", || async {
        let (_, body) = p.get("/admin/dead-letters", Some(&admin)).await;
        (body["open"] == 4).then_some(())
    })
    .await;

    // Purged: nothing open, everything still listable with `all`.
    let (status, body) = p
        .post("/admin/dead-letters/purge", Some(&admin), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["count"], 4);
    let (_, body) = p.get("/admin/dead-letters", Some(&admin)).await;
    assert_eq!(body["open"], 0);
    assert!(body["messages"].as_array().unwrap().is_empty());
    let (_, body) = p.get("/admin/dead-letters?all=true", Some(&admin)).await;
    assert_eq!(body["messages"].as_array().unwrap().len(), 4);
}

/// The link of `subject`'s email to `address`, pointed at this platform's NGINX (the emails
/// link to `EMAIL_LINK_BASE_URL`, `http://payments.test` in tests).
async fn emailed_link(p: &Platform, address: &str, subject: &str) -> String {
    let mail = p
        .smtp
        .wait_for(address, &format!("Subject: {subject}"), WAIT)
        .await
        .unwrap();
    let start = mail.find("http://payments.test/account/").unwrap();
    let link: String = mail[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<')
        .collect();
    link.replace("http://payments.test", &p.nginx.url())
}

/// Opens `url` in headless Chromium (optionally typing a new password), through
/// `deploy/local/browser/follow-link.cjs`; returns what the page said.
fn follow_in_browser(url: &str, new_password: Option<&str>) -> serde_json::Value {
    let playwright = std::env::var("PLAYWRIGHT_DIR")
        .expect("PLAYWRIGHT_DIR: run through `make test`, which installs playwright-core");
    let chromium = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/local/browser/follow-link.cjs"
    );
    let mut command = std::process::Command::new("node");
    command.arg(script).arg(&playwright).arg(&chromium).arg(url);
    if let Some(password) = new_password {
        command.arg(password);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "the browser failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_follows_the_emailed_links_in_a_browser() {
    let p = Platform::start().await;
    let address = email("browser");
    let (status, _) = p.register(&address).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // The verification link: the page posts the token from the fragment.
    let link = emailed_link(&p, &address, "Verify your email address").await;
    assert!(link.contains("/account/verify-email#token="), "{link}");
    let page = tokio::task::spawn_blocking(move || follow_in_browser(&link, None))
        .await
        .unwrap();
    assert_eq!(page["outcome"], "ok", "{page}");
    assert!(
        !page["address"].as_str().unwrap().contains("token"),
        "the token is removed from the address bar: {page}"
    );
    p.login(&address, PASSWORD).await;

    // The reset link: the user types a new password on the page.
    let (status, _) = p
        .post("/auth/forgot-password", None, json!({"email": address}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let link = emailed_link(&p, &address, "Reset your password").await;
    let token = link.split("#token=").nth(1).unwrap().to_owned();
    let used = link.clone();
    let page =
        tokio::task::spawn_blocking(move || follow_in_browser(&link, Some("Browser-Chosen-42")))
            .await
            .unwrap();
    assert_eq!(page["outcome"], "ok", "{page}");
    p.login(&address, "Browser-Chosen-42").await;
    // A link used once does not work twice.
    let page = tokio::task::spawn_blocking(move || follow_in_browser(&used, Some("Second-Try-42")))
        .await
        .unwrap();
    assert_eq!(page["outcome"], "error", "{page}");
    // The browser never sent the token anywhere but in a request body.
    assert!(!p.nginx.access_log().contains(&token));
}
