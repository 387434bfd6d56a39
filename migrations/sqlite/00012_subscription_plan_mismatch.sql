-- +goose Up
-- Set while every Stripe price on the subscription is missing from the plans
-- file: plan_id is then the last plan a known price named, not what the
-- customer pays for, until an operator adds the price.
ALTER TABLE subscriptions ADD COLUMN plan_mismatch BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE subscriptions DROP COLUMN plan_mismatch;
