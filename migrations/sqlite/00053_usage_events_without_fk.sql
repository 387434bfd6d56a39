-- +goose Up
-- As on Postgres, the raw events lose their foreign key: usage_rollups keeps
-- one, and every event is written with an upsert of its period total.
-- SQLite cannot drop a constraint, so the table is rebuilt.
CREATE TABLE usage_events_unchecked (
    org_id          TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    meter           TEXT NOT NULL,
    quantity        INTEGER NOT NULL,
    endpoint        TEXT NOT NULL DEFAULT '',
    occurred_at     DATETIME NOT NULL,
    recorded_at     DATETIME NOT NULL
);
INSERT INTO usage_events_unchecked SELECT org_id, idempotency_key, meter, quantity, endpoint, occurred_at, recorded_at FROM usage_events;
DROP TABLE usage_events;
ALTER TABLE usage_events_unchecked RENAME TO usage_events;
CREATE INDEX usage_events_org_occurred_idx ON usage_events (org_id, occurred_at);

-- +goose Down
CREATE TABLE usage_events_checked (
    org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL,
    meter           TEXT NOT NULL,
    quantity        INTEGER NOT NULL,
    endpoint        TEXT NOT NULL DEFAULT '',
    occurred_at     DATETIME NOT NULL,
    recorded_at     DATETIME NOT NULL
);
INSERT INTO usage_events_checked SELECT org_id, idempotency_key, meter, quantity, endpoint, occurred_at, recorded_at FROM usage_events;
DROP TABLE usage_events;
ALTER TABLE usage_events_checked RENAME TO usage_events;
CREATE INDEX usage_events_org_occurred_idx ON usage_events (org_id, occurred_at);
