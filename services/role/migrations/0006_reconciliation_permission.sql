-- Settlement reconciliation of the payment providers' reports: run a day, list and resolve
-- exceptions. The admin role gets it.

INSERT INTO permissions (name, description) VALUES
    ('reconciliation.manage', 'Run settlement reconciliation and resolve its exceptions')
ON CONFLICT (name) DO NOTHING;

INSERT INTO role_permissions (role_id, permission)
VALUES ('00000000-0000-7000-8000-000000000001', 'reconciliation.manage')
ON CONFLICT DO NOTHING;
