-- The role service's schema: permissions, roles, their permissions, user-role assignments.

CREATE TABLE permissions (
    name        TEXT PRIMARY KEY CHECK (name ~ '^[a-z][a-z_]*(\.[a-z_]+)+$'),
    description TEXT NOT NULL
);

CREATE TABLE roles (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    is_system   BOOLEAN NOT NULL DEFAULT false,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at  TIMESTAMPTZ,
    CONSTRAINT roles_name_format CHECK (name ~ '^[a-z][a-z0-9_-]{1,49}$'),
    CONSTRAINT roles_system_not_deleted CHECK (NOT (is_system AND deleted_at IS NOT NULL))
);
CREATE UNIQUE INDEX roles_name_key ON roles (name);
CREATE INDEX roles_created_at_idx ON roles (created_at DESC, id DESC);

CREATE TABLE role_permissions (
    role_id    UUID NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission TEXT NOT NULL REFERENCES permissions (name) ON DELETE CASCADE,
    PRIMARY KEY (role_id, permission)
);

-- user_id refers to the user service's users; there is no cross-schema foreign key.
CREATE TABLE user_roles (
    user_id     UUID NOT NULL,
    role_id     UUID NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    assigned_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    assigned_by TEXT NOT NULL,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role_idx ON user_roles (role_id);

INSERT INTO permissions (name, description) VALUES
    ('users.read', 'Read any user account'),
    ('users.write', 'Create and update any user account'),
    ('users.delete', 'Trash, restore and permanently delete user accounts'),
    ('roles.read', 'Read roles, permissions and any user''s roles'),
    ('roles.write', 'Create, update, trash, restore and delete roles'),
    ('roles.assign', 'Assign roles to and revoke roles from users'),
    ('roles.grants.read', 'Read a user''s effective grants (used by services when issuing tokens)');

-- System roles have fixed ids so other services and seeders can refer to them.
INSERT INTO roles (id, name, description, is_system) VALUES
    ('00000000-0000-7000-8000-000000000001', 'admin', 'Platform administrator: every permission', true),
    ('00000000-0000-7000-8000-000000000002', 'customer', 'A customer: own account, cards and money', true),
    ('00000000-0000-7000-8000-000000000003', 'merchant', 'A merchant owner: own merchant and payments', true);

-- The admin role holds every permission; later migrations that add permissions repeat this.
INSERT INTO role_permissions (role_id, permission)
SELECT '00000000-0000-7000-8000-000000000001', name FROM permissions;

-- The outbox and processed_events tables are the events crate's (crates/events/schema),
-- applied before these migrations; this migration created them until they moved there.
