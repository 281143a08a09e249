-- Permissions of the card, ledger and money-movement services. Customers hold none of them:
-- they act on their own cards by ownership. The admin role gets all of them.

INSERT INTO permissions (name, description) VALUES
    ('cards.read', 'Read any card'),
    ('cards.write', 'Create and update cards for any user'),
    ('cards.delete', 'Trash, restore and permanently delete any card'),
    ('ledger.read', 'Read any ledger account, statement and posting'),
    ('ledger.reconcile', 'Run the ledger reconciliation'),
    ('topups.read', 'Read any top-up'),
    ('topups.write', 'Top up any card'),
    ('withdraws.read', 'Read any withdraw'),
    ('withdraws.write', 'Withdraw from any card'),
    ('transfers.read', 'Read any transfer'),
    ('transfers.write', 'Transfer from any card')
ON CONFLICT (name) DO NOTHING;

INSERT INTO role_permissions (role_id, permission)
SELECT '00000000-0000-7000-8000-000000000001', name FROM permissions
ON CONFLICT DO NOTHING;
