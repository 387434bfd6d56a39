-- +goose Up
-- How many distinct endpoint names (besides "(other)") each meter keeps in
-- usage_endpoint_rollups per UTC month, so that a write finds the room left
-- under USAGE_ENDPOINTS_PER_METER by one key lookup instead of counting
-- the names (internal/usage/endpointcap.go). The statement that inserts
-- names adds them here; it updates the row only if nobody else added names
-- since its snapshot, and otherwise fails as a serialization failure and is
-- tried again, so concurrent writers never keep more names than allowed.
CREATE TABLE usage_endpoint_names (
    org_id       TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    period_start TIMESTAMPTZ NOT NULL,
    meter        TEXT NOT NULL,
    names        BIGINT NOT NULL,
    PRIMARY KEY (org_id, period_start, meter)
);

INSERT INTO usage_endpoint_names (org_id, period_start, meter, names)
SELECT org_id, period_start, meter, count(*) FROM usage_endpoint_rollups
WHERE endpoint <> '(other)' GROUP BY org_id, period_start, meter;

-- Raised by a usage statement whose snapshot missed names another writer
-- added: the retry classifier (store.IsConflict) tries it again.
-- +goose StatementBegin
CREATE FUNCTION tollgate_serialization_failure(reason text) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'serialization_failure', MESSAGE = reason;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION tollgate_serialization_failure(text);
DROP TABLE usage_endpoint_names;
