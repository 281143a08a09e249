//! The tables this crate's code relies on, as idempotent DDL (`crates/events/schema/*.sql`):
//! the outbox the relay publishes from and the processed-events table consumers deduplicate
//! with. Services list them among their schema's shared tables
//! (`platform::db::Schema::shared`), which applies them before the service's own migrations,
//! so the shape is written once, here.

/// `outbox` and its unsent-rows index: for every schema that publishes events.
pub const OUTBOX: &str = include_str!("../schema/outbox.sql");

/// `processed_events`: for every schema that consumes events.
pub const PROCESSED_EVENTS: &str = include_str!("../schema/processed_events.sql");
