-- +goose Up
-- The organisation's Checkout session that may still be open. Opening a new
-- one expires it first, so two sessions opened before the first webhook
-- cannot sell two subscriptions.
ALTER TABLE organizations ADD COLUMN open_checkout_session_id TEXT;

-- +goose Down
ALTER TABLE organizations DROP COLUMN open_checkout_session_id;
