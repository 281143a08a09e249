-- Balance reports sum a scope's days before each period end: answered from the index alone
-- (an index-only scan), instead of one heap page per row of a rollup written in event order.
CREATE INDEX balance_daily_reports ON balance_daily (scope, scope_id, day) INCLUDE (delta, postings);
