-- Two things the ledger learned for merchants (issue 15):
--
-- 1. Holds. An authorization reserves money on a card without moving it: `accounts.held` is
--    the sum of the account's live holds, and the database itself keeps the available
--    balance (balance - held) from going below zero, so a hold and a concurrent transfer can
--    never both spend the same money. A hold ends captured (one posting under the hold's id,
--    for at most its amount; the rest is released in the same transaction) or released
--    (voided, cancelled, expired).
-- 2. A fee leg. A posting may carry a third leg into (or out of) a fee account, booked in the
--    same statement as the other two: `fee_amount > 0` takes the fee out of what the credited
--    account receives (a payment: the card pays the amount, the merchant gets amount - fee,
--    revenue gets the fee); `fee_amount < 0` pays part of what the debited account pays (a
--    refund that returns its fee). A leg that comes to zero writes no journal line.

ALTER TABLE accounts
    ADD COLUMN held BIGINT NOT NULL DEFAULT 0,
    ADD CONSTRAINT held_not_negative CHECK (held >= 0),
    ADD CONSTRAINT available_not_negative CHECK (kind = 'system' OR balance - held >= 0);

ALTER TABLE postings
    ADD COLUMN fee_ref           TEXT,
    ADD COLUMN fee_account_id    UUID REFERENCES accounts (id),
    ADD COLUMN fee_amount        BIGINT,
    ADD COLUMN fee_balance_after BIGINT,
    ADD CONSTRAINT fee_leg_complete
        CHECK ((fee_account_id IS NULL) = (fee_amount IS NULL)
               AND (fee_ref IS NULL) = (fee_amount IS NULL)),
    ADD CONSTRAINT fee_within_amount
        CHECK (fee_amount IS NULL OR (fee_amount <> 0 AND abs(fee_amount) <= amount)),
    ADD CONSTRAINT fee_account_distinct
        CHECK (fee_account_id IS NULL
               OR (fee_account_id <> debit_account_id AND fee_account_id <> credit_account_id));

CREATE TABLE holds (
    -- chosen by the caller (the payment id): the idempotency key, and the id of the posting
    -- that captures it
    id                UUID PRIMARY KEY,
    status            TEXT NOT NULL CHECK (status IN ('held', 'rejected', 'captured', 'released')),
    rejection_reason  TEXT,
    debit_ref         TEXT NOT NULL,
    credit_ref        TEXT NOT NULL,
    -- the account whose money is held, and the one a capture credits
    debit_account_id  UUID NOT NULL REFERENCES accounts (id),
    credit_account_id UUID NOT NULL REFERENCES accounts (id),
    amount            BIGINT NOT NULL CHECK (amount > 0),
    currency          TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    description       TEXT NOT NULL DEFAULT '',
    captured_amount   BIGINT,
    -- voided, cancelled, expired (the caller's word)
    release_reason    TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    settled_at        TIMESTAMPTZ,
    CONSTRAINT hold_rejection_has_reason CHECK ((status = 'rejected') = (rejection_reason IS NOT NULL)),
    CONSTRAINT hold_capture_has_amount
        CHECK ((status = 'captured') = (captured_amount IS NOT NULL)
               AND (captured_amount IS NULL OR (captured_amount > 0 AND captured_amount <= amount))),
    CONSTRAINT hold_release_has_reason CHECK ((status = 'released') = (release_reason IS NOT NULL)),
    CONSTRAINT hold_settled_has_time CHECK ((status IN ('captured', 'released')) = (settled_at IS NOT NULL)),
    CONSTRAINT hold_distinct_accounts CHECK (debit_account_id <> credit_account_id)
);
CREATE INDEX holds_debit_live_idx ON holds (debit_account_id, created_at DESC) WHERE status = 'held';
CREATE INDEX holds_credit_live_idx ON holds (credit_account_id, created_at DESC) WHERE status = 'held';

-- A hold changes once (held → captured or released) and is never deleted.
CREATE FUNCTION refuse_settled_hold_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.status <> 'held' THEN
        RAISE EXCEPTION 'hold % is %: it may not change', OLD.id, OLD.status
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER holds_settle_once BEFORE UPDATE OR DELETE ON holds
    FOR EACH ROW EXECUTE FUNCTION refuse_settled_hold_change();
