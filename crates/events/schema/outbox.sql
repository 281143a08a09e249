-- The transactional outbox (crates/events/src/outbox.rs): an event is a row here, written in
-- the same transaction as the change it announces, published by the relay, then marked sent.
-- The shape is owned by the events crate and applied to every service schema that publishes
-- (platform::db::migrate, before the service's own migrations); idempotent, so it runs on
-- every start. Change the shape here, with IF NOT EXISTS / ADD COLUMN IF NOT EXISTS.
CREATE TABLE IF NOT EXISTS outbox (
    id            BIGSERIAL PRIMARY KEY,
    event_id      UUID NOT NULL UNIQUE,
    topic         TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    payload       JSONB NOT NULL,
    headers       JSONB NOT NULL DEFAULT '{}',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at       TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;
