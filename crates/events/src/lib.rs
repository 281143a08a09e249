//! Events between services: the envelope every event uses, the catalogue of topics and
//! consumer groups, the transactional-outbox relay that publishes what services commit, and
//! the idempotent consumer loop.
//!
//! Producers never talk to Kafka inside a request: they call [`outbox::enqueue`] in the same
//! database transaction as their change, and [`outbox::OutboxRelay`] publishes afterwards
//! (at least once). Consumers make at-least-once delivery effectively exactly-once by
//! recording each event id in `processed_events` in the same transaction as their effect.

pub mod catalogue;
pub mod consumer;
pub mod dead_letter;
pub mod envelope;
pub mod monitor;
mod offsets;
pub mod outbox;
pub mod payloads;
pub mod schema;
pub mod topics;

pub use consumer::{Consumer, ConsumerConfig, EventHandler, HandlerError};
pub use envelope::Envelope;
pub use monitor::MonitorConfig;
pub use outbox::OutboxRelay;
