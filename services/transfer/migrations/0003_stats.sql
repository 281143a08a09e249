-- Statistics rollup fed by this service's own completion events (see crates/stats).
CREATE TABLE stats_daily (
    scope    TEXT NOT NULL CHECK (scope IN ('all', 'card', 'to_card', 'merchant', 'api_key')),
    scope_id UUID NOT NULL,
    day      DATE NOT NULL,
    status   TEXT NOT NULL CHECK (status IN ('succeeded', 'failed')),
    method   TEXT NOT NULL,
    count    BIGINT NOT NULL CHECK (count >= 0),
    amount   BIGINT NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (scope, scope_id, day, status, method)
);
-- Movements already counted: redelivered events change nothing.
CREATE TABLE stats_counted (id UUID PRIMARY KEY);
