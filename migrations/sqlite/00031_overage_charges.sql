-- +goose Up
-- Overage of one meter in one closed UTC month, claimed before Stripe is
-- asked to bill it: a crash between Stripe's answer and Tollgate's record
-- leaves a pending row, which the next draft invoice or `stripe sync`
-- finishes under the same idempotency key. The primary key is what makes a
-- month's overage billable once.
CREATE TABLE overage_charges (
    org_id              TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    meter               TEXT NOT NULL,
    period              TEXT NOT NULL,     -- the month, YYYY-MM
    quantity            BIGINT NOT NULL,   -- units over the allowance
    allowance           BIGINT NOT NULL,
    unit_amount         BIGINT NOT NULL,   -- minor units per started package
    per                 BIGINT NOT NULL,   -- units in a package
    amount              BIGINT NOT NULL,   -- minor units of currency
    currency            TEXT NOT NULL,
    status              TEXT NOT NULL,     -- pending or billed
    attempt             INTEGER NOT NULL,  -- bumped each time the charge moves to another invoice
    stripe_invoice_id   TEXT,              -- the invoice it is (being) added to
    stripe_item_id      TEXT,              -- set once billed
    billed_at           DATETIME,
    created_at          DATETIME NOT NULL,
    updated_at          DATETIME NOT NULL,
    PRIMARY KEY (org_id, meter, period)
);
CREATE INDEX overage_charges_invoice_idx ON overage_charges (stripe_invoice_id);

-- +goose Down
DROP TABLE overage_charges;
