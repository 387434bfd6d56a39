-- +goose Up
-- One final bill per ended subscription: the overage of its closed months
-- not yet billed, and of the month it ended in up to the end, on one
-- one-off invoice. The row is claimed (pending) before Stripe is called,
-- the invoice's id recorded when Stripe answers, and the status settled
-- (invoiced, or none when nothing was owed), so a redelivered
-- customer.subscription.deleted bills nothing more and `stripe sync`
-- finishes a bill interrupted between steps.
CREATE TABLE overage_final_bills (
    org_id                 TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    stripe_subscription_id TEXT NOT NULL,
    ended_at               DATETIME NOT NULL,
    status                 TEXT NOT NULL,  -- pending, invoiced, none
    stripe_invoice_id      TEXT,
    created_at             DATETIME NOT NULL,
    updated_at             DATETIME NOT NULL,
    PRIMARY KEY (org_id, stripe_subscription_id)
);

-- +goose Down
DROP TABLE overage_final_bills;
