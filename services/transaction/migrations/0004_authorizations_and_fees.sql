-- Two-phase payments and fees (issue 15).
--
-- A payment with capture_method 'manual' is an authorization: its posting is a ledger hold
-- under the payment id (status succeeded = the hold was placed), then
--   authorization_state NULL        authorized: the money is held on the card
--                       'capturing' a capture claimed it (capture_amount, capture_key);
--                                   the ledger call may be in flight, recovery finishes it
--                       'captured'  the hold became a posting of capture_amount
--                       'releasing' a void, cancel or expiry claimed it (release_reason)
--                       'released'  the hold was released
-- Every transition is one conditional UPDATE from the state before it, so of concurrent
-- captures, voids, cancels and the expiry job exactly one wins.
--
-- Fees: the merchant's pricing plan at the time of the payment (percent in basis points,
-- fixed minor units, what refunds do with the fee) is kept with it; fee_amount is the fee
-- booked as the third leg of the payment's posting (at creation for automatic payments, at
-- capture for authorizations). A refund keeps the share of the fee it returned.

ALTER TABLE payments
    ADD COLUMN capture_method      TEXT NOT NULL DEFAULT 'automatic'
                                   CHECK (capture_method IN ('automatic', 'manual')),
    ADD COLUMN authorization_state TEXT
                                   CHECK (authorization_state IN
                                          ('capturing', 'captured', 'releasing', 'released')),
    ADD COLUMN release_reason      TEXT CHECK (release_reason IN ('voided', 'cancelled', 'expired')),
    ADD COLUMN expires_at          TIMESTAMPTZ,
    ADD COLUMN capture_amount      BIGINT,
    ADD COLUMN capture_key         TEXT,
    -- when a capture or release claimed it (recovery finishes claims older than its grace)
    ADD COLUMN claimed_at          TIMESTAMPTZ,
    ADD COLUMN settled_at          TIMESTAMPTZ,
    ADD COLUMN fee_percent_bps     INTEGER NOT NULL DEFAULT 0 CHECK (fee_percent_bps BETWEEN 0 AND 10000),
    ADD COLUMN fee_fixed           BIGINT NOT NULL DEFAULT 0 CHECK (fee_fixed >= 0),
    ADD COLUMN fee_refund          TEXT NOT NULL DEFAULT 'proportional'
                                   CHECK (fee_refund IN ('proportional', 'none')),
    ADD COLUMN fee_amount          BIGINT NOT NULL DEFAULT 0 CHECK (fee_amount >= 0),
    ADD CONSTRAINT manual_has_expiry CHECK ((capture_method = 'manual') = (expires_at IS NOT NULL)),
    ADD CONSTRAINT authorization_is_manual
        CHECK (authorization_state IS NULL OR (capture_method = 'manual' AND status = 'succeeded')),
    ADD CONSTRAINT capture_within_amount
        CHECK ((capture_amount IS NULL) = (authorization_state IS DISTINCT FROM 'capturing'
                                           AND authorization_state IS DISTINCT FROM 'captured')
               AND (capture_amount IS NULL OR (capture_amount > 0 AND capture_amount <= amount))),
    ADD CONSTRAINT release_has_reason
        CHECK ((release_reason IS NULL) = (authorization_state IS DISTINCT FROM 'releasing'
                                           AND authorization_state IS DISTINCT FROM 'released')),
    ADD CONSTRAINT fee_below_amount CHECK (fee_amount < amount);

-- Authorizations the expiry job and recovery look at.
CREATE INDEX payments_authorized_idx ON payments (expires_at)
    WHERE capture_method = 'manual' AND status = 'succeeded'
      AND authorization_state IS DISTINCT FROM 'captured'
      AND authorization_state IS DISTINCT FROM 'released';

ALTER TABLE refunds
    ADD COLUMN fee_returned BIGINT NOT NULL DEFAULT 0 CHECK (fee_returned >= 0 AND fee_returned <= amount);

-- A completed payment stays immutable, except an authorization's own columns while it is
-- not settled: authorized → capturing → captured, authorized → releasing → released (and
-- back from capturing to authorized when the ledger refused the capture).
CREATE OR REPLACE FUNCTION refuse_completed_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    settling CONSTANT text[] := ARRAY['authorization_state', 'release_reason', 'capture_amount',
                                      'capture_key', 'claimed_at', 'settled_at', 'fee_amount'];
BEGIN
    IF OLD.status = 'pending' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'payments'
       AND OLD.capture_method = 'manual' AND OLD.status = 'succeeded'
       AND OLD.authorization_state IS DISTINCT FROM 'captured'
       AND OLD.authorization_state IS DISTINCT FROM 'released'
       AND to_jsonb(NEW) - settling = to_jsonb(OLD) - settling THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'completed % % is immutable', TG_TABLE_NAME, OLD.id
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
