-- The saldo service's schema: the double-entry ledger. Accounts hold a cached balance that
-- only postings change; every posting writes two immutable journal lines that sum to zero.

CREATE TABLE accounts (
    id            UUID PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('card', 'system', 'merchant')),
    -- card accounts: the card service's card; no cross-schema foreign key
    card_id       UUID UNIQUE,
    owner_user_id UUID,
    -- system accounts: purpose and currency, e.g. 'topup:bca:IDR'
    code          TEXT UNIQUE,
    currency      TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    balance       BIGINT NOT NULL DEFAULT 0,
    is_open       BOOLEAN NOT NULL DEFAULT true,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT card_account_has_card CHECK ((kind = 'card') = (card_id IS NOT NULL)),
    CONSTRAINT system_account_has_code CHECK ((kind = 'system') = (code IS NOT NULL)),
    -- the database itself refuses an overdraft of a customer's or merchant's account;
    -- system accounts mirror money outside the platform and may go below zero
    CONSTRAINT balance_not_negative CHECK (kind = 'system' OR balance >= 0)
);
CREATE INDEX accounts_owner_idx ON accounts (owner_user_id) WHERE owner_user_id IS NOT NULL;

CREATE TABLE postings (
    -- chosen by the caller (the topup/withdraw/transfer/payment id): the idempotency key
    id                   UUID PRIMARY KEY,
    kind                 TEXT NOT NULL CHECK (kind IN ('topup', 'withdraw', 'transfer', 'payment', 'refund')),
    status               TEXT NOT NULL CHECK (status IN ('posted', 'rejected')),
    rejection_reason     TEXT,
    -- the accounts as the caller named them, to tell a replay from a reuse of the id
    debit_ref            TEXT NOT NULL,
    credit_ref           TEXT NOT NULL,
    debit_account_id     UUID NOT NULL REFERENCES accounts (id),
    credit_account_id    UUID NOT NULL REFERENCES accounts (id),
    amount               BIGINT NOT NULL CHECK (amount > 0),
    currency             TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    description          TEXT NOT NULL DEFAULT '',
    debit_balance_after  BIGINT,
    credit_balance_after BIGINT,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT distinct_accounts CHECK (debit_account_id <> credit_account_id),
    CONSTRAINT rejection_has_reason CHECK ((status = 'rejected') = (rejection_reason IS NOT NULL))
);
CREATE INDEX postings_created_idx ON postings (created_at DESC);

CREATE TABLE journal_lines (
    id            BIGSERIAL PRIMARY KEY,
    posting_id    UUID NOT NULL REFERENCES postings (id),
    account_id    UUID NOT NULL REFERENCES accounts (id),
    -- signed: positive credits the account, negative debits it
    amount        BIGINT NOT NULL CHECK (amount <> 0),
    balance_after BIGINT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (posting_id, account_id)
);
CREATE INDEX journal_lines_account_idx ON journal_lines (account_id, id DESC);
CREATE INDEX journal_lines_account_time_idx ON journal_lines (account_id, created_at);

-- The books are append-only: no update or delete of a posting or a journal line, ever.
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER journal_lines_append_only BEFORE UPDATE OR DELETE ON journal_lines
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- The outbox and processed_events tables are the events crate's (crates/events/schema),
-- applied before these migrations; this migration created them until they moved there.
