-- Operator adjustments of a card's balance (explicit, with a reason, audited): their own
-- permission, never implied by anything else. The admin role gets it.

INSERT INTO permissions (name, description) VALUES
    ('saldo.adjust', 'Correct a card balance with an audited adjustment (credit or debit, with a reason)')
ON CONFLICT (name) DO NOTHING;

INSERT INTO role_permissions (role_id, permission)
VALUES ('00000000-0000-7000-8000-000000000001', 'saldo.adjust')
ON CONFLICT DO NOTHING;
