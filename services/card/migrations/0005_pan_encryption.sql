-- Card data at rest, to an issuer's standard (see services/card/src/keys.rs):
-- * the number is stored only sealed (AES-256-GCM under a per-card data key, itself wrapped by
--   the service's key-encryption key), found by a keyed hash, shown masked by its last four;
-- * the CVV is not stored at all: it is derived from a key, the number and `cvv_period` (the
--   expiry, YYYYMM, the card was issued for), whenever it has to be checked.
-- Rows from before are sealed by the service at start (it holds the keys; SQL does not), which
-- clears `number` and `cvv_hash`.
ALTER TABLE cards ALTER COLUMN number DROP NOT NULL;
ALTER TABLE cards ALTER COLUMN cvv_hash DROP NOT NULL;
ALTER TABLE cards ADD COLUMN pan_ciphertext BYTEA;
ALTER TABLE cards ADD COLUMN pan_key BYTEA;
ALTER TABLE cards ADD COLUMN pan_hash BYTEA;
ALTER TABLE cards ADD CONSTRAINT cards_pan_hash_key UNIQUE (pan_hash);
ALTER TABLE cards ADD COLUMN pan_last4 TEXT CHECK (pan_last4 ~ '^[0-9]{4}$');
ALTER TABLE cards ADD COLUMN cvv_period INTEGER;
UPDATE cards SET cvv_period = expiry_year * 100 + expiry_month WHERE cvv_period IS NULL;
ALTER TABLE cards ALTER COLUMN cvv_period SET NOT NULL;
-- Every row is either still to be sealed (number) or sealed (ciphertext, key, hash).
ALTER TABLE cards ADD CONSTRAINT cards_number_sealed CHECK (
    (number IS NOT NULL) OR (pan_ciphertext IS NOT NULL AND pan_key IS NOT NULL
                              AND pan_hash IS NOT NULL AND pan_last4 IS NOT NULL));
