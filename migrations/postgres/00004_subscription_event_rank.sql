-- +goose Up
-- Stripe's event times have one-second resolution, and a subscription is
-- often created incomplete and activated within the same second. The rank of
-- the last event applied (created 0, updated 1, deleted 2, fetched from
-- Stripe 3) orders such ties.
ALTER TABLE subscriptions ADD COLUMN last_event_rank INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE subscriptions DROP COLUMN last_event_rank;
