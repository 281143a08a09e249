//! The consumer's watchdog: lag measured from the broker on a timer, whether or not messages
//! flow, and the judgement "stalled".
//!
//! Every [`MonitorConfig::interval`] it reads, for every partition of the subscribed topics,
//! the group's committed offset and the partition's high watermark (lag in messages), and for
//! partitions with lag the timestamp of the oldest unconsumed message (lag in seconds), with a
//! probe client of its own that never joins the group (so a broken session of the consumer
//! does not blind it). Metrics:
//!
//! - `kafka_consumer_lag_messages{group,topic,partition}` and
//!   `kafka_consumer_lag_seconds{group,topic,partition}`;
//! - `consumer_lag_seconds{group}`: the oldest unconsumed message of the group, 0 when caught up;
//! - `kafka_consumer_stalled{group}`: 1 while stalled; `kafka_consumer_lag_checked_seconds{group}`:
//!   when the last measurement succeeded (Unix time), so a dead watchdog is visible too.
//!
//! A partition this consumer owns (or any partition, while it owns none) that has unread
//! messages and whose committed offset has not moved for [`MonitorConfig::stall_after`] makes
//! the consumer *stalled* — unless its lanes are busy and kept finishing messages within that
//! time: then it is *behind* (saturated: a partition waits its turn), which is logged and shown
//! (`"state": "behind"`) but leaves readiness alone; the lag metrics and alerts measure it. A
//! stalled consumer's process reports not ready (`/readyz`) with the reason, and logs it. If at that moment the loop is not busy with a message (it waits on the broker that has
//! messages for it), the session is broken — a lost assignment, a group that never resumed —
//! and the monitor asks the loop to rebuild its Kafka consumer, which rejoins the group. An
//! idle consumer whose lag cannot be measured for as long is rebuilt too (without touching
//! readiness: the APIs work while the broker is away).
//!
//! Longer than most files on purpose: lag measurement and the stall rules that act on it are
//! read together (the rules are only as good as the figures).
//!
//! Why one file of ~430 lines: measuring, judging "stalled" and reporting share one state per
//! partition; the judgement's tests sit beside it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use platform::shutdown::Shutdown;
use platform::status::Report;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::json;
use tokio::sync::Notify;

/// Timing of the watchdog.
#[derive(Clone, Copy, Debug)]
pub struct MonitorConfig {
    /// How often lag is measured.
    pub interval: Duration,
    /// How long a partition may have unread messages without progress before the consumer
    /// counts as stalled.
    pub stall_after: Duration,
}

impl Default for MonitorConfig {
    /// Every 10 s; stalled after 45 s without progress (noticed within a minute).
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            stall_after: Duration::from_secs(45),
        }
    }
}

/// What the consumer's lanes share with its watchdog.
#[derive(Debug)]
pub(crate) struct LoopState {
    /// Per lane: Unix ms since which it has been handling one message (0: waiting).
    busy_since_ms: Vec<AtomicI64>,
    /// Messages the lanes finished, all together.
    finished: AtomicU64,
}

impl LoopState {
    pub(crate) fn new(lanes: usize) -> Self {
        Self {
            busy_since_ms: (0..lanes).map(|_| AtomicI64::new(0)).collect(),
            finished: AtomicU64::new(0),
        }
    }

    pub(crate) fn busy(&self, lane: usize) {
        if let Some(since) = self.busy_since_ms.get(lane) {
            since.store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
        }
    }

    /// The lane finished `count` messages and waits for more.
    pub(crate) fn idle(&self, lane: usize, count: u64) {
        if let Some(since) = self.busy_since_ms.get(lane) {
            since.store(0, Ordering::Relaxed);
        }
        self.finished.fetch_add(count, Ordering::Relaxed);
    }

    /// The loop passed over a message the handler does not want (progress, like a finished
    /// one).
    pub(crate) fn passed_over(&self) {
        self.finished.fetch_add(1, Ordering::Relaxed);
    }

    /// How long the longest-running message in hand has been handled; `None` when every lane
    /// waits for messages.
    fn busy_for(&self) -> Option<Duration> {
        let oldest = self
            .busy_since_ms
            .iter()
            .map(|since| since.load(Ordering::Relaxed))
            .filter(|since| *since != 0)
            .min()?;
        let now = chrono::Utc::now().timestamp_millis();
        Some(Duration::from_millis((now - oldest).max(0) as u64))
    }
}

