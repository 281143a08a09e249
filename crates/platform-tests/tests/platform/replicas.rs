//! Scale-out: two replicas of every service and of the gateway behind NGINX, sharing the
//! database, the broker's topics and consumer groups, Redis and the providers (as the HPAs
//! run them on Kubernetes). Concurrent money, retried requests and a replica lost in the
//! middle of a load: nothing lost, nothing doubled, every email once. (`REPLICAS=2` runs the
//! whole suite this way.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use crate::harness::{Options, Platform};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A transfer under `key`, retried with the same key until it has an outcome (a replica
/// going away mid-request answers 502/503/504, or leaves it pending for recovery).
async fn transfer_until_done(p: &Platform, token: &str, from: &str, to: &str, key: &str) -> Value {
    let body = json!({"from_card_number": from, "to_card_number": to, "amount": 1_000});
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, answer) = p.post_idem("/transfers", token, key, body.clone()).await;
        if matches!(
            status,
            StatusCode::CREATED | StatusCode::OK | StatusCode::UNPROCESSABLE_ENTITY
        ) && answer["status"] != "pending"
        {
            return answer;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "transfer {key} never finished: {status} {answer}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_of_everything_lose_and_double_nothing_when_one_dies_mid_load() {
    let p = Platform::start_with(Options {
        replicas: 2,
        ..Options::default()
    })
    .await;
    let admin = p.admin_token().await;
    let (_, alice, alice_address) = p.customer_with_email(&admin).await;
    let (_, bob, bob_address) = p.customer_with_email(&admin).await;
    let a = p.card(&alice, "IDR").await;
    let b = p.card(&bob, "IDR").await;
    for (token, card) in [(&alice, &a), (&bob, &b)] {
        let (status, topup) = p.topup(token, &card.number, 100_000).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{topup}");
        assert_eq!(topup["status"], "succeeded", "{topup}");
    }

    // 40 criss-cross transfers at once, each sent twice at once under its key (a client
    // retrying), spread by NGINX over both gateways and both transfer services.
    let keys: Vec<String> = (0..40)
        .map(|i| format!("replica-{i}-{}", uuid::Uuid::new_v4()))
        .collect();
    let first_wave = futures::future::join_all(keys.iter().enumerate().flat_map(|(i, key)| {
        let (token, from, to) = if i % 2 == 0 {
            (&alice, &a.number, &b.number)
        } else {
            (&bob, &b.number, &a.number)
        };
        [0, 1].map(|_| transfer_until_done(&p, token, from, to, key))
    }))
    .await;
    for pair in first_wave.chunks(2) {
        assert_eq!(
            pair[0]["id"], pair[1]["id"],
            "one transfer per key: {pair:?}"
        );
        assert_eq!(pair[0]["status"], "succeeded", "{pair:?}");
    }

    // 40 more, and one replica of everything stops in the middle of them.
    let more: Vec<String> = (0..40)
        .map(|i| format!("late-{i}-{}", uuid::Uuid::new_v4()))
        .collect();
    let second_wave = futures::future::join_all(more.iter().enumerate().map(|(i, key)| {
        let (token, from, to) = if i % 2 == 0 {
            (&alice, &a.number, &b.number)
        } else {
            (&bob, &b.number, &a.number)
        };
        transfer_until_done(&p, token, from, to, key)
    }));
    let lost = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        p.stop_replica(1);
    };
    let (second_wave, ()) = tokio::join!(second_wave, lost);
    let mut ids = std::collections::HashSet::new();
    for done in first_wave.iter().step_by(2).chain(second_wave.iter()) {
        assert_eq!(done["status"], "succeeded", "{done}");
        assert!(
            ids.insert(done["id"].as_str().unwrap().to_owned()),
            "{done}"
        );
    }
    assert_eq!(ids.len(), 80);

    // The money: 40 transfers each way of 1 000, every one once.
    assert_eq!(p.balance(&alice, &a.id).await, 100_000);
    assert_eq!(p.balance(&bob, &b.id).await, 100_000);
    p.assert_books_balance(&admin).await;
    // Every transfer was mailed to its sender once, by whichever replica consumed it.
    for (address, n) in [(&alice_address, 40), (&bob_address, 40)] {
        testkit::eventually(Duration::from_secs(60), "every transfer mailed", || async {
            (p.smtp
                .find(address, "Subject: Transfer of IDR 10.00 succeeded")
                .len()
                >= n)
                .then_some(())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for address in [&alice_address, &bob_address] {
        assert_eq!(
            p.smtp
                .find(address, "Subject: Transfer of IDR 10.00 succeeded")
                .len(),
            40
        );
    }
    crate::emails::assert_no_duplicates(&p);
}
