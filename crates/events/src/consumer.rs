//! The idempotent consumer loop.
//!
//! For each message: decode the envelope; in one database transaction record the event id in
//! `processed_events` (a duplicate is skipped) and apply the handler's effect; commit; only
//! then commit the Kafka offset. Failures retry with exponential backoff; malformed messages,
//! permanent errors and exhausted retries go to the dead-letter topic with the reason in
//! headers, and the loop moves on. A shutdown during retries leaves the offset uncommitted so
//! the message is redelivered. A watchdog ([`crate::monitor`]) measures the group's lag from
//! the broker on a timer and rebuilds a session that stopped receiving.
//!
//! Longer than most files on purpose: the consume → effect → record → commit loop, its retries
//! and its dead-lettering are one state machine; split, the exactly-once argument is lost.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use platform::shutdown::Shutdown;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::{PgConnection, PgPool};
use tokio::sync::{Notify, mpsc};
use tracing::Instrument;

use crate::Envelope;
use crate::monitor::{LoopState, Monitor, MonitorConfig};
use crate::offsets::Offsets;

/// Why a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Might succeed later (database down, dependency unavailable).
    #[error("retryable: {0:#}")]
    Retryable(anyhow::Error),
    /// Will never succeed (invalid data); goes straight to the dead-letter topic.
    #[error("permanent: {0:#}")]
    Permanent(anyhow::Error),
}

impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> Self {
        Self::Retryable(e.into())
    }
}

/// Applies events. The effect must be written through `conn`, which is inside the transaction
/// that also records the event as processed.
pub trait EventHandler: Send + Sync + 'static {
    /// Handles one event.
    fn handle<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a Envelope,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a;

    /// Events with the same key are handled one after another, in partition order; events
    /// with different keys may be handled at once (see [`ConsumerConfig::concurrency`]).
    /// Default: the event's subject, which is also its Kafka key.
    fn order_key<'a>(&self, event: &'a Envelope) -> &'a str {
        &event.subject
    }

    /// Whether the event concerns this handler at all. One that does not is passed over as it
    /// is received, without a lane or a database transaction (no processed-event record:
    /// applying it would change nothing, so doing it twice is harmless too). Default: every
    /// event.
    fn accepts(&self, _event: &Envelope) -> bool {
        true
    }
}

/// Settings of one consumer.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Consumer group; also the deduplication scope in `processed_events`.
    pub group: String,
    /// Topics to read.
    pub topics: Vec<String>,
    /// Attempts before dead-lettering.
    pub max_attempts: u32,
    /// First retry delay; doubles each attempt up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Where unprocessable messages go.
    pub dead_letter_topic: String,
    /// The watchdog's timing.
    pub monitor: MonitorConfig,
    /// Lanes handling events at once (default 1: one at a time). An event goes to the lane
    /// of its [`EventHandler::order_key`], so events of one key keep their order; offsets
    /// are committed only past events that are all done.
    pub concurrency: usize,
    /// Events a lane may apply in one database transaction (default 1). A lane takes what is
    /// already queued for it, up to this many, and applies them with their processed-event
    /// records in one transaction: one commit (one WAL flush) instead of one per event. Any
    /// failure in the batch rolls it back whole and its events are applied one by one, with
    /// the usual retries and dead-lettering. Only for handlers whose effect is all in the
    /// database (statistics), never for one that calls out (email).
    pub batch_size: usize,
}

impl ConsumerConfig {
    /// Defaults: 5 attempts, 200 ms doubling to 10 s, the platform dead-letter topic.
    pub fn new(brokers: &str, group: &str, topics: &[&str]) -> Self {
        Self {
            brokers: brokers.to_owned(),
            group: group.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            dead_letter_topic: crate::topics::DEAD_LETTER.to_owned(),
            monitor: MonitorConfig::default(),
            concurrency: 1,
            batch_size: 1,
        }
    }

    /// The same, applying up to `size` queued events per transaction (see
    /// [`Self::batch_size`]).
    pub fn batched(mut self, size: usize) -> Self {
        self.batch_size = size.max(1);
        self
    }
}

/// Batch size of the statistics consumers: their effect is rollup rows in their own schema.
pub const STATS_BATCH: usize = 64;

