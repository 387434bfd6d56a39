-- +goose Up
-- Stripe events already applied. The row is written in the transaction that
-- applies the event, so a redelivered event finds it and changes nothing.
CREATE TABLE webhook_events (
    id           TEXT PRIMARY KEY,          -- Stripe's event id
    type         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,      -- the event's created time at Stripe
    processed_at TIMESTAMPTZ NOT NULL,
    outcome      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX webhook_events_processed_idx ON webhook_events (processed_at);

CREATE TABLE invoices (
    id                     TEXT PRIMARY KEY, -- Stripe's invoice id
    org_id                 TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    stripe_customer_id     TEXT NOT NULL DEFAULT '',
    stripe_subscription_id TEXT NOT NULL DEFAULT '',
    number                 TEXT,
    status                 TEXT NOT NULL,
    amount_due             BIGINT NOT NULL DEFAULT 0,
    amount_paid            BIGINT NOT NULL DEFAULT 0,
    total                  BIGINT NOT NULL DEFAULT 0,
    currency               TEXT NOT NULL,
    period_start           TIMESTAMPTZ,
    period_end             TIMESTAMPTZ,
    paid_at                TIMESTAMPTZ,
    hosted_invoice_url     TEXT,
    pdf_url                TEXT,
    -- created time of the last Stripe event applied; older events are dropped
    last_event_at          TIMESTAMPTZ,
    created_at             TIMESTAMPTZ NOT NULL, -- when Stripe created the invoice
    updated_at             TIMESTAMPTZ NOT NULL
);
-- Keyset pagination, newest first, with and without a status filter.
CREATE INDEX invoices_org_created_idx ON invoices (org_id, created_at DESC, id DESC);
CREATE INDEX invoices_org_status_created_idx ON invoices (org_id, status, created_at DESC, id DESC);

-- +goose Down
DROP TABLE invoices;
DROP TABLE webhook_events;
