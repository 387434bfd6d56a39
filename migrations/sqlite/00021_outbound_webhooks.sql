-- +goose Up
-- Where an organisation wants Tollgate's events delivered. secret is the
-- Standard Webhooks signing secret (whsec_…): Tollgate must sign with it, so
-- it is stored as is and shown to the client only when created.
CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,          -- space-separated event types
    secret          TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'enabled',
    -- start of the current run of failed attempts; null while it delivers
    failing_since   DATETIME,
    disabled_at     DATETIME,
    disabled_reason TEXT NOT NULL DEFAULT '',
    created_at      DATETIME NOT NULL,
    updated_at      DATETIME NOT NULL
);
CREATE INDEX webhook_endpoints_org_idx ON webhook_endpoints (org_id, created_at);

-- The last sequence number given to an organisation's events. Taking the
-- next one locks the row until the transaction ends, so sequences commit in
-- order and a rolled-back event leaves no gap.
CREATE TABLE outbound_sequences (
    org_id        TEXT PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    last_sequence INTEGER NOT NULL
);

-- Every event, written in the transaction of the fact it reports.
CREATE TABLE outbound_events (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    sequence   INTEGER NOT NULL,
    type       TEXT NOT NULL,
    payload    TEXT NOT NULL,               -- the exact JSON body sent
    created_at DATETIME NOT NULL,
    UNIQUE (org_id, sequence)
);

-- One event to one endpoint; the River job that sends it carries its id.
CREATE TABLE webhook_deliveries (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    endpoint_id  TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id     TEXT NOT NULL REFERENCES outbound_events (id) ON DELETE CASCADE,
    status       TEXT NOT NULL DEFAULT 'pending',
    attempts     INTEGER NOT NULL DEFAULT 0,
    delivered_at DATETIME,
    created_at   DATETIME NOT NULL,
    updated_at   DATETIME NOT NULL
);
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);

-- Each HTTP attempt, for webhookDeliveries.
CREATE TABLE webhook_delivery_attempts (
    id           TEXT PRIMARY KEY,
    delivery_id  TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    number       INTEGER NOT NULL,         -- 1 for the first attempt
    attempted_at DATETIME NOT NULL,
    status_code  INTEGER,                  -- null when no response came
    latency_ms   INTEGER NOT NULL,
    error        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX webhook_delivery_attempts_delivery_idx ON webhook_delivery_attempts (delivery_id, number);

-- +goose Down
DROP TABLE webhook_delivery_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE outbound_events;
DROP TABLE outbound_sequences;
DROP TABLE webhook_endpoints;