/// Lag of one partition, as measured.
#[derive(Clone, Debug)]
struct PartitionLag {
    topic: String,
    partition: i32,
    /// Next offset the group will read.
    position: i64,
    high: i64,
    assigned: bool,
    /// Age of the message at `position`, when there is one.
    oldest_age: Option<Duration>,
}

impl PartitionLag {
    fn lag(&self) -> i64 {
        (self.high - self.position).max(0)
    }
}

/// The watchdog of one consumer session.
pub(crate) struct Monitor {
    pub(crate) group: String,
    pub(crate) topics: Vec<String>,
    pub(crate) brokers: String,
    pub(crate) config: MonitorConfig,
    pub(crate) consumer: Arc<StreamConsumer>,
    pub(crate) state: Arc<LoopState>,
}

/// The status-registry name of a group's consumer.
pub(crate) fn component(group: &str) -> String {
    format!("consumer:{group}")
}

impl Monitor {
    /// Measures until `stop` fires; notifies `rebuild` when the session looks broken.
    pub(crate) async fn run(self, stop: Shutdown, rebuild: Arc<Notify>) {
        let probe = match probe_consumer(&self.brokers, &self.group) {
            Ok(probe) => Arc::new(probe),
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), group = %self.group, "no lag probe; the watchdog is off");
                return;
            }
        };
        // Per partition: the last position seen and since when it has not moved.
        let mut seen: HashMap<(String, i32), (i64, Instant)> = HashMap::new();
        let mut last_rebuild_request = Instant::now();
        // When the lanes last finished a message: a consumer that keeps finishing messages
        // while a partition waits is behind (saturated), not stalled.
        let mut progress = (self.state.finished.load(Ordering::Relaxed), Instant::now());
        let mut was_behind = false;
        let mut previous_finished = progress.0;
        let mut unmeasured_since: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.config.interval) => {}
                _ = stop.wait() => return,
            }
            let consumer = self.consumer.clone();
            let probe = probe.clone();
            let topics = self.topics.clone();
            let measured = tokio::task::spawn_blocking(move || measure(&consumer, &probe, &topics))
                .await
                .map_err(anyhow::Error::from)
                .and_then(|measured| measured);
            let partitions = match measured {
                Ok(partitions) => {
                    unmeasured_since = None;
                    partitions
                }
                Err(e) => {
                    self.report_unmeasured(&format!("{e:#}"));
                    // The broker is unreachable, or answers the group's questions no more. An
                    // idle session that stays like that is rebuilt too (harmless while the
                    // broker is down: the new one waits for it like the old one). Readiness is
                    // left alone: the platform's APIs work without the broker.
                    let since = *unmeasured_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.config.stall_after
                        && self.state.busy_for().is_none()
                        && last_rebuild_request.elapsed() >= self.config.stall_after
                    {
                        last_rebuild_request = Instant::now();
                        tracing::warn!(group = %self.group, "lag unmeasurable for {} s; rejoining the group", since.elapsed().as_secs());
                        rebuild.notify_one();
                    }
                    continue;
                }
            };
            let now = Instant::now();
            let owns_any = partitions.iter().any(|p| p.assigned);
            let mut stalled: Option<(String, Duration)> = None;
            for p in &partitions {
                let entry = seen
                    .entry((p.topic.clone(), p.partition))
                    .or_insert((p.position, now));
                if entry.0 != p.position || p.lag() == 0 {
                    *entry = (p.position, now);
                }
                let still = now.duration_since(entry.1);
                if p.lag() > 0
                    && (p.assigned || !owns_any)
                    && still >= self.config.stall_after
                    && stalled.as_ref().is_none_or(|(_, d)| still > *d)
                {
                    let what = format!(
                        "{}[{}] has {} unread messages and no progress for {} s",
                        crate::topics::logical(&p.topic),
                        p.partition,
                        p.lag(),
                        still.as_secs()
                    );
                    stalled = Some((what, still));
                }
            }
            self.export(&partitions);
            let busy_for = self.state.busy_for();
            let finished = self.state.finished.load(Ordering::Relaxed);
            if finished != progress.0 {
                progress = (finished, now);
            }
            let recently_finished = finished.saturating_sub(previous_finished);
            previous_finished = finished;
            let progressing = now.duration_since(progress.1) < self.config.stall_after;
            // Busy and finishing messages, one partition waiting its turn: behind, not stuck.
            // Readiness stays; the lag metrics and alerts say how far behind.
            let behind = match (stalled.take(), busy_for) {
                (Some((what, _)), Some(_)) if progressing => Some(format!(
                    "group {}: {what}, while the consumer keeps finishing messages \
                         ({} in the last {} s): it is behind, not stalled",
                    self.group,
                    recently_finished,
                    self.config.interval.as_secs()
                )),
                (other, _) => {
                    stalled = other;
                    None
                }
            };
            if let Some(behind) = &behind {
                if !was_behind {
                    tracing::warn!(group = %self.group, reason = %behind, "consumer behind");
                }
                was_behind = true;
            } else {
                was_behind = false;
            }
            let reason = stalled.as_ref().map(|(what, _)| match busy_for {
                Some(busy) => format!(
                    "group {}: {what}; the handler has been on one message for {} s",
                    self.group,
                    busy.as_secs()
                ),
                None => format!(
                    "group {}: {what} while the consumer waits for messages; rejoining the group",
                    self.group
                ),
            });
            if let Some(reason) = &reason {
                tracing::error!(group = %self.group, reason, "consumer stalled");
                if busy_for.is_none() && last_rebuild_request.elapsed() >= self.config.stall_after {
                    last_rebuild_request = Instant::now();
                    rebuild.notify_one();
                }
            }
            metrics::gauge!("kafka_consumer_stalled", "group" => self.group.clone())
                .set(if reason.is_some() { 1.0 } else { 0.0 });
            metrics::gauge!("kafka_consumer_lag_checked_seconds", "group" => self.group.clone())
                .set(chrono::Utc::now().timestamp() as f64);
            self.report(&partitions, reason, behind, busy_for);
        }
    }

    fn export(&self, partitions: &[PartitionLag]) {
        let mut oldest = Duration::ZERO;
        for p in partitions {
            let labels = [
                ("group", self.group.clone()),
                ("topic", crate::topics::logical(&p.topic).to_owned()),
                ("partition", p.partition.to_string()),
            ];
            metrics::gauge!("kafka_consumer_lag_messages", &labels).set(p.lag() as f64);
            let age = if p.lag() > 0 {
                p.oldest_age.unwrap_or_default()
            } else {
                Duration::ZERO
            };
            metrics::gauge!("kafka_consumer_lag_seconds", &labels).set(age.as_secs_f64());
            oldest = oldest.max(age);
        }
        metrics::gauge!("consumer_lag_seconds", "group" => self.group.clone())
            .set(oldest.as_secs_f64());
    }

    fn report(
        &self,
        partitions: &[PartitionLag],
        reason: Option<String>,
        behind: Option<String>,
        busy_for: Option<Duration>,
    ) {
        let lag: i64 = partitions.iter().map(PartitionLag::lag).sum();
        let oldest = partitions
            .iter()
            .filter(|p| p.lag() > 0)
            .filter_map(|p| p.oldest_age)
            .max()
            .unwrap_or_default();
        let state = match (&reason, &behind, lag) {
            (Some(_), _, _) => "stalled",
            (None, Some(_), _) => "behind",
            (None, None, 0) => "caught up",
            (None, None, _) => "consuming",
        };
        let detail = json!({
            "group": self.group,
            "topics": self.topics.iter().map(|t| crate::topics::logical(t)).collect::<Vec<_>>(),
            "state": state,
            "lag_messages": lag,
            "lag_seconds": oldest.as_secs_f64(),
            "assigned_partitions": partitions.iter().filter(|p| p.assigned).count(),
            "handling_message_for_seconds": busy_for.map(|d| d.as_secs()),
            "behind": behind,
            "partitions": partitions.iter().filter(|p| p.lag() > 0).map(|p| json!({
                "topic": crate::topics::logical(&p.topic),
                "partition": p.partition,
                "committed": p.position,
                "high_watermark": p.high,
                "lag_messages": p.lag(),
                "lag_seconds": p.oldest_age.map(|d| d.as_secs_f64()),
                "assigned_here": p.assigned,
            })).collect::<Vec<_>>(),
        });
        platform::status::set(&component(&self.group), Report { reason, detail });
    }

    fn report_unmeasured(&self, error: &str) {
        tracing::warn!(group = %self.group, error, "could not measure consumer lag");
        platform::status::set(
            &component(&self.group),
            Report {
                reason: None,
                detail: json!({
                    "group": self.group,
                    "state": "unknown",
                    "error": format!("lag not measured: {error}"),
                }),
            },
        );
    }
}

