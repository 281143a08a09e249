-- Operating the event backbone: the dead-letter topic's admin routes (list, replay, purge).
-- The admin role gets it.

INSERT INTO permissions (name, description) VALUES
    ('events.manage', 'List, replay and purge dead-lettered events')
ON CONFLICT (name) DO NOTHING;

INSERT INTO role_permissions (role_id, permission)
VALUES ('00000000-0000-7000-8000-000000000001', 'events.manage')
ON CONFLICT DO NOTHING;
