-- Webhooks: a merchant's endpoints and their signing secrets, the event objects the platform
-- sends them, one delivery per event and endpoint, and every attempt of a delivery.

CREATE TABLE webhook_endpoints (
    id                   UUID PRIMARY KEY,
    merchant_id          UUID NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    url                  TEXT NOT NULL CHECK (length(url) <= 2048),
    description          TEXT NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    -- the event types it receives ('*' = all)
    event_types          TEXT[] NOT NULL CHECK (cardinality(event_types) > 0),
    enabled              BOOLEAN NOT NULL DEFAULT true,
    disabled_reason      TEXT,
    -- failed attempts since the last success; a long run disables the endpoint
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    failing_since        TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT disabled_has_reason CHECK (enabled = (disabled_reason IS NULL))
);
CREATE INDEX webhook_endpoints_merchant_idx ON webhook_endpoints (merchant_id, created_at);

-- Signing secrets, sealed (AES-256-GCM under WEBHOOK_SECRETS_KEY, the secret's id as
-- associated data): the database alone cannot sign. A rotation gives the old secret an
-- expiry; until then deliveries carry a signature under each.
CREATE TABLE webhook_secrets (
    id          UUID PRIMARY KEY,
    endpoint_id UUID NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    sealed      BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ
);
CREATE INDEX webhook_secrets_endpoint_idx ON webhook_secrets (endpoint_id, created_at DESC);

-- The event objects merchants receive and list: made once per platform event (its id is
-- the platform event's id), kept 30 days.
CREATE TABLE webhook_events (
    id           UUID PRIMARY KEY,
    merchant_id  UUID NOT NULL,
    type         TEXT NOT NULL,
    api_version  TEXT NOT NULL,
    -- deliveries of one endpoint with the same key go out in order (a payment's events)
    ordering_key TEXT NOT NULL,
    data         JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_events_merchant_idx ON webhook_events (merchant_id, created_at DESC, id DESC);
CREATE INDEX webhook_events_created_idx ON webhook_events (created_at);

CREATE TABLE webhook_deliveries (
    id              UUID PRIMARY KEY,
    -- the order deliveries were made in: within an endpoint and ordering key, a delivery
    -- waits until every earlier one is done
    seq             BIGSERIAL UNIQUE,
    event_id        UUID NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    endpoint_id     UUID NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    ordering_key    TEXT NOT NULL,
    -- automatic (made from the event) or a re-send the merchant asked for
    manual          BOOLEAN NOT NULL DEFAULT false,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at    TIMESTAMPTZ,
    CONSTRAINT completed_has_time CHECK ((status = 'pending') = (completed_at IS NULL))
);
-- one automatic delivery per event and endpoint, whichever replica made it
CREATE UNIQUE INDEX webhook_deliveries_once ON webhook_deliveries (event_id, endpoint_id) WHERE NOT manual;
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (endpoint_id, ordering_key, seq)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id, created_at);

CREATE TABLE webhook_attempts (
    id           BIGSERIAL PRIMARY KEY,
    delivery_id  UUID NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- the receiver's HTTP status, none when it could not be reached
    status_code  INTEGER,
    latency_ms   INTEGER NOT NULL,
    error        TEXT,
    succeeded    BOOLEAN NOT NULL
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);
