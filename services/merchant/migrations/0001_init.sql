-- The merchant service's schema: merchants with their status workflow, hashed API keys and
-- review documents, plus the outbox / processed-events tables every service has.

CREATE TABLE merchants (
    id            UUID PRIMARY KEY,
    -- the owner (user service); no cross-schema foreign key
    user_id       UUID NOT NULL,
    name          TEXT NOT NULL CHECK (length(name) BETWEEN 2 AND 100),
    description   TEXT NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    website       TEXT NOT NULL DEFAULT '' CHECK (length(website) <= 255),
    currency      TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status        TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'active', 'rejected', 'inactive')),
    status_reason TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at    TIMESTAMPTZ
);
CREATE INDEX merchants_user_idx ON merchants (user_id, created_at DESC);
CREATE INDEX merchants_status_idx ON merchants (status, created_at DESC);
-- one merchant name per owner (case-insensitive)
CREATE UNIQUE INDEX merchants_user_name_key ON merchants (user_id, lower(name));

CREATE TABLE api_keys (
    id              UUID PRIMARY KEY,
    merchant_id     UUID NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    -- the first characters of the key, shown in lists to tell keys apart
    prefix          TEXT NOT NULL,
    -- SHA-256 of the whole key. Keys are 192 random bits, so a fast hash is enough: nobody
    -- can brute-force the preimage, and lookups stay one index probe.
    key_hash        BYTEA NOT NULL UNIQUE,
    replaces_key_id UUID REFERENCES api_keys (id) ON DELETE SET NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- set by a rotation: the old key works until then
    expires_at      TIMESTAMPTZ,
    revoked_at      TIMESTAMPTZ
);
CREATE INDEX api_keys_merchant_idx ON api_keys (merchant_id, created_at DESC);

CREATE TABLE merchant_documents (
    id            UUID PRIMARY KEY,
    merchant_id   UUID NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    document_type TEXT NOT NULL
                  CHECK (document_type IN ('business_license', 'tax_id', 'identity',
                                           'bank_statement', 'other')),
    document_url  TEXT NOT NULL CHECK (document_url ~ '^https://' AND length(document_url) <= 2048),
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    note          TEXT,
    reviewed_by   UUID,
    reviewed_at   TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at    TIMESTAMPTZ,
    CONSTRAINT reviewed_has_reviewer CHECK ((status = 'pending') = (reviewed_at IS NULL))
);
CREATE INDEX merchant_documents_merchant_idx ON merchant_documents (merchant_id, created_at DESC);
CREATE INDEX merchant_documents_status_idx ON merchant_documents (status, created_at DESC);

-- The outbox and processed_events tables are the events crate's (crates/events/schema),
-- applied before these migrations; this migration created them until they moved there.
