-- Events a consumer has applied (crates/events/src/consumer.rs): recorded in the same
-- transaction as the effect, so a redelivered event changes nothing. Owned by the events
-- crate and applied to every service schema that consumes; idempotent, runs on every start.
CREATE TABLE IF NOT EXISTS processed_events (
    consumer     TEXT NOT NULL,
    event_id     UUID NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
