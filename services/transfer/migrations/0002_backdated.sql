-- Movements imported with a past time (demo data, migrations from another system) keep it:
-- the ledger posting gets the same time. Only `ledger.backdate` callers can create them.
ALTER TABLE transfers ADD COLUMN backdated BOOLEAN NOT NULL DEFAULT false;
