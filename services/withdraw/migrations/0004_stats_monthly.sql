-- Statistics are monthly and yearly reports, so the rollup keeps one row per calendar month
-- (in STATS_TIMEZONE) of a scope, status and method: a five-year report of the busiest scope
-- reads at most 60 months of rows, however many movements there were. The key carries the
-- figures, so reports are answered from the index alone.
CREATE TABLE stats_monthly (
    scope    TEXT NOT NULL CHECK (scope IN ('all', 'card', 'to_card', 'merchant', 'api_key')),
    scope_id UUID NOT NULL,
    month    DATE NOT NULL CHECK (extract(day FROM month) = 1),
    status   TEXT NOT NULL CHECK (status IN ('succeeded', 'failed')),
    method   TEXT NOT NULL,
    count    BIGINT NOT NULL CHECK (count >= 0),
    amount   BIGINT NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (scope, scope_id, month, status, method) INCLUDE (count, amount)
);
INSERT INTO stats_monthly (scope, scope_id, month, status, method, count, amount)
SELECT scope, scope_id, date_trunc('month', day)::date, status, method, sum(count), sum(amount)
FROM stats_daily
GROUP BY 1, 2, 3, 4, 5;
DROP TABLE stats_daily;
