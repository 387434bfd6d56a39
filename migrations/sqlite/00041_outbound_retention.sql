-- +goose Up
-- The retention job finds old events by time, and deleting one cascades to
-- its deliveries by event_id: without these, each would scan its table.
CREATE INDEX outbound_events_created_idx ON outbound_events (created_at);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);

-- +goose Down
DROP INDEX webhook_deliveries_event_idx;
DROP INDEX outbound_events_created_idx;
