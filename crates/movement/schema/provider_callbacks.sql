-- Provider callbacks (crates/movement/src/provider/callbacks.rs): every callback a provider
-- sent, verified, stored raw and applied once; a second delivery of the same event id only
-- counts. Owned by the movement crate and applied to the topup and withdraw schemas before
-- their migrations, on every start (idempotent).
CREATE TABLE IF NOT EXISTS provider_callbacks (
    provider    TEXT        NOT NULL,
    event_id    TEXT        NOT NULL,
    reference   TEXT        NOT NULL,
    body        TEXT        NOT NULL,
    -- received, then applied or ignored (see the code); a failure while applying leaves
    -- `received`, and the status poller settles the operation instead.
    outcome     TEXT        NOT NULL DEFAULT 'received',
    deliveries  INTEGER     NOT NULL DEFAULT 1,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);
