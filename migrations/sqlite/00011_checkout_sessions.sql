-- +goose Up
-- Every Checkout session Tollgate asks Stripe for, recorded before it is
-- asked: a crash between Stripe's answer and Tollgate's record leaves a
-- pending row, and the next checkout (or `stripe sync`) asks again under the
-- same idempotency key, learns the session's id and expires it. Opening a new
-- session closes every earlier one first, so two sessions opened before the
-- first webhook cannot sell two subscriptions.
CREATE TABLE checkout_sessions (
    id                TEXT PRIMARY KEY,  -- Tollgate's id; the idempotency key derives from it
    org_id            TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    stripe_session_id TEXT,              -- null until Stripe's answer is recorded
    state             TEXT NOT NULL,     -- pending, open or closed
    plan_id           TEXT NOT NULL,
    price_id          TEXT NOT NULL,
    customer_id       TEXT NOT NULL,
    success_url       TEXT NOT NULL,
    cancel_url        TEXT NOT NULL,
    created_at        DATETIME NOT NULL,
    updated_at        DATETIME NOT NULL
);
CREATE INDEX checkout_sessions_org_state_idx ON checkout_sessions (org_id, state);
CREATE UNIQUE INDEX checkout_sessions_stripe_idx ON checkout_sessions (stripe_session_id);

-- The one session each organisation may have had open carries over; what it
-- sold is unknown here, and only its id is needed to expire it.
INSERT INTO checkout_sessions (id, org_id, stripe_session_id, state, plan_id, price_id, customer_id, success_url, cancel_url, created_at, updated_at)
SELECT 'migrated-' || id, id, open_checkout_session_id, 'open', '', '', COALESCE(stripe_customer_id, ''), '', '', updated_at, updated_at
FROM organizations WHERE open_checkout_session_id IS NOT NULL AND open_checkout_session_id <> '';
ALTER TABLE organizations DROP COLUMN open_checkout_session_id;

-- +goose Down
ALTER TABLE organizations ADD COLUMN open_checkout_session_id TEXT;
DROP TABLE checkout_sessions;
