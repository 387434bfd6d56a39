-- +goose Up
-- Overage an invoice could not carry (too large for one item, no price or
-- a charge in another currency, or refused by Stripe), one row per meter,
-- month and invoice: the first delivery of invoice.created that finds it
-- counts it in tollgate_overage_unbilled_total and logs it, and a
-- redelivery, another event for the same invoice or `stripe sync` finds
-- the row and counts nothing, so the counter rises once per invoice.
CREATE TABLE overage_unbilled (
    org_id            TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    meter             TEXT NOT NULL,
    period            TEXT NOT NULL,     -- the month, YYYY-MM
    stripe_invoice_id TEXT NOT NULL,     -- the invoice that could not carry it
    reason            TEXT NOT NULL,     -- the metric's reason label
    created_at        DATETIME NOT NULL,
    PRIMARY KEY (org_id, meter, period, stripe_invoice_id)
);

-- +goose Down
DROP TABLE overage_unbilled;
