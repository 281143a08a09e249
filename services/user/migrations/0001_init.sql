-- The user service's schema: accounts, refresh tokens, one-time tokens, outbox.

CREATE TABLE users (
    id                UUID PRIMARY KEY,
    email             TEXT NOT NULL,
    password_hash     TEXT NOT NULL,
    first_name        TEXT NOT NULL,
    last_name         TEXT NOT NULL,
    email_verified_at TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at        TIMESTAMPTZ,
    CONSTRAINT users_email_lowercase CHECK (email = lower(email)),
    CONSTRAINT users_first_name_length CHECK (char_length(first_name) BETWEEN 1 AND 100),
    CONSTRAINT users_last_name_length CHECK (char_length(last_name) BETWEEN 1 AND 100)
);
-- Unique across trashed users too, so a restore can never collide.
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX users_created_at_idx ON users (created_at DESC, id DESC);

-- Refresh tokens are opaque random strings; only their SHA-256 is stored. Each login starts a
-- family; every refresh marks the presented token used and issues the next one in the family.
-- Presenting a used token again means it leaked: the whole family is revoked.
CREATE TABLE refresh_tokens (
    id             UUID PRIMARY KEY,
    user_id        UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id      UUID NOT NULL,
    token_hash     BYTEA NOT NULL,
    issued_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at     TIMESTAMPTZ NOT NULL,
    used_at        TIMESTAMPTZ,
    revoked_at     TIMESTAMPTZ,
    revoked_reason TEXT,
    CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

-- Email-verification and password-reset tokens: single use, expiring, stored hashed.
CREATE TABLE one_time_tokens (
    token_hash BYTEA PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX one_time_tokens_user_idx ON one_time_tokens (user_id, purpose);

-- The outbox and processed_events tables are the events crate's (crates/events/schema),
-- applied before these migrations; this migration created them until they moved there.