const BROKER_TIMEOUT: Duration = Duration::from_secs(5);

/// The watchdog's own client of the group: it reads the group's committed offsets (through
/// its own connection to the coordinator, so a broken session of the consumer does not blind
/// the watchdog) and single messages at given offsets. It never subscribes, so it never joins
/// the group, and never commits.
fn probe_consumer(brokers: &str, group: &str) -> anyhow::Result<BaseConsumer> {
    Ok(rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", "100")
        .create()?)
}

/// Where a consumer group stands on one partition.
#[derive(Clone, Debug)]
pub(crate) struct GroupPosition {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// The partition's low watermark.
    pub(crate) low: i64,
    /// The next offset the group reads: its committed offset, or with none (or one already
    /// removed by retention) the low watermark, as `auto.offset.reset=earliest` does.
    pub(crate) position: i64,
    /// The high watermark.
    pub(crate) high: i64,
}

/// Blocking: the position of `consumer`'s group on every partition of `topics` (broker-side
/// names).
pub(crate) fn positions<C: Consumer>(
    consumer: &C,
    topics: &[String],
) -> anyhow::Result<Vec<GroupPosition>> {
    let mut all = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), BROKER_TIMEOUT)?;
        for t in metadata.topics() {
            for p in t.partitions() {
                all.add_partition(t.name(), p.id());
            }
        }
    }
    let committed = consumer.committed_offsets(all, BROKER_TIMEOUT)?;
    let mut positions = Vec::new();
    for element in committed.elements() {
        let (low, high) =
            consumer.fetch_watermarks(element.topic(), element.partition(), BROKER_TIMEOUT)?;
        let position = match element.offset() {
            Offset::Offset(offset) => offset.max(low),
            _ => low,
        };
        positions.push(GroupPosition {
            topic: element.topic().to_owned(),
            partition: element.partition(),
            low,
            position,
            high,
        });
    }
    Ok(positions)
}

