-- Balance statistics, kept from the ledger's own balance.changed events: per day, the sum of
-- the changes of all card accounts ('cards'), of one card ('card'), of all merchant accounts
-- ('merchants') and of one merchant ('merchant'). A balance at the end of a period is the sum
-- of the days before its end.
CREATE TABLE balance_daily (
    scope    TEXT NOT NULL CHECK (scope IN ('cards', 'card', 'merchants', 'merchant')),
    scope_id UUID NOT NULL,
    day      DATE NOT NULL,
    delta    BIGINT NOT NULL,
    postings BIGINT NOT NULL CHECK (postings >= 0),
    PRIMARY KEY (scope, scope_id, day)
);
-- Each account's change of a posting counts once.
CREATE TABLE balance_counted (
    posting_id UUID NOT NULL,
    account_id UUID NOT NULL,
    PRIMARY KEY (posting_id, account_id)
);
