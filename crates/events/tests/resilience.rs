//! The consumer against a broker that misbehaves, with real PostgreSQL and Apache Kafka: the
//! watchdog reports a stuck consumer (not ready, with its lag measured from the broker) within
//! its window and clears when it moves again; a broker frozen past the group's session timeout
//! and a broker killed mid-stream both end with every event applied exactly once, without
//! restarting the consumer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Recorder, effect_counts, enqueue};
use events::MonitorConfig;
use platform::shutdown::Shutdown;

fn report(group: &str) -> Option<platform::status::Report> {
    platform::status::snapshot().remove(&format!("consumer:{group}"))
}

#[tokio::test]
async fn a_stuck_consumer_is_reported_not_ready_with_its_lag_and_clears_when_it_moves() {
    let brokers = testkit::kafka_brokers();
    let (pool, topic) = common::setup(&brokers).await;
    enqueue(&pool, &topic, 20).await;
    while common::relay(&pool, &brokers).relay_once().await.unwrap() > 0 {}

    let handler = Recorder::new(Duration::ZERO);
    handler.open.store(false, Ordering::SeqCst);
    let group = testkit::unique("group");
    let mut config = events::ConsumerConfig::new(&brokers, &group, &[&topic]);
    config.max_attempts = 100_000;
    config.initial_backoff = Duration::from_millis(50);
    config.max_backoff = Duration::from_millis(200);
    config.monitor = MonitorConfig {
        interval: Duration::from_millis(500),
        stall_after: Duration::from_secs(3),
    };
    let shutdown = Shutdown::new();
    let running = tokio::spawn(
        events::Consumer::new(config, pool.clone(), handler.clone())
            .unwrap()
            .run(shutdown.clone()),
    );

    // Lag is measured although nothing is consumed: 20 unread messages, the oldest aging.
    let stalled = testkit::eventually(Duration::from_secs(20), "the stall reported", || async {
        report(&group).filter(|r| !r.ready())
    })
    .await;
    let reason = stalled.reason.clone().unwrap();
    assert!(reason.contains("no progress"), "{reason}");
    assert!(
        reason.contains("handler has been on one message"),
        "{reason}"
    );
    assert_eq!(stalled.detail["state"], "stalled");
    assert_eq!(stalled.detail["lag_messages"], 20, "{}", stalled.detail);
    assert!(stalled.detail["lag_seconds"].as_f64().unwrap() >= 1.0);
    assert_eq!(effect_counts(&pool).await, (0, 0));

    handler.open.store(true, Ordering::SeqCst);
    let caught_up = testkit::eventually(
        Duration::from_secs(20),
        "the consumer ready again",
        || async { report(&group).filter(|r| r.ready() && r.detail["state"] == "caught up") },
    )
    .await;
    assert_eq!(caught_up.detail["lag_messages"], 0);
    assert_eq!(effect_counts(&pool).await, (20, 20));
    shutdown.trigger();
    running.await.unwrap().unwrap();
    assert!(
        report(&group).is_none(),
        "a stopped consumer withdraws its report"
    );
}

/// Runs a relay and a consumer against `broker`; `disturb` misbehaves the broker after the
/// first batch of events was applied, while a second batch is committed. Both batches must be
/// applied exactly once.
async fn survives(broker: &mut testkit::KafkaBroker, disturb: Disturbance) {
    // Logs as in the binaries: shown when the test fails.
    static TELEMETRY: std::sync::OnceLock<Option<platform::telemetry::TelemetryGuard>> =
        std::sync::OnceLock::new();
    TELEMETRY.get_or_init(|| platform::telemetry::init("events-tests").ok());
    let brokers = broker.brokers();
    let (pool, topic) = common::setup(&brokers).await;
    let shutdown = Shutdown::new();
    let relay = tokio::spawn(common::relay(&pool, &brokers).run(shutdown.clone()));
    let group = testkit::unique("group");
    let consumer = tokio::spawn(
        common::consumer(
            &pool,
            &brokers,
            &topic,
            &group,
            Recorder::new(Duration::from_millis(5)),
        )
        .run(shutdown.clone()),
    );
    enqueue(&pool, &topic, 50).await;
    testkit::eventually(
        Duration::from_secs(60),
        "the first batch applied",
        || async { (effect_counts(&pool).await.1 == 50).then_some(()) },
    )
    .await;

    match disturb {
        Disturbance::Freeze(pause) => {
            broker.freeze().unwrap();
            enqueue(&pool, &topic, 50).await;
            tokio::time::sleep(pause).await;
            broker.thaw().unwrap();
        }
        Disturbance::Restart(down) => {
            broker.kill().await.unwrap();
            enqueue(&pool, &topic, 50).await;
            tokio::time::sleep(down).await;
            broker.restart().await.unwrap();
        }
    }
    testkit::eventually(
        Duration::from_secs(120),
        "the second batch applied",
        || async { (effect_counts(&pool).await.1 == 100).then_some(()) },
    )
    .await;
    // Redeliveries after the disturbance are deduplicated, not applied again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(effect_counts(&pool).await, (100, 100));
    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(unsent, 0);
    shutdown.trigger();
    consumer.await.unwrap().unwrap();
    relay.await.unwrap();
}

enum Disturbance {
    Freeze(Duration),
    Restart(Duration),
}

#[tokio::test]
async fn a_consumer_resumes_after_the_broker_froze_past_the_session_timeout() {
    let mut broker = testkit::KafkaBroker::start().await.unwrap();
    // Longer than the consumer's 30 s session timeout: the group loses its member.
    survives(&mut broker, Disturbance::Freeze(Duration::from_secs(35))).await;
}

#[tokio::test]
async fn a_broker_killed_mid_stream_loses_and_doubles_nothing() {
    let mut broker = testkit::KafkaBroker::start().await.unwrap();
    survives(&mut broker, Disturbance::Restart(Duration::from_secs(5))).await;
}