/// Blocking: the lag of every partition of `topics` for the consumer's group.
fn measure(
    consumer: &StreamConsumer,
    probe: &BaseConsumer,
    topics: &[String],
) -> anyhow::Result<Vec<PartitionLag>> {
    let assignment = consumer.assignment()?;
    let mut partitions: Vec<PartitionLag> = positions(probe, topics)?
        .into_iter()
        .map(|p| PartitionLag {
            assigned: assignment.find_partition(&p.topic, p.partition).is_some(),
            topic: p.topic,
            partition: p.partition,
            position: p.position,
            high: p.high,
            oldest_age: None,
        })
        .collect();
    oldest_ages(probe, &mut partitions);
    Ok(partitions)
}

/// Reads the first unconsumed message of each lagging partition for its timestamp.
fn oldest_ages(probe: &BaseConsumer, partitions: &mut [PartitionLag]) {
    let mut wanted = TopicPartitionList::new();
    for p in partitions.iter().filter(|p| p.lag() > 0) {
        if wanted
            .add_partition_offset(&p.topic, p.partition, Offset::Offset(p.position))
            .is_err()
        {
            return;
        }
    }
    if wanted.count() == 0 || probe.assign(&wanted).is_err() {
        return;
    }
    let mut missing = wanted.count();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let now_ms = chrono::Utc::now().timestamp_millis();
    while missing > 0 && Instant::now() < deadline {
        let Some(Ok(message)) = probe.poll(Duration::from_millis(200)) else {
            continue;
        };
        let Some(p) = partitions
            .iter_mut()
            .find(|p| p.topic == message.topic() && p.partition == message.partition())
        else {
            continue;
        };
        if p.oldest_age.is_none()
            && let Some(ms) = message.timestamp().to_millis()
        {
            p.oldest_age = Some(Duration::from_millis((now_ms - ms).max(0) as u64));
            missing -= 1;
        }
    }
    let _ = probe.unassign();
}
