-- +goose Up
-- How many distinct endpoint names (besides "(other)") each meter keeps in
-- usage_endpoint_rollups per UTC month, so that a write finds the room left
-- under USAGE_ENDPOINTS_PER_METER by one key lookup instead of counting
-- the names (internal/usage/endpointcap.go). SQLite has no writable common
-- table expressions, so a trigger counts each name inserted, inside the
-- statement that inserts it (an upsert that updates fires no INSERT
-- trigger); its one writer at a time keeps the count exact.
CREATE TABLE usage_endpoint_names (
    org_id       TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    period_start DATETIME NOT NULL,
    meter        TEXT NOT NULL,
    names        INTEGER NOT NULL,
    PRIMARY KEY (org_id, period_start, meter)
);

INSERT INTO usage_endpoint_names (org_id, period_start, meter, names)
SELECT org_id, period_start, meter, count(*) FROM usage_endpoint_rollups
WHERE endpoint <> '(other)' GROUP BY org_id, period_start, meter;

-- +goose StatementBegin
CREATE TRIGGER usage_endpoint_names_count AFTER INSERT ON usage_endpoint_rollups
WHEN NEW.endpoint <> '(other)'
BEGIN
    INSERT INTO usage_endpoint_names (org_id, period_start, meter, names)
    VALUES (NEW.org_id, NEW.period_start, NEW.meter, 1)
    ON CONFLICT (org_id, period_start, meter) DO UPDATE SET names = names + 1;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER usage_endpoint_names_count;
DROP TABLE usage_endpoint_names;
