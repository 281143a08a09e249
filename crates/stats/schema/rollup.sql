-- The statistics rollup (crates/stats): one row per calendar month (in STATS_TIMEZONE) of a
-- scope, status and method, and the ids already counted so a redelivered event changes
-- nothing. A five-year report of the busiest scope reads at most 60 months of rows; the key
-- carries the figures, so reports are answered from the index alone. Owned by the stats
-- crate and applied to every schema that keeps statistics; idempotent, runs on every start.
CREATE TABLE IF NOT EXISTS stats_monthly (
    scope    TEXT NOT NULL CHECK (scope IN ('all', 'card', 'to_card', 'merchant', 'api_key')),
    scope_id UUID NOT NULL,
    month    DATE NOT NULL CHECK (extract(day FROM month) = 1),
    status   TEXT NOT NULL CHECK (status IN ('succeeded', 'failed')),
    method   TEXT NOT NULL,
    count    BIGINT NOT NULL CHECK (count >= 0),
    amount   BIGINT NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (scope, scope_id, month, status, method) INCLUDE (count, amount)
);
CREATE TABLE IF NOT EXISTS stats_counted (id UUID PRIMARY KEY);
