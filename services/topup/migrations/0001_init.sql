-- The topup service's schema: topups with their idempotency keys, and the outbox /
-- processed-events tables every service has. Money itself lives in the ledger (saldo); a
-- topup row records the request and its outcome, and the topup id is the ledger posting id.

CREATE TABLE topups (
    id                    UUID PRIMARY KEY,
    -- who asked (a user id or service:<name>): idempotency keys are scoped to the caller
    requested_by          TEXT NOT NULL,
    idempotency_key       TEXT NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    -- SHA-256 of the request fields: the same key with another request is refused
    fingerprint           BYTEA NOT NULL,
    user_id               UUID NOT NULL,
    card_id               UUID NOT NULL,
    masked_card_number    TEXT NOT NULL,
    method                TEXT,
    to_card_id            UUID,
    to_user_id            UUID,
    masked_to_card_number TEXT,
    amount                BIGINT NOT NULL CHECK (amount > 0),
    currency              TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status                TEXT NOT NULL DEFAULT 'pending'
                          CHECK (status IN ('pending', 'succeeded', 'failed')),
    failure_reason        TEXT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at          TIMESTAMPTZ,
    UNIQUE (requested_by, idempotency_key),
    CONSTRAINT completed_has_time CHECK ((status = 'pending') = (completed_at IS NULL)),
    CONSTRAINT failed_has_reason CHECK ((status = 'failed') = (failure_reason IS NOT NULL)),
    CONSTRAINT distinct_cards CHECK (to_card_id IS NULL OR to_card_id <> card_id)
);
CREATE INDEX topups_card_idx ON topups (card_id, created_at DESC);
CREATE INDEX topups_to_card_idx ON topups (to_card_id, created_at DESC) WHERE to_card_id IS NOT NULL;
CREATE INDEX topups_user_idx ON topups (user_id, created_at DESC);
CREATE INDEX topups_to_user_idx ON topups (to_user_id, created_at DESC) WHERE to_user_id IS NOT NULL;
CREATE INDEX topups_created_idx ON topups (created_at DESC);
CREATE INDEX topups_pending_idx ON topups (created_at) WHERE status = 'pending';

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
CREATE TRIGGER topups_immutable BEFORE UPDATE OR DELETE ON topups
    FOR EACH ROW EXECUTE FUNCTION refuse_completed_change();

-- The outbox and processed_events tables are the events crate's (crates/events/schema),
-- applied before these migrations; this migration created them until they moved there.
