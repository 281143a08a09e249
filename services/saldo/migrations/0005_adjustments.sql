-- Operator adjustments: an explicit correction of a card's balance by an operator
-- (`saldo.adjust`), never a top-up. Each one is a posting of kind `adjustment` between the
-- card and the `adjustments` system account, and a row here: the audit trail (who, why, when,
-- what the ledger did). Rows are never updated except to record the posting's outcome, and
-- never deleted.

ALTER TABLE postings DROP CONSTRAINT IF EXISTS postings_kind_check;
ALTER TABLE postings ADD CONSTRAINT postings_kind_check
    CHECK (kind IN ('topup', 'withdraw', 'transfer', 'payment', 'refund', 'adjustment'));

CREATE TABLE adjustments (
    -- also the posting's id
    id               UUID PRIMARY KEY,
    card_id          UUID NOT NULL,
    -- credit: money onto the card; debit: money off it
    direction        TEXT NOT NULL CHECK (direction IN ('credit', 'debit')),
    amount           BIGINT NOT NULL CHECK (amount > 0),
    currency         TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    reason           TEXT NOT NULL CHECK (length(btrim(reason)) >= 10),
    -- the operator (user id), and their idempotency key
    requested_by     TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    -- requested until the ledger answered; then posted or rejected
    status           TEXT NOT NULL DEFAULT 'requested'
                     CHECK (status IN ('requested', 'posted', 'rejected')),
    rejection_reason TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (requested_by, idempotency_key)
);
CREATE INDEX adjustments_card_idx ON adjustments (card_id, created_at DESC);
CREATE INDEX adjustments_created_idx ON adjustments (created_at DESC);
