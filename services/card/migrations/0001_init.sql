-- The card service's schema: cards (numbers generated and Luhn-valid; the CVV only as a keyed
-- hash), and the outbox / processed-events tables every service has.

CREATE TABLE cards (
    id           UUID PRIMARY KEY,
    -- the user service's user; no cross-schema foreign key
    user_id      UUID NOT NULL,
    number       TEXT NOT NULL UNIQUE CHECK (number ~ '^[0-9]{16}$'),
    brand        TEXT NOT NULL CHECK (brand IN ('visa', 'mastercard', 'discover', 'jcb', 'unionpay')),
    card_type    TEXT NOT NULL CHECK (card_type IN ('debit', 'credit')),
    currency     TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    expiry_month SMALLINT NOT NULL CHECK (expiry_month BETWEEN 1 AND 12),
    expiry_year  INTEGER NOT NULL CHECK (expiry_year BETWEEN 2000 AND 2200),
    cvv_hash     BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at   TIMESTAMPTZ
);
CREATE INDEX cards_user_idx ON cards (user_id, created_at DESC);
CREATE INDEX cards_created_idx ON cards (created_at DESC);

-- The outbox and processed_events tables are the events crate's (crates/events/schema),
-- applied before these migrations; this migration created them until they moved there.
