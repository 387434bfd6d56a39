-- +goose Up
-- An organisation's own alert thresholds for a meter, replacing its plan's.
-- percents is a comma-separated ascending list ("" turns alerts off).
CREATE TABLE usage_alert_settings (
    org_id      TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    meter       TEXT NOT NULL,
    percents    TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, meter)
);

-- Each alert that fired. The primary key is what makes an alert fire once
-- per threshold per period: it is inserted in the transaction that counted
-- the usage crossing it, and only the insert that adds the row emits the
-- outbound event.
CREATE TABLE usage_alerts (
    org_id        TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    meter         TEXT NOT NULL,
    period_start  TIMESTAMPTZ NOT NULL,  -- the rollup's period (1970-01-01 for meters that never reset)
    percent       INTEGER NOT NULL,
    used          BIGINT NOT NULL,   -- the period total right after the crossing
    limit_value   BIGINT NOT NULL,
    hard          BOOLEAN NOT NULL,
    fired_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, meter, period_start, percent)
);
CREATE INDEX usage_alerts_fired_idx ON usage_alerts (org_id, fired_at);

-- +goose Down
DROP TABLE usage_alerts;
DROP TABLE usage_alert_settings;
