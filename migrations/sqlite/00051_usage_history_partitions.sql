-- +goose Up
-- The same tables as on Postgres, unpartitioned: SQLite is the development
-- database, so retention deletes rows there (see internal/usage/history.go).
-- Idempotency keys move to usage_event_keys, with the UTC month they
-- arrived in, so that the key check follows the same window on both.
CREATE TABLE usage_events_partitioned (
    org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL,
    meter           TEXT NOT NULL,
    quantity        INTEGER NOT NULL,
    endpoint        TEXT NOT NULL DEFAULT '',
    occurred_at     DATETIME NOT NULL,
    recorded_at     DATETIME NOT NULL
);
INSERT INTO usage_events_partitioned SELECT org_id, idempotency_key, meter, quantity, endpoint, occurred_at, recorded_at FROM usage_events;

-- No foreign key, as on Postgres: each key is written with its event,
-- whose foreign key checks the organisation.
CREATE TABLE usage_event_keys (
    org_id          TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    arrival_month   DATETIME NOT NULL,
    PRIMARY KEY (org_id, idempotency_key, arrival_month)
);
-- Times are stored as text in Go's layout, '2006-01-02 15:04:05.999999999-07:00'
-- in UTC; a month start is written the way Go writes it, so that it compares
-- as text with the months Tollgate writes.
INSERT INTO usage_event_keys (org_id, idempotency_key, arrival_month)
SELECT org_id, idempotency_key, strftime('%Y-%m-01 00:00:00+00:00', recorded_at)
FROM usage_events
WHERE strftime('%Y-%m-01 00:00:00+00:00', recorded_at) >= strftime('%Y-%m-01 00:00:00+00:00', 'now', '-35 days');

DROP TABLE usage_events;
ALTER TABLE usage_events_partitioned RENAME TO usage_events;
CREATE INDEX usage_events_org_occurred_idx ON usage_events (org_id, occurred_at);

-- +goose Down
CREATE TABLE usage_events_unpartitioned (
    org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL,
    meter           TEXT NOT NULL,
    quantity        INTEGER NOT NULL,
    endpoint        TEXT NOT NULL DEFAULT '',
    occurred_at     DATETIME NOT NULL,
    recorded_at     DATETIME NOT NULL,
    PRIMARY KEY (org_id, idempotency_key)
);
-- A key counted again after its window has two events; the newest stays.
INSERT INTO usage_events_unpartitioned
SELECT org_id, idempotency_key, meter, quantity, endpoint, occurred_at, recorded_at FROM usage_events
ORDER BY recorded_at DESC
ON CONFLICT (org_id, idempotency_key) DO NOTHING;
DROP TABLE usage_event_keys;
DROP TABLE usage_events;
ALTER TABLE usage_events_unpartitioned RENAME TO usage_events;
