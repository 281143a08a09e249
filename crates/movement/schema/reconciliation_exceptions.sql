-- Settlement reconciliation (crates/movement/src/provider/reconcile.rs): every mismatch
-- between a provider's daily settlement report and what this service booked, open until an
-- operator resolves it with a note. One row per (day, provider, kind of mismatch, provider
-- reference): re-running a day adds nothing. Owned by the movement crate, applied like
-- provider_callbacks.sql.

CREATE TABLE IF NOT EXISTS reconciliation_exceptions (
    id                 UUID        PRIMARY KEY,
    settlement_date    DATE        NOT NULL,
    provider           TEXT        NOT NULL,
    kind               TEXT        NOT NULL,
    reference          TEXT,
    provider_reference TEXT        NOT NULL,
    expected_amount    BIGINT,
    expected_currency  TEXT,
    reported_amount    BIGINT,
    reported_currency  TEXT,
    state              TEXT        NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'resolved')),
    note               TEXT,
    resolved_by        TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at        TIMESTAMPTZ,
    UNIQUE (settlement_date, provider, kind, provider_reference)
);

-- The kinds, by name, so a new kind replaces the check (tables created before it had fewer).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'reconciliation_exceptions'::regclass
                     AND conname = 'reconciliation_exceptions_kinds_v2') THEN
        ALTER TABLE reconciliation_exceptions
            DROP CONSTRAINT IF EXISTS reconciliation_exceptions_kind_check;
        ALTER TABLE reconciliation_exceptions ADD CONSTRAINT reconciliation_exceptions_kinds_v2
            CHECK (kind IN ('missing_on_our_side', 'missing_at_provider', 'amount_mismatch',
                            'currency_mismatch', 'duplicate', 'ledger_mismatch'));
    END IF;
END $$;

CREATE INDEX IF NOT EXISTS reconciliation_exceptions_open ON reconciliation_exceptions (created_at)
    WHERE state = 'open';
