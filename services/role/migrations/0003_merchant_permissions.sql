-- Permissions of the merchant and transaction services. Merchant owners act on their own
-- merchants by ownership (no permission needed); reviewing applications and documents is
-- an admin's job. The admin role gets all of them.

INSERT INTO permissions (name, description) VALUES
    ('merchants.read', 'Read any merchant, its API keys and documents'),
    ('merchants.write', 'Create and update merchants and documents for any user'),
    ('merchants.review', 'Approve, reject, deactivate merchants; review documents'),
    ('merchants.delete', 'Trash, restore and permanently delete merchants and documents'),
    ('payments.read', 'Read any payment and refund'),
    ('payments.write', 'Refund any payment')
ON CONFLICT (name) DO NOTHING;

INSERT INTO role_permissions (role_id, permission)
SELECT '00000000-0000-7000-8000-000000000001', name FROM permissions
ON CONFLICT DO NOTHING;
