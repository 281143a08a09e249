-- CVV checks for merchant payments: repeated mismatches lock the card's CVV checks for a
-- while (a brute force over 1000 CVVs must not be possible through a merchant key).
ALTER TABLE cards ADD COLUMN cvv_failed_attempts INTEGER NOT NULL DEFAULT 0
    CHECK (cvv_failed_attempts >= 0);
ALTER TABLE cards ADD COLUMN cvv_locked_until TIMESTAMPTZ;
