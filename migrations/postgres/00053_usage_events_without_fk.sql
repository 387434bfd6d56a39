-- +goose Up
-- The raw events' foreign key cost the ingest path one lookup (and one
-- KEY SHARE lock) of the organisation per event: a thousand for a
-- thousand-event call, where the rest of the statement works per group or
-- per period total. usage_rollups keeps its foreign key, and every event is
-- written by the statement or transaction that upserts its period total:
-- a total of an organisation that does not exist cannot be inserted, and
-- the totals of a deleted one went with it, so an event of either fails
-- with its total. Tollgate never deletes an organisation; the events of one
-- deleted by hand go with their month's partition (USAGE_EVENTS_RETENTION),
-- as its idempotency keys already do (migration 00051).
-- +goose StatementBegin
DO $$
DECLARE fk text;
BEGIN
    SELECT conname INTO fk FROM pg_constraint
    WHERE conrelid = 'usage_events'::regclass AND contype = 'f' AND confrelid = 'organizations'::regclass;
    IF fk IS NOT NULL THEN
        EXECUTE format('ALTER TABLE usage_events DROP CONSTRAINT %I', fk);
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
ALTER TABLE usage_events ADD FOREIGN KEY (org_id) REFERENCES organizations (id) ON DELETE CASCADE;
