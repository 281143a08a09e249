//! The outbox relay and the idempotent consumer against real PostgreSQL and the broker:
//! every event is applied exactly once, also across a consumer restart mid-stream and a relay
//! that crashed after publishing but before marking rows sent, and with batches.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use events::{Consumer, ConsumerConfig, Envelope, EventHandler, HandlerError};
use platform::shutdown::Shutdown;
use rdkafka::Message;
use sqlx::{PgConnection, PgPool};

mod common;

use common::{Recorder, effect_counts, enqueue};

async fn setup() -> (PgPool, String) {
    common::setup(&testkit::kafka_brokers()).await
}

fn relay(pool: &PgPool) -> events::OutboxRelay {
    common::relay(pool, &testkit::kafka_brokers())
}

fn consumer(pool: &PgPool, topic: &str, group: &str, delay: Duration) -> Consumer<Recorder> {
    common::consumer(
        pool,
        &testkit::kafka_brokers(),
        topic,
        group,
        Recorder::new(delay),
    )
}

#[tokio::test]
async fn events_are_applied_exactly_once_across_a_consumer_restart() {
    let (pool, topic) = setup().await;
    enqueue(&pool, &topic, 40).await;
    while relay(&pool).relay_once().await.unwrap() > 0 {}
    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(unsent, 0);

    let group = testkit::unique("group");
    restart_mid_stream(&pool, 40, 8, |delay| consumer(&pool, &topic, &group, delay)).await;
}

