-- The transaction service's schema: merchant payments and their refunds, with their
-- idempotency keys, plus the outbox / processed-events tables every service has. Money lives
-- in the ledger: a payment's id is its posting id (card → merchant), a refund's id is the
-- reversing posting's id (merchant → card).

CREATE TABLE payments (
    id                 UUID PRIMARY KEY,
    -- idempotency scope: 'merchant:<id>' (keys survive API-key rotation)
    requested_by       TEXT NOT NULL,
    idempotency_key    TEXT NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    -- SHA-256 of the request fields (never the CVV)
    fingerprint        BYTEA NOT NULL,
    merchant_id        UUID NOT NULL,
    merchant_name      TEXT NOT NULL,
    api_key_id         UUID NOT NULL,
    card_id            UUID NOT NULL,
    user_id            UUID NOT NULL,
    masked_card_number TEXT NOT NULL,
    amount             BIGINT NOT NULL CHECK (amount > 0),
    currency           TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    method             TEXT NOT NULL,
    description        TEXT NOT NULL DEFAULT '',
    status             TEXT NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'succeeded', 'failed')),
    failure_reason     TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at       TIMESTAMPTZ,
    -- imported with a past time (`ledger.backdate`): the ledger posting keeps that time
    backdated          BOOLEAN NOT NULL DEFAULT false,
    UNIQUE (requested_by, idempotency_key),
    CONSTRAINT completed_has_time CHECK ((status = 'pending') = (completed_at IS NULL)),
    CONSTRAINT failed_has_reason CHECK ((status = 'failed') = (failure_reason IS NOT NULL))
);
CREATE INDEX payments_card_idx ON payments (card_id, created_at DESC);
CREATE INDEX payments_user_idx ON payments (user_id, created_at DESC);
CREATE INDEX payments_merchant_idx ON payments (merchant_id, created_at DESC);
CREATE INDEX payments_api_key_idx ON payments (api_key_id, created_at DESC);
CREATE INDEX payments_created_idx ON payments (created_at DESC);
CREATE INDEX payments_pending_idx ON payments (created_at) WHERE status = 'pending';

CREATE TABLE refunds (
    id                 UUID PRIMARY KEY,
    payment_id         UUID NOT NULL REFERENCES payments (id),
    -- 'merchant:<id>' or the admin's user id
    requested_by       TEXT NOT NULL,
    idempotency_key    TEXT NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    fingerprint        BYTEA NOT NULL,
    merchant_id        UUID NOT NULL,
    card_id            UUID NOT NULL,
    user_id            UUID NOT NULL,
    masked_card_number TEXT NOT NULL,
    amount             BIGINT NOT NULL CHECK (amount > 0),
    currency           TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    reason             TEXT NOT NULL DEFAULT '',
    status             TEXT NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'succeeded', 'failed')),
    failure_reason     TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at       TIMESTAMPTZ,
    -- imported with a past time (`ledger.backdate`): the ledger posting keeps that time
    backdated          BOOLEAN NOT NULL DEFAULT false,
    UNIQUE (requested_by, idempotency_key),
    CONSTRAINT completed_has_time CHECK ((status = 'pending') = (completed_at IS NULL)),
    CONSTRAINT failed_has_reason CHECK ((status = 'failed') = (failure_reason IS NOT NULL))
);
CREATE INDEX refunds_payment_idx ON refunds (payment_id, created_at DESC);
CREATE INDEX refunds_merchant_idx ON refunds (merchant_id, created_at DESC);
CREATE INDEX refunds_pending_idx ON refunds (created_at) WHERE status = 'pending';

-- Financial records are immutable once completed: no update, no delete. A pending row may
-- be completed once, or removed when the ledger never saw it (account not open yet).
CREATE FUNCTION refuse_completed_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'pending' THEN
        RAISE EXCEPTION 'completed % % is immutable', TG_TABLE_NAME, OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER payments_immutable BEFORE UPDATE OR DELETE ON payments
    FOR EACH ROW EXECUTE FUNCTION refuse_completed_change();
CREATE TRIGGER refunds_immutable BEFORE UPDATE OR DELETE ON refunds
    FOR EACH ROW EXECUTE FUNCTION refuse_completed_change();

-- The outbox and processed_events tables are the events crate's (crates/events/schema),
-- applied before these migrations; this migration created them until they moved there.
