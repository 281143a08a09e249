-- Merchant settlement accounts: one per merchant and currency, opened when the merchant is
-- approved (merchant.status_changed → active). Payments credit them; refunds debit them.
ALTER TABLE accounts ADD COLUMN merchant_id UUID;
ALTER TABLE accounts ADD CONSTRAINT merchant_account_has_merchant
    CHECK ((kind = 'merchant') = (merchant_id IS NOT NULL));
ALTER TABLE accounts ADD CONSTRAINT accounts_merchant_currency_key UNIQUE (merchant_id, currency);
