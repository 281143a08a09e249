-- One name for the ledger: its permissions are `saldo.*`, like its service, crate, proto
-- package and schema (they were `ledger.read` and `ledger.reconcile`). Grants move with them.

INSERT INTO permissions (name, description) VALUES
    ('saldo.read', 'Read any saldo (ledger) account, statement and posting'),
    ('saldo.reconcile', 'Run the saldo (ledger) reconciliation')
ON CONFLICT (name) DO NOTHING;

INSERT INTO role_permissions (role_id, permission)
SELECT role_id, 'saldo.' || substr(permission, length('ledger.') + 1)
FROM role_permissions
WHERE permission IN ('ledger.read', 'ledger.reconcile')
ON CONFLICT DO NOTHING;

DELETE FROM permissions WHERE name IN ('ledger.read', 'ledger.reconcile');
