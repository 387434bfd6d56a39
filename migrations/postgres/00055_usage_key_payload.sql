-- +goose Up
-- An idempotency key's row keeps what its event was (meter, quantity,
-- endpoint), so that a key sent again with another event is told apart
-- from a retry: a retry is a duplicate, another event under the key is
-- refused (IDEMPOTENCY_KEY_REUSED) instead of silently dropped. The
-- timestamp is not kept: a retry may be stamped anew by its sender.
-- Nullable, so that adding them rewrites nothing: rows written before this
-- migration have none and are taken to match any event (they answer as
-- duplicates, as before), until their partition leaves the window within
-- 66 days. The partitions made later (tollgate_month_partition, LIKE the
-- parent) get the columns too.
ALTER TABLE usage_event_keys
    ADD COLUMN meter    TEXT,
    ADD COLUMN quantity BIGINT,
    ADD COLUMN endpoint TEXT;

-- +goose Down
ALTER TABLE usage_event_keys
    DROP COLUMN meter,
    DROP COLUMN quantity,
    DROP COLUMN endpoint;
