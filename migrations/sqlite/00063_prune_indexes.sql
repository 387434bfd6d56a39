-- +goose Up
-- The retention jobs' scans: finished Checkout sessions by state and the
-- time they finished (billing.PruneCheckouts), and revoked API keys by the
-- time they were revoked (auth.PruneRevoked; live keys, revoked_at null,
-- are left out of the index). The second checkout index serves the prune's
-- "a newer record of the same organisation and customer exists" and
-- checkoutOpened's lookup by customer.
CREATE INDEX checkout_sessions_state_updated_idx ON checkout_sessions (state, updated_at);
CREATE INDEX checkout_sessions_org_customer_idx ON checkout_sessions (org_id, customer_id, created_at);
CREATE INDEX api_keys_revoked_idx ON api_keys (revoked_at) WHERE revoked_at IS NOT NULL;

-- +goose Down
DROP INDEX api_keys_revoked_idx;
DROP INDEX checkout_sessions_org_customer_idx;
DROP INDEX checkout_sessions_state_updated_idx;
