-- The email service's schema: the delivery log (one row per event that causes an email,
-- keyed by the event id so each event sends at most one email) and the processed-events
-- table of the consumer.

CREATE TABLE deliveries (
    event_id    UUID PRIMARY KEY,
    event_type  TEXT NOT NULL,
    template    TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    subject     TEXT NOT NULL,
    -- sending: claimed, SMTP in progress (left by a crash mid-send: never resent);
    -- sent; failed: the last attempt failed and may be retried; unknown: a crash left it
    -- 'sending' and the redelivered event found it so (maybe sent, maybe not)
    status      TEXT NOT NULL CHECK (status IN ('sending', 'sent', 'failed', 'unknown')),
    attempts    INTEGER NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    last_error  TEXT,
    -- the W3C trace id of the request that caused the event
    trace_id    TEXT,
    message_id  TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at     TIMESTAMPTZ
);
CREATE INDEX deliveries_recipient_idx ON deliveries (recipient, created_at DESC);
CREATE INDEX deliveries_status_idx ON deliveries (status, updated_at);

-- The outbox and processed_events tables are the events crate's (crates/events/schema),
-- applied before these migrations; this migration created them until they moved there.
