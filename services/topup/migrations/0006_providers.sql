-- Movements backed by a payment provider (top-ups are charges, withdrawals payouts): which
-- provider took the operation, its reference and its word, and when the status poller asks
-- next. The same columns in every movement schema (transfers leave them empty), so one
-- movement row type serves all three.

ALTER TABLE movements
    ADD COLUMN provider TEXT,
    ADD COLUMN provider_reference TEXT,
    ADD COLUMN provider_status TEXT
        CHECK (provider_status IN ('pending', 'succeeded', 'failed')),
    ADD COLUMN provider_failure_code TEXT,
    ADD COLUMN next_check_at TIMESTAMPTZ,
    ADD COLUMN checks INTEGER NOT NULL DEFAULT 0;

-- The poller's queue: pending movements a provider holds, by when they are due.
CREATE INDEX movements_provider_due ON movements (next_check_at)
    WHERE status = 'pending' AND provider IS NOT NULL;
