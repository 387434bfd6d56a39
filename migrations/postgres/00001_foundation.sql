-- +goose Up
CREATE TABLE organizations (
    id                 TEXT PRIMARY KEY,
    external_id        TEXT NOT NULL UNIQUE,
    name               TEXT NOT NULL DEFAULT '',
    billing_email      TEXT NOT NULL DEFAULT '',
    stripe_customer_id TEXT UNIQUE,
    plan_id            TEXT NOT NULL DEFAULT 'free',
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);

CREATE TABLE subscriptions (
    id                     TEXT PRIMARY KEY,
    org_id                 TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    stripe_subscription_id TEXT NOT NULL UNIQUE,
    stripe_customer_id     TEXT NOT NULL DEFAULT '',
    price_id               TEXT NOT NULL DEFAULT '',
    plan_id                TEXT NOT NULL,
    status                 TEXT NOT NULL,
    current_period_start   TIMESTAMPTZ,
    current_period_end     TIMESTAMPTZ,
    cancel_at_period_end   BOOLEAN NOT NULL DEFAULT FALSE,
    canceled_at            TIMESTAMPTZ,
    -- created time of the last Stripe event applied; older events are dropped
    last_event_at          TIMESTAMPTZ,
    created_at             TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL
);
CREATE INDEX subscriptions_org_idx ON subscriptions (org_id, created_at DESC);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    contact_email TEXT NOT NULL DEFAULT '',
    prefix        TEXT NOT NULL,
    secret_hash   TEXT NOT NULL UNIQUE,
    scopes        TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    -- Ed25519 public key (raw, base64); when set every request must be signed
    signing_public_key TEXT
);
CREATE INDEX api_keys_org_idx ON api_keys (org_id, created_at DESC);

-- +goose Down
DROP TABLE api_keys;
DROP TABLE subscriptions;
DROP TABLE organizations;
