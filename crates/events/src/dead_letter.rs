//! Working with the dead-letter topic: list what is open, replay messages to the topic they
//! came from, purge (mark handled).
//!
//! "Open" means after the operator cursor: the committed offset of the consumer group
//! [`OPERATOR_GROUP`] on the dead-letter topic, which nothing consumes otherwise. Purging moves
//! the cursor (to the end, or past one offset); messages stay on the topic until retention
//! removes them, so a purge can be undone by `--all` listings and replays. Replaying sends the
//! original key, payload and headers (without the `dlq-*` ones, with `dlq-replayed-from`) to the
//! source topic; consumers deduplicate by event id, so replaying an event that was applied in
//! the meantime changes nothing.
//!
//! Blocking (librdkafka calls): use from a command-line tool or `spawn_blocking`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::monitor::GroupPosition;

/// The consumer group whose committed offset marks what an operator has handled.
pub const OPERATOR_GROUP: &str = "payments.dead-letter.operator";

const TIMEOUT: Duration = Duration::from_secs(10);

/// One dead-lettered message.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// Offset on the dead-letter topic.
    pub offset: i64,
    /// When it was dead-lettered (Unix ms).
    pub timestamp_ms: Option<i64>,
    /// The original key.
    pub key: Option<Vec<u8>>,
    /// The original payload.
    pub payload: Option<Vec<u8>>,
    /// Every header, `dlq-*` included.
    pub headers: BTreeMap<String, String>,
}

impl DeadLetter {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    /// Why it was dead-lettered.
    pub fn reason(&self) -> &str {
        self.header("dlq-reason")
    }

    /// The (logical) topic it came from.
    pub fn source_topic(&self) -> &str {
        self.header("dlq-source-topic")
    }

    /// The consumer group that gave up on it.
    pub fn group(&self) -> &str {
        self.header("dlq-consumer-group")
    }

    /// The event's type, from its header or payload, if it has one.
    pub fn event_type(&self) -> String {
        self.headers
            .get("event-type")
            .cloned()
            .unwrap_or_else(|| self.envelope_field("type"))
    }

    /// The event's id, if the payload is an envelope.
    pub fn event_id(&self) -> String {
        self.envelope_field("id")
    }

    fn envelope_field(&self, field: &str) -> String {
        self.payload
            .as_deref()
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
            .and_then(|v| v.get(field).and_then(|f| f.as_str()).map(str::to_owned))
            .unwrap_or_default()
    }
}

/// Which messages an operation applies to.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Also messages before the operator cursor (already handled).
    pub include_handled: bool,
    /// Only this offset.
    pub offset: Option<i64>,
    /// Only messages of this consumer group.
    pub group: Option<String>,
    /// Only events of this type.
    pub event_type: Option<String>,
}

impl Filter {
    fn matches(&self, message: &DeadLetter) -> bool {
        self.offset.is_none_or(|o| o == message.offset)
            && self.group.as_deref().is_none_or(|g| g == message.group())
            && self
                .event_type
                .as_deref()
                .is_none_or(|t| t == message.event_type())
    }
}

/// The dead-letter topic of one cluster.
pub struct DeadLetters {
    brokers: String,
    /// Broker-side name of the topic.
    topic: String,
    consumer: BaseConsumer,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl DeadLetters {
    /// The dead-letter topic `topic` (logical name; usually [`crate::topics::DEAD_LETTER`]).
    pub fn new(brokers: &str, topic: &str) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", OPERATOR_GROUP)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .create()
            .context("creating Kafka consumer")?;
        Ok(Self {
            brokers: brokers.to_owned(),
            topic: crate::topics::physical(topic).into_owned(),
            consumer,
        })
    }

    /// Per partition: where the operator cursor stands, and the watermarks.
    fn bounds(&self) -> anyhow::Result<Vec<GroupPosition>> {
        crate::monitor::positions(&self.consumer, std::slice::from_ref(&self.topic))
    }

    /// How many messages are open (after the operator cursor).
    pub fn depth(&self) -> anyhow::Result<i64> {
        Ok(self
            .bounds()?
            .iter()
            .map(|p| (p.high - p.position).max(0))
            .sum())
    }

    /// The messages `filter` selects, oldest first.
    pub fn list(&self, filter: &Filter) -> anyhow::Result<Vec<DeadLetter>> {
        let mut found = Vec::new();
        for GroupPosition {
            partition,
            low,
            position: cursor,
            high,
            ..
        } in self.bounds()?
        {
            let start = if filter.include_handled { low } else { cursor };
            if start >= high {
                continue;
            }
            let mut assignment = TopicPartitionList::new();
            assignment.add_partition_offset(&self.topic, partition, Offset::Offset(start))?;
            self.consumer.assign(&assignment)?;
            let mut next = start;
            let deadline = std::time::Instant::now() + TIMEOUT;
            while next < high {
                anyhow::ensure!(
                    std::time::Instant::now() < deadline,
                    "timed out reading the dead-letter topic at offset {next}"
                );
                let Some(message) = self.consumer.poll(Duration::from_millis(500)) else {
                    continue;
                };
                let message = message?;
                next = message.offset() + 1;
                let letter = DeadLetter {
                    offset: message.offset(),
                    timestamp_ms: message.timestamp().to_millis(),
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().map(<[u8]>::to_vec),
                    headers: message
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    let value = h.value.map(String::from_utf8_lossy);
                                    (h.key.to_owned(), value.unwrap_or_default().into_owned())
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                if filter.matches(&letter) {
                    found.push(letter);
                }
            }
            self.consumer.unassign()?;
        }
        Ok(found)
    }

    /// Sends the selected messages back to their source topics; returns how many.
    pub fn replay(&self, filter: &Filter) -> anyhow::Result<usize> {
        let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .create()
            .context("creating Kafka producer")?;
        let letters = self.list(filter)?;
        for letter in &letters {
            anyhow::ensure!(
                !letter.source_topic().is_empty(),
                "dead letter at offset {} names no source topic",
                letter.offset
            );
            let target = crate::topics::physical(letter.source_topic());
            let offset = letter.offset.to_string();
            let mut headers = OwnedHeaders::new();
            for (key, value) in letter
                .headers
                .iter()
                .filter(|(k, _)| !k.starts_with("dlq-"))
            {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                });
            }
            let headers = headers.insert(Header {
                key: "dlq-replayed-from",
                value: Some(offset.as_bytes()),
            });
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&target).headers(headers);
            if let Some(key) = &letter.key {
                record = record.key(key);
            }
            if let Some(payload) = &letter.payload {
                record = record.payload(payload);
            }
            producer
                .send(record)
                .map_err(|(e, _)| anyhow::anyhow!("replaying offset {}: {e}", letter.offset))?;
        }
        producer
            .flush(TIMEOUT)
            .context("waiting for the broker to acknowledge the replayed messages")?;
        Ok(letters.len())
    }

    /// Marks messages handled: every open one, or those up to and including `through`.
    /// Returns how many were open and are handled now.
    pub fn purge(&self, through: Option<i64>) -> anyhow::Result<i64> {
        let mut commit = TopicPartitionList::new();
        let mut purged = 0;
        for GroupPosition {
            partition,
            position: cursor,
            high,
            ..
        } in self.bounds()?
        {
            let end = through.map_or(high, |t| (t + 1).min(high));
            if end > cursor {
                purged += end - cursor;
                commit.add_partition_offset(&self.topic, partition, Offset::Offset(end))?;
            }
        }
        if commit.count() > 0 {
            self.consumer.commit(&commit, CommitMode::Sync)?;
        }
        Ok(purged)
    }
}
