-- +goose Up
-- Which attempt at creating the organisation's Stripe customer is current.
-- The attempt is part of the idempotency key, and Stripe replays a stored
-- answer for 24 hours under one key: after an answer Tollgate cannot use
-- (or a refusal), the attempt moves on, so the next try is a new request.
-- After a lost answer it stays, so the retry gets the customer the lost
-- request created. 0 is the key used before attempts were counted.
ALTER TABLE organizations ADD COLUMN stripe_customer_attempt INTEGER NOT NULL DEFAULT 0;
-- The organisation's external id as a Checkout session's metadata carries
-- it, so a retry under the session's idempotency key sends what the first
-- request sent; '' for sessions recorded before it was sent.
ALTER TABLE checkout_sessions ADD COLUMN org_external_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE checkout_sessions DROP COLUMN org_external_id;
ALTER TABLE organizations DROP COLUMN stripe_customer_attempt;
