//! The dead-letter topic as an operator works with it, against real PostgreSQL and Kafka:
//! events a consumer gave up on are listed with their reason, replayed (one, then the rest) to
//! the topic they came from and applied exactly once, and purged.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Recorder, effect_counts, enqueue};
use events::dead_letter::{DeadLetters, Filter};
use platform::shutdown::Shutdown;

/// Runs a (blocking) dead-letter operation off the async runtime.
async fn on<T: Send + 'static>(
    dlq: &Arc<DeadLetters>,
    operation: impl FnOnce(&DeadLetters) -> anyhow::Result<T> + Send + 'static,
) -> T {
    let dlq = dlq.clone();
    tokio::task::spawn_blocking(move || operation(&dlq))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn dead_letters_are_listed_replayed_once_and_purged() {
    let brokers = testkit::kafka_brokers();
    let (pool, topic) = common::setup(&brokers).await;
    let dlq_topic = testkit::unique("dlq");
    events::topics::ensure_named(&brokers, &dlq_topic, 1)
        .await
        .unwrap();
    enqueue(&pool, &topic, 3).await;
    while common::relay(&pool, &brokers).relay_once().await.unwrap() > 0 {}

    // The handler fails until the gate opens; after two attempts each event is given up on.
    let handler = Recorder::new(Duration::ZERO);
    handler.open.store(false, Ordering::SeqCst);
    let group = testkit::unique("group");
    let mut config = events::ConsumerConfig::new(&brokers, &group, &[&topic]);
    config.max_attempts = 2;
    config.initial_backoff = Duration::from_millis(10);
    config.dead_letter_topic = dlq_topic.clone();
    let shutdown = Shutdown::new();
    let running = tokio::spawn(
        events::Consumer::new(config, pool.clone(), handler.clone())
            .unwrap()
            .run(shutdown.clone()),
    );

    let dlq = {
        let (brokers, topic) = (brokers.clone(), dlq_topic.clone());
        Arc::new(
            tokio::task::spawn_blocking(move || DeadLetters::new(&brokers, &topic))
                .await
                .unwrap()
                .unwrap(),
        )
    };
    // (A fresh broker may still be creating its offsets topic: errors count as "not yet".)
    testkit::eventually(Duration::from_secs(30), "three dead letters", || async {
        let dlq = dlq.clone();
        let depth = tokio::task::spawn_blocking(move || dlq.depth())
            .await
            .unwrap();
        matches!(depth, Ok(3)).then_some(())
    })
    .await;

    let letters = on(&dlq, |d| d.list(&Filter::default())).await;
    assert_eq!(letters.len(), 3);
    for letter in &letters {
        assert!(
            letter.reason().contains("retries exhausted"),
            "{}",
            letter.reason()
        );
        assert_eq!(letter.group(), group);
        assert_eq!(letter.source_topic(), topic);
        assert_eq!(letter.event_type(), "thing.happened");
    }
    assert_eq!(effect_counts(&pool).await, (0, 0));

    // The cause is fixed; one message, then every open one, goes back. The first is not
    // applied twice.
    handler.open.store(true, Ordering::SeqCst);
    let first = letters[0].offset;
    let replayed = on(&dlq, move |d| {
        d.replay(&Filter {
            offset: Some(first),
            ..Filter::default()
        })
    })
    .await;
    assert_eq!(replayed, 1);
    testkit::eventually(
        Duration::from_secs(30),
        "the replayed event applied",
        || async { (effect_counts(&pool).await == (1, 1)).then_some(()) },
    )
    .await;
    let replayed = on(&dlq, |d| d.replay(&Filter::default())).await;
    assert_eq!(replayed, 3);
    testkit::eventually(Duration::from_secs(30), "every event applied", || async {
        (effect_counts(&pool).await.1 == 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        effect_counts(&pool).await,
        (3, 3),
        "each event applied once"
    );

    // Purged: nothing is open, everything is still there for `--all`.
    assert_eq!(on(&dlq, |d| d.purge(None)).await, 3);
    assert_eq!(on(&dlq, |d| d.depth()).await, 0);
    assert!(on(&dlq, |d| d.list(&Filter::default())).await.is_empty());
    let all = on(&dlq, |d| {
        d.list(&Filter {
            include_handled: true,
            ..Filter::default()
        })
    })
    .await;
    assert_eq!(all.len(), 3);
    shutdown.trigger();
    running.await.unwrap().unwrap();
}
