-- Pricing plans: what a merchant pays per payment, per currency — a percentage (in basis
-- points: 290 = 2.9 %) plus a fixed fee in minor units, and whether a refund returns the
-- fee in proportion to the amount refunded. No plan = no fee. Set by an admin
-- (`merchants.review`); the transaction service reads the plan of the merchant's currency
-- with every API-key authentication and books the fee as the payment's third leg.
CREATE TABLE pricing_plans (
    merchant_id  UUID NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    currency     TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    percent_bps  INTEGER NOT NULL CHECK (percent_bps BETWEEN 0 AND 10000),
    fixed_fee    BIGINT NOT NULL CHECK (fixed_fee >= 0),
    refund_fee   TEXT NOT NULL CHECK (refund_fee IN ('proportional', 'none')),
    updated_by   TEXT NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, currency)
);