/// A consumer bound to a handler.
pub struct Consumer<H> {
    config: ConsumerConfig,
    pool: PgPool,
    handler: H,
    dlq: FutureProducer,
}

enum Outcome {
    Done,
    Aborted,
}

enum SessionEnd {
    Shutdown,
    Rebuild,
}

/// A message on its way to a lane, with its envelope decoded (or why it could not be).
struct Job {
    message: OwnedMessage,
    envelope: Result<Envelope, String>,
}

/// A lane's word that a message is finished with.
struct Finished {
    topic: String,
    partition: i32,
    offset: i64,
    outcome: Outcome,
}

/// Queued messages per lane (keeps memory and redelivery small).
const LANE_QUEUE: usize = 16;

/// Messages that may wait for full lanes, per lane, before the loop stops receiving.
const HELD_PER_LANE: usize = 16;

impl<H: EventHandler> Consumer<H> {
    /// A consumer that applies `handler` inside transactions on `pool`.
    pub fn new(config: ConsumerConfig, pool: PgPool, handler: H) -> anyhow::Result<Self> {
        let dlq = crate::outbox::producer(&config.brokers)?;
        Ok(Self {
            config,
            pool,
            handler,
            dlq,
        })
    }

    /// Consumes until `shutdown` fires. A session the watchdog finds stuck (see
    /// [`crate::monitor`]) is dropped and a new Kafka consumer rejoins the group, without a
    /// process restart.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let this = Arc::new(self);
        let topics: Vec<String> = this
            .config
            .topics
            .iter()
            .map(|t| crate::topics::physical(t).into_owned())
            .collect();
        let component = crate::monitor::component(&this.config.group);
        loop {
            let consumer = Arc::new(this.subscribe(&topics)?);
            let lanes = this.config.concurrency.max(1);
            let state = Arc::new(LoopState::new(lanes));
            let rebuild = Arc::new(Notify::new());
            let stop_monitor = Shutdown::new();
            let monitor = tokio::spawn(
                Monitor {
                    group: this.config.group.clone(),
                    topics: topics.clone(),
                    brokers: this.config.brokers.clone(),
                    config: this.config.monitor,
                    consumer: consumer.clone(),
                    state: state.clone(),
                }
                .run(stop_monitor.clone(), rebuild.clone()),
            );
            let end = this.consume(&consumer, &state, &rebuild, &shutdown).await;
            stop_monitor.trigger();
            let _ = monitor.await;
            // Closing leaves the group, a blocking call.
            let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
            match end {
                SessionEnd::Shutdown => break,
                SessionEnd::Rebuild => {
                    metrics::counter!("kafka_consumer_rebuilds_total", "group" => this.config.group.clone())
                        .increment(1);
                    tracing::warn!(group = %this.config.group, "rebuilding the stalled Kafka consumer");
                }
            }
        }
        platform::status::remove(&component);
        tracing::info!(group = %this.config.group, "consumer stopped");
        Ok(())
    }

    fn subscribe(&self, topics: &[String]) -> anyhow::Result<StreamConsumer> {
        let consumer: StreamConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.config.brokers)
            .set("group.id", &self.config.group)
            .set("enable.auto.commit", "false")
            // Offsets are committed explicitly, only past messages that are done (not merely
            // received): a message still queued or aborted at shutdown is delivered again.
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // Generous for a busy small machine: a broker that pauses for a few seconds must
            // not cost the group its session (the watchdog covers a session that is lost).
            .set("session.timeout.ms", "30000")
            .set("heartbeat.interval.ms", "3000")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .create()
            .context("creating Kafka consumer")?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names).context("subscribing")?;
        tracing::info!(group = %self.config.group, topics = ?names, "consumer started");
        Ok(consumer)
    }

    /// One session: messages until shutdown or until the watchdog asks for a new session.
    /// The loop receives, decodes and hands each message to the lane of its order key; lanes
    /// (tasks) handle their messages in order and report back; the loop commits the offsets
    /// that are done.
    async fn consume(
        self: &Arc<Self>,
        consumer: &StreamConsumer,
        state: &Arc<LoopState>,
        rebuild: &Notify,
        shutdown: &Shutdown,
    ) -> SessionEnd {
        let lanes = self.config.concurrency.max(1);
        let (finished_tx, mut finished) = mpsc::unbounded_channel::<Finished>();
        let mut queues = Vec::with_capacity(lanes);
        let mut workers = Vec::with_capacity(lanes);
        for lane in 0..lanes {
            let (queue, jobs) = mpsc::channel::<Job>(LANE_QUEUE.max(self.config.batch_size));
            queues.push(queue);
            workers.push(tokio::spawn(self.clone().lane(
                lane,
                jobs,
                finished_tx.clone(),
                state.clone(),
                shutdown.clone(),
            )));
        }
        drop(finished_tx);
        let mut offsets = Offsets::default();
        // Messages whose lane's queue is full wait here, in order per lane, so that one busy
        // lane (a hot key, a slow recipient) does not stop the others: the loop stops taking
        // messages from the broker only when HELD_PER_LANE per lane wait in all.
        let mut waiting: Vec<VecDeque<Job>> = (0..lanes).map(|_| VecDeque::new()).collect();
        let end = 'session: loop {
            for (lane, jobs) in waiting.iter_mut().enumerate() {
                while let Some(job) = jobs.pop_front() {
                    match queues[lane].try_send(job) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(job)) => {
                            jobs.push_front(job);
                            break;
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            break 'session SessionEnd::Shutdown;
                        }
                    }
                }
            }
            let message = tokio::select! {
                _ = shutdown.wait() => break SessionEnd::Shutdown,
                _ = rebuild.notified() => break SessionEnd::Rebuild,
                // A lane that finishes has taken from its queue: the loop wakes and hands it
                // what waits.
                Some(done) = finished.recv() => {
                    self.finish(consumer, &mut offsets, done, CommitMode::Async);
                    continue;
                }
                message = consumer.recv(),
                    if waiting.iter().map(VecDeque::len).sum::<usize>() < HELD_PER_LANE * lanes
                    => message,
            };
            let message = match message {
                Ok(message) => message,
                Err(e) => {
                    tracing::warn!(error = %e, "kafka receive failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let envelope = decode(&message);
            offsets.dispatched(message.topic(), message.partition(), message.offset());
            // What the handler does not want is done here, without a lane: it waits behind
            // nobody's work (its offset is committed once those before it are done).
            if let Ok(envelope) = &envelope
                && !self.handler.accepts(envelope)
            {
                self.count(&envelope.event_type, "skipped");
                state.passed_over();
                let done = Finished {
                    topic: message.topic().to_owned(),
                    partition: message.partition(),
                    offset: message.offset(),
                    outcome: Outcome::Done,
                };
                self.finish(consumer, &mut offsets, done, CommitMode::Async);
                continue;
            }
            let key = envelope
                .as_ref()
                .map_or("", |envelope| self.handler.order_key(envelope));
            let lane = lane_of(key, lanes);
            let job = Job {
                message: message.detach(),
                envelope,
            };
            // Behind what already waits for this lane, to keep its order; the top of the loop
            // hands it over.
            waiting[lane].push_back(job);
        };
        // Messages still waiting were never handled: they stay in flight (nothing after them
        // is committed) and come again.
        drop(waiting);
        // Lanes finish what they hold (on shutdown: only the message in hand); then the last
        // offsets are committed synchronously.
        drop(queues);
        for worker in workers {
            let _ = worker.await;
        }
        while let Ok(done) = finished.try_recv() {
            self.finish(consumer, &mut offsets, done, CommitMode::Sync);
        }
        end
    }

    /// One lane: its messages in order until its queue closes.
    async fn lane(
        self: Arc<Self>,
        lane: usize,
        mut jobs: mpsc::Receiver<Job>,
        finished: mpsc::UnboundedSender<Finished>,
        state: Arc<LoopState>,
        shutdown: Shutdown,
    ) {
        while let Some(job) = jobs.recv().await {
            if shutdown.is_triggered() {
                break;
            }
            let mut batch = vec![job];
            while batch.len() < self.config.batch_size.max(1) {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            state.busy(lane);
            let count = batch.len() as u64;
            let outcomes: Vec<(OwnedMessage, Outcome)> =
                if batch.len() > 1 && self.apply_batch(&batch).await {
                    batch
                        .into_iter()
                        .map(|job| (job.message, Outcome::Done))
                        .collect()
                } else {
                    let mut outcomes = Vec::with_capacity(batch.len());
                    for job in batch {
                        let outcome = self.process(&job.message, job.envelope, &shutdown).await;
                        outcomes.push((job.message, outcome));
                    }
                    outcomes
                };
            state.idle(lane, count);
            for (message, outcome) in outcomes {
                let _ = finished.send(Finished {
                    topic: message.topic().to_owned(),
                    partition: message.partition(),
                    offset: message.offset(),
                    outcome,
                });
            }
        }
    }

    /// Applies a batch of decoded events in one transaction; false (nothing applied) when any
    /// is malformed or fails, or the commit does: the caller then applies them one by one.
    async fn apply_batch(&self, batch: &[Job]) -> bool {
        let envelopes: Option<Vec<&Envelope>> =
            batch.iter().map(|job| job.envelope.as_ref().ok()).collect();
        let Some(envelopes) = envelopes else {
            return false;
        };
        let applied = async {
            let mut tx = self.pool.begin().await?;
            let mut outcomes = Vec::with_capacity(envelopes.len());
            for envelope in &envelopes {
                let duplicate = self.record_and_handle(&mut tx, envelope).await?;
                outcomes.push(if duplicate { "duplicate" } else { "processed" });
            }
            tx.commit().await?;
            Ok::<_, HandlerError>(outcomes)
        }
        .instrument(
            tracing::info_span!("consume batch", group = %self.config.group,
            events = envelopes.len()),
        )
        .await;
        match applied {
            Ok(outcomes) => {
                for (envelope, outcome) in envelopes.iter().zip(outcomes) {
                    self.count(&envelope.event_type, outcome);
                }
                metrics::histogram!("events_batch_size", "group" => self.config.group.clone())
                    .record(envelopes.len() as f64);
                true
            }
            Err(e) => {
                tracing::info!(
                    error = format!("{e:#}"),
                    events = envelopes.len(),
                    "a batch failed; applying its events one by one"
                );
                false
            }
        }
    }

    /// Records a finished message and commits its partition's offset if that moved.
    fn finish(
        &self,
        consumer: &StreamConsumer,
        offsets: &mut Offsets,
        done: Finished,
        mode: CommitMode,
    ) {
        // An aborted message stays in flight: nothing after it is committed.
        if matches!(done.outcome, Outcome::Aborted) {
            return;
        }
        let Some(next) = offsets.done(&done.topic, done.partition, done.offset) else {
            return;
        };
        let mut commit = TopicPartitionList::new();
        let committed = commit
            .add_partition_offset(&done.topic, done.partition, Offset::Offset(next))
            .and_then(|()| consumer.commit(&commit, mode));
        if let Err(e) = committed {
            tracing::warn!(error = %e, "offset commit failed; messages may be redelivered");
        }
    }

    async fn process(
        &self,
        message: &OwnedMessage,
        envelope: Result<Envelope, String>,
        shutdown: &Shutdown,
    ) -> Outcome {
        let headers = header_map(message);
        let span = tracing::info_span!(
            "consume",
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            group = %self.config.group,
            event_type = tracing::field::Empty,
        );
        platform::telemetry::set_parent_from_headers(&span, &headers);
        async {
            let envelope = match envelope {
                Ok(envelope) => envelope,
                Err(e) => {
                    return self
                        .dead_letter(message, &format!("malformed: {e}"), shutdown)
                        .await;
                }
            };
            tracing::Span::current().record("event_type", envelope.event_type.as_str());
            let mut backoff = self.config.initial_backoff;
            for attempt in 1..=self.config.max_attempts {
                match self.apply(&envelope).await {
                    Ok(duplicate) => {
                        let outcome = if duplicate { "duplicate" } else { "processed" };
                        self.count(&envelope.event_type, outcome);
                        return Outcome::Done;
                    }
                    Err(HandlerError::Permanent(e)) => {
                        return self.dead_letter(message, &format!("{e:#}"), shutdown).await;
                    }
                    Err(HandlerError::Retryable(e)) if attempt == self.config.max_attempts => {
                        let reason = format!("retries exhausted after {attempt} attempts: {e:#}");
                        return self.dead_letter(message, &reason, shutdown).await;
                    }
                    Err(HandlerError::Retryable(e)) => {
                        self.count(&envelope.event_type, "retried");
                        tracing::warn!(
                            error = format!("{e:#}"),
                            attempt,
                            "event handling failed; retrying"
                        );
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = shutdown.wait() => return Outcome::Aborted,
                        }
                        backoff = (backoff * 2).min(self.config.max_backoff);
                    }
                }
            }
            Outcome::Done
        }
        .instrument(span)
        .await
    }

    /// Applies the event once; returns whether it had already been processed.
    async fn apply(&self, envelope: &Envelope) -> Result<bool, HandlerError> {
        let mut tx = self.pool.begin().await?;
        let duplicate = self.record_and_handle(&mut tx, envelope).await?;
        if !duplicate {
            tx.commit().await?;
        }
        Ok(duplicate)
    }

    /// In `conn`'s transaction: records the event as processed and applies its effect, or
    /// returns true (and does nothing) when it had been processed before.
    async fn record_and_handle(
        &self,
        conn: &mut PgConnection,
        envelope: &Envelope,
    ) -> Result<bool, HandlerError> {
        let inserted = sqlx::query(
            "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
        )
        .bind(&self.config.group)
        .bind(envelope.id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(true);
        }
        self.handler.handle(conn, envelope).await?;
        Ok(false)
    }

    async fn dead_letter(
        &self,
        message: &OwnedMessage,
        reason: &str,
        shutdown: &Shutdown,
    ) -> Outcome {
        tracing::error!(reason, "event dead-lettered");
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let mut backoff = self.config.initial_backoff;
        loop {
            let mut headers = OwnedHeaders::new();
            if let Some(original) = message.headers() {
                for header in original.iter() {
                    headers = headers.insert(header);
                }
            }
            let headers = headers
                .insert(Header {
                    key: "dlq-reason",
                    value: Some(reason.as_bytes()),
                })
                .insert(Header {
                    key: "dlq-source-topic",
                    value: Some(crate::topics::logical(message.topic()).as_bytes()),
                })
                .insert(Header {
                    key: "dlq-source-partition",
                    value: Some(partition.as_bytes()),
                })
                .insert(Header {
                    key: "dlq-source-offset",
                    value: Some(offset.as_bytes()),
                })
                .insert(Header {
                    key: "dlq-consumer-group",
                    value: Some(self.config.group.as_bytes()),
                });
            let dead_letter_topic = crate::topics::physical(&self.config.dead_letter_topic);
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&dead_letter_topic).headers(headers);
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(payload) = message.payload() {
                record = record.payload(payload);
            }
            match self.dlq.send(record, Duration::from_secs(10)).await {
                Ok(_) => {
                    metrics::counter!("events_dead_lettered_total", "group" => self.config.group.clone())
                        .increment(1);
                    return Outcome::Done;
                }
                Err((e, _)) => {
                    tracing::warn!(error = %e, "dead-letter publish failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.wait() => return Outcome::Aborted,
                    }
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
            }
        }
    }

    fn count(&self, event_type: &str, outcome: &'static str) {
        metrics::counter!(
            "events_consumed_total",
            "group" => self.config.group.clone(),
            "type" => event_type.to_owned(),
            "outcome" => outcome
        )
        .increment(1);
    }
}

/// The envelope of a message, or why it has none.
fn decode(message: &BorrowedMessage<'_>) -> Result<Envelope, String> {
    message
        .payload()
        .context("empty message")
        .and_then(|p| serde_json::from_slice(p).context("not an event envelope"))
        .map_err(|e| format!("{e:#}"))
}

/// The lane (of `lanes`) whose task handles the events of an order key, one after another.
pub fn lane_of(key: &str, lanes: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % lanes as u64) as usize
}

fn header_map(message: &OwnedMessage) -> HashMap<String, String> {
    let mut map = HashMap::new();
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            if let Some(value) = header.value.and_then(|v| std::str::from_utf8(v).ok()) {
                map.insert(header.key.to_owned(), value.to_owned());
            }
        }
    }
    map
}
