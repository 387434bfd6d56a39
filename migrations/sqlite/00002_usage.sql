-- +goose Up
-- Raw usage events: the audit trail behind the rollups. The primary key is
-- the idempotency guarantee: a retried key can never be stored twice.
-- Reads never scan this table; they use the rollups below.
CREATE TABLE usage_events (
    org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL,
    meter           TEXT NOT NULL,
    quantity        INTEGER NOT NULL,
    endpoint        TEXT NOT NULL DEFAULT '',
    occurred_at     DATETIME NOT NULL,
    recorded_at     DATETIME NOT NULL,
    PRIMARY KEY (org_id, idempotency_key)
);

-- Total per meter and period. Monthly meters key the UTC month start;
-- meters that never reset key 1970-01-01 so the running total never restarts.
-- version grows on every change; Redis keeps the newest version it has seen,
-- so counters written out of order never go back in time.
CREATE TABLE usage_rollups (
    org_id       TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    meter        TEXT NOT NULL,
    period_start DATETIME NOT NULL,
    used         INTEGER NOT NULL DEFAULT 0,
    version      INTEGER NOT NULL DEFAULT 0,
    updated_at   DATETIME NOT NULL,
    PRIMARY KEY (org_id, meter, period_start)
);

-- Per endpoint, per meter and UTC month (for every meter, including those
-- that never reset: the net change in the month).
CREATE TABLE usage_endpoint_rollups (
    org_id       TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    period_start DATETIME NOT NULL,
    meter        TEXT NOT NULL,
    endpoint     TEXT NOT NULL,
    used         INTEGER NOT NULL DEFAULT 0,
    updated_at   DATETIME NOT NULL,
    PRIMARY KEY (org_id, period_start, meter, endpoint)
);

-- Per meter and UTC day (midnight), for charts.
CREATE TABLE usage_daily_rollups (
    org_id     TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    meter      TEXT NOT NULL,
    day        DATETIME NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (org_id, meter, day)
);

-- +goose Down
DROP TABLE usage_daily_rollups;
DROP TABLE usage_endpoint_rollups;
DROP TABLE usage_rollups;
DROP TABLE usage_events;
