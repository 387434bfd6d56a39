-- +goose Up
-- As on Postgres: an idempotency key's row keeps its event's meter,
-- quantity and endpoint, so that another event under the key is refused
-- rather than answered as a duplicate. Rows from before have none and
-- match any event.
ALTER TABLE usage_event_keys ADD COLUMN meter TEXT;
ALTER TABLE usage_event_keys ADD COLUMN quantity INTEGER;
ALTER TABLE usage_event_keys ADD COLUMN endpoint TEXT;

-- +goose Down
ALTER TABLE usage_event_keys DROP COLUMN endpoint;
ALTER TABLE usage_event_keys DROP COLUMN quantity;
ALTER TABLE usage_event_keys DROP COLUMN meter;
