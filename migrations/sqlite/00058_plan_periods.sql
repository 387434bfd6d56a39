-- +goose Up
-- Which plan each organisation was on when: billing writes a row in the
-- transaction that changes organizations.plan_id (closing the open period
-- and opening the next), so a back-dated usage event and a past month's
-- overage are judged by the plan in force at their time. valid_to is NULL
-- for the period in force now; periods of one organisation do not overlap.
CREATE TABLE plan_periods (
    org_id     TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    plan_id    TEXT NOT NULL,
    valid_from DATETIME NOT NULL,
    valid_to   DATETIME,
    PRIMARY KEY (org_id, valid_from)
);
CREATE UNIQUE INDEX plan_periods_open ON plan_periods (org_id) WHERE valid_to IS NULL;

-- Before this migration no history was kept: each organisation's current
-- plan is taken to have been in force since it was created. That is a
-- guess for an organisation whose plan changed before now (its earlier
-- months are judged by its current plan, as they were until now); from
-- here on every change is recorded.
INSERT INTO plan_periods (org_id, plan_id, valid_from, valid_to)
SELECT id, plan_id, created_at, NULL FROM organizations;

-- +goose Down
DROP TABLE plan_periods;