/// Runs a slow consumer until `first` events are applied, stops it, then a fast one of the
/// same group until all `total` are; each must have been applied exactly once.
async fn restart_mid_stream(
    pool: &PgPool,
    total: i64,
    first: i64,
    consumer: impl Fn(Duration) -> Consumer<Recorder>,
) {
    let stop = Shutdown::new();
    let running = tokio::spawn(consumer(Duration::from_millis(30)).run(stop.clone()));
    testkit::eventually(Duration::from_secs(30), "some events consumed", || async {
        (effect_counts(pool).await.0 >= first).then_some(())
    })
    .await;
    stop.trigger();
    running.await.unwrap().unwrap();
    let (partial, _) = effect_counts(pool).await;
    assert!(
        partial < total,
        "the restart happened mid-stream ({partial} of {total})"
    );

    let stop = Shutdown::new();
    let running = tokio::spawn(consumer(Duration::ZERO).run(stop.clone()));
    testkit::eventually(Duration::from_secs(30), "all events consumed", || async {
        (effect_counts(pool).await.1 == total).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.trigger();
    running.await.unwrap().unwrap();
    assert_eq!(
        effect_counts(pool).await,
        (total, total),
        "each event applied exactly once"
    );
}

#[tokio::test]
async fn a_relay_crash_before_marking_sent_republishes_and_consumers_deduplicate() {
    let (pool, topic) = setup().await;
    enqueue(&pool, &topic, 10).await;
    let crashed = relay(&pool);
    {
        let mut tx = pool.begin().await.unwrap();
        let rows = crashed.claim(&mut tx).await.unwrap();
        assert_eq!(rows.len(), 10);
        crashed.publish(&rows).await.unwrap();
        // The process dies here: the server rolls the transaction back (and releases the
        // relay lock) and nothing is marked sent. Roll back explicitly: a dropped sqlx
        // transaction is rolled back lazily, which would leave the lock held for a moment.
        tx.rollback().await.unwrap();
    }
    let sent = relay(&pool).relay_once().await.unwrap();
    assert_eq!(
        sent, 10,
        "the restarted relay publishes the unmarked rows again"
    );

    // Twenty messages are on the topic now; the effect happens ten times.
    let reader = testkit::topic_reader(&topic).unwrap();
    let mut seen = 0;
    while testkit::next_matching(
        &reader,
        Duration::from_secs(if seen == 0 { 20 } else { 2 }),
        |_| Some(()),
    )
    .await
    .is_ok()
    {
        seen += 1;
    }
    assert_eq!(seen, 20);

    let shutdown = Shutdown::new();
    let running = tokio::spawn(
        consumer(&pool, &topic, &testkit::unique("group"), Duration::ZERO).run(shutdown.clone()),
    );
    testkit::eventually(Duration::from_secs(30), "events consumed", || async {
        (effect_counts(&pool).await.1 == 10).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    shutdown.trigger();
    running.await.unwrap().unwrap();
    assert_eq!(effect_counts(&pool).await, (10, 10));
}

#[tokio::test]
async fn a_malformed_message_is_dead_lettered_and_the_next_event_still_applies() {
    let (pool, topic) = setup().await;
    let dlq = testkit::unique("dlq");
    events::topics::ensure_named(&testkit::kafka_brokers(), &dlq, 1)
        .await
        .unwrap();
    let producer = events::outbox::producer(&testkit::kafka_brokers()).unwrap();
    producer
        .send(
            rdkafka::producer::FutureRecord::to(&topic)
                .key("k")
                .payload("{not json"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    enqueue(&pool, &topic, 1).await;
    relay(&pool).relay_once().await.unwrap();

    let mut config = ConsumerConfig::new(
        &testkit::kafka_brokers(),
        &testkit::unique("group"),
        &[&topic],
    );
    config.dead_letter_topic = dlq.clone();
    let shutdown = Shutdown::new();
    let running = tokio::spawn(
        Consumer::new(config, pool.clone(), Recorder::new(Duration::ZERO))
            .unwrap()
            .run(shutdown.clone()),
    );
    testkit::eventually(
        Duration::from_secs(30),
        "the good event applied",
        || async { (effect_counts(&pool).await.0 == 1).then_some(()) },
    )
    .await;
    shutdown.trigger();
    running.await.unwrap().unwrap();

    let reader = testkit::topic_reader(&dlq).unwrap();
    let message = tokio::time::timeout(
        Duration::from_secs(20),
        rdkafka::consumer::StreamConsumer::recv(&reader),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(message.payload(), Some("{not json".as_bytes()));
    use rdkafka::message::Headers;
    let reason = message
        .headers()
        .unwrap()
        .iter()
        .find(|h| h.key == "dlq-reason")
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap();
    assert!(reason.starts_with("malformed"), "{reason}");
}

#[tokio::test]
async fn lanes_apply_each_subject_in_order_and_every_event_once_across_a_restart() {
    let (pool, topic) = setup().await;
    enqueue(&pool, &topic, 60).await;
    while relay(&pool).relay_once().await.unwrap() > 0 {}
    let group = testkit::unique("group");
    let lanes = |delay| {
        let mut config = common::config(&testkit::kafka_brokers(), &topic, &group);
        config.concurrency = 4;
        Consumer::new(config, pool.clone(), Recorder::new(delay)).unwrap()
    };

    restart_mid_stream(&pool, 60, 12, lanes).await;
    // Subjects are spread over three partitions and four lanes; each one's events were
    // committed to the outbox in seq order and must have been applied in that order.
    for (subject, seqs) in common::applied_per_subject(&pool).await.iter().enumerate() {
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(
            seqs, &sorted,
            "subject thing-{subject} applied out of order"
        );
        assert_eq!(seqs.len(), 12);
    }
}

#[tokio::test]
async fn a_shutdown_during_retries_leaves_the_event_to_be_delivered_again() {
    let (pool, topic) = setup().await;
    enqueue(&pool, &topic, 1).await;
    relay(&pool).relay_once().await.unwrap();
    let group = testkit::unique("group");
    let failing = Recorder::new(Duration::ZERO);
    failing
        .open
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let mut config = common::config(&testkit::kafka_brokers(), &topic, &group);
    config.max_attempts = 1_000;
    let first = Shutdown::new();
    let running = tokio::spawn(
        Consumer::new(config, pool.clone(), failing)
            .unwrap()
            .run(first.clone()),
    );
    // Let it receive the event and fail a few times, then stop it mid-retry.
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.trigger();
    running.await.unwrap().unwrap();
    assert_eq!(effect_counts(&pool).await, (0, 0));

    let second = Shutdown::new();
    let running = tokio::spawn(consumer(&pool, &topic, &group, Duration::ZERO).run(second.clone()));
    testkit::eventually(
        Duration::from_secs(30),
        "the event delivered again",
        || async { (effect_counts(&pool).await == (1, 1)).then_some(()) },
    )
    .await;
    second.trigger();
    running.await.unwrap().unwrap();
}

/// Fails (retryably) the first time it sees each of `fail_once`; records the transaction each
/// event was applied in.
#[derive(Clone)]
struct Batched {
    fail_once: Arc<Mutex<HashSet<i32>>>,
}

impl EventHandler for Batched {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        let seq = event.data["seq"].as_i64().unwrap() as i32;
        if self.fail_once.lock().unwrap().remove(&seq) {
            return Err(HandlerError::Retryable(anyhow::anyhow!(
                "seq {seq} fails once"
            )));
        }
        sqlx::query("INSERT INTO effects (event_id, seq) VALUES ($1, $2)")
            .bind(event.id)
            .bind(seq)
            .execute(&mut *conn)
            .await?;
        sqlx::query("INSERT INTO applied_in (seq, tx) VALUES ($1, txid_current())")
            .bind(seq)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// Batches: a lane applies what it has queued in one transaction; an event failing inside a
/// batch rolls the batch back and its events are applied one by one; in the end every event
/// is applied once, each subject in order, in far fewer transactions than events.
#[tokio::test]
async fn batches_apply_every_event_once_in_order_in_few_transactions() {
    let (pool, topic) = setup().await;
    sqlx::raw_sql("CREATE TABLE applied_in (seq INT NOT NULL, tx BIGINT NOT NULL);")
        .execute(&pool)
        .await
        .unwrap();
    enqueue(&pool, &topic, 300).await;
    while relay(&pool).relay_once().await.unwrap() > 0 {}
    let group = testkit::unique("group");
    let mut config = common::config(&testkit::kafka_brokers(), &topic, &group).batched(32);
    config.concurrency = 2;
    let handler = Batched {
        fail_once: Arc::new(Mutex::new([77, 150, 299].into_iter().collect())),
    };
    let stop = Shutdown::new();
    let running = tokio::spawn(
        Consumer::new(config, pool.clone(), handler.clone())
            .unwrap()
            .run(stop.clone()),
    );
    testkit::eventually(Duration::from_secs(60), "all events consumed", || async {
        (effect_counts(&pool).await.1 == 300).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.trigger();
    running.await.unwrap().unwrap();
    assert_eq!(effect_counts(&pool).await, (300, 300), "each event once");
    assert!(
        handler.fail_once.lock().unwrap().is_empty(),
        "each failure happened"
    );
    for (subject, seqs) in common::applied_per_subject(&pool).await.iter().enumerate() {
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(
            seqs, &sorted,
            "subject thing-{subject} applied out of order"
        );
    }
    let (transactions,): (i64,) = sqlx::query_as("SELECT count(DISTINCT tx) FROM applied_in")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        transactions < 150,
        "300 events in {transactions} transactions: batched"
    );
}

/// Takes only events with an even `seq`.
#[derive(Clone)]
struct EvenOnly(Recorder);

impl EventHandler for EvenOnly {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        self.0.handle(conn, event).await
    }

    fn accepts(&self, event: &Envelope) -> bool {
        event.data["seq"].as_i64().is_some_and(|seq| seq % 2 == 0)
    }
}

/// Events a handler does not want cost no transaction and leave no processed-event record,
/// one at a time and in batches alike; the consumer still moves past them.
#[tokio::test]
async fn events_a_handler_does_not_accept_are_passed_over_without_a_transaction() {
    let (pool, topic) = setup().await;
    enqueue(&pool, &topic, 40).await;
    while relay(&pool).relay_once().await.unwrap() > 0 {}
    for batch in [1, 16] {
        let group = testkit::unique("group");
        sqlx::raw_sql("TRUNCATE effects")
            .execute(&pool)
            .await
            .unwrap();
        let config = common::config(&testkit::kafka_brokers(), &topic, &group).batched(batch);
        let stop = Shutdown::new();
        let running = tokio::spawn(
            Consumer::new(
                config,
                pool.clone(),
                EvenOnly(Recorder::new(Duration::ZERO)),
            )
            .unwrap()
            .run(stop.clone()),
        );
        testkit::eventually(
            Duration::from_secs(30),
            "the even events applied",
            || async { (effect_counts(&pool).await == (20, 20)).then_some(()) },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.trigger();
        running.await.unwrap().unwrap();
        assert_eq!(effect_counts(&pool).await, (20, 20), "batch {batch}");
        let (recorded,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM processed_events WHERE consumer = $1")
                .bind(&group)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(
            recorded, 20,
            "batch {batch}: only the accepted events are recorded"
        );
    }
}

/// Sleeps before applying the events of one subject.
#[derive(Clone)]
struct SlowFor(&'static str, Recorder);

impl EventHandler for SlowFor {
    async fn handle(&self, conn: &mut PgConnection, event: &Envelope) -> Result<(), HandlerError> {
        if event.subject == self.0 {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        self.1.handle(conn, event).await
    }
}

/// A subject whose events are slow to apply holds back only its own lane: the events of
/// other lanes that come after its backlog on the same partition are applied at once, not
/// once the slow lane's queue has room again.
#[tokio::test]
async fn one_slow_subject_holds_back_only_its_own_lane() {
    const LANES: usize = 4;
    let (pool, _) = setup().await;
    let topic = testkit::unique("evtest-one");
    events::topics::ensure_named(&testkit::kafka_brokers(), &topic, 1)
        .await
        .unwrap();
    let slow_lane = events::consumer::lane_of("slow", LANES);
    let others: Vec<String> = (0..)
        .map(|n| format!("other-{n}"))
        .filter(|s| events::consumer::lane_of(s, LANES) != slow_lane)
        .take(10)
        .collect();
    // 40 slow events (6 s of work), then 20 others, all on one partition.
    let mut tx = pool.begin().await.unwrap();
    let subjects =
        std::iter::repeat_n("slow".to_owned(), 40).chain(others.iter().cycle().take(20).cloned());
    for (seq, subject) in subjects.enumerate() {
        let event = Envelope::new(
            "test",
            "thing.happened",
            subject,
            &serde_json::json!({"seq": seq}),
        )
        .unwrap();
        events::outbox::enqueue(&mut tx, &topic, &event)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    while relay(&pool).relay_once().await.unwrap() > 0 {}

    let mut config = common::config(&testkit::kafka_brokers(), &topic, &testkit::unique("group"));
    config.concurrency = LANES;
    let stop = Shutdown::new();
    let running = tokio::spawn(
        Consumer::new(
            config,
            pool.clone(),
            SlowFor("slow", Recorder::new(Duration::ZERO)),
        )
        .unwrap()
        .run(stop.clone()),
    );
    let applied = |slow: bool| {
        let pool = pool.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(if slow {
                "SELECT count(*) FROM effects WHERE seq < 40"
            } else {
                "SELECT count(*) FROM effects WHERE seq >= 40"
            })
            .fetch_one(&pool)
            .await
            .unwrap();
            n
        }
    };
    testkit::eventually(
        Duration::from_secs(30),
        "the other lanes' events",
        || async { (applied(false).await == 20).then_some(()) },
    )
    .await;
    let slow_done = applied(true).await;
    // Before, the loop waited once the slow lane held 17: the others came after 23 more
    // slow events (3.5 s).
    assert!(
        slow_done < 17,
        "the other lanes waited for the slow one: {slow_done} slow events applied first"
    );
    testkit::eventually(Duration::from_secs(30), "the slow events", || async {
        (applied(true).await == 40).then_some(())
    })
    .await;
    stop.trigger();
    running.await.unwrap().unwrap();
    assert_eq!(effect_counts(&pool).await, (60, 60));
}
