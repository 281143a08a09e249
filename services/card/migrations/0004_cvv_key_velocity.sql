-- CVV checks per merchant API key, across cards: one key trying a CVV on many cards is
-- stopped like one key trying many CVVs on one card. `reserved` counts mismatches and
-- checks in flight in the current window (a check reserves before it compares, a match
-- gives its reservation back), so concurrent guesses cannot slip past the limit.
CREATE TABLE cvv_key_attempts (
    api_key_id UUID PRIMARY KEY,
    window_started_at TIMESTAMPTZ NOT NULL,
    reserved INTEGER NOT NULL CHECK (reserved >= 0)
);
