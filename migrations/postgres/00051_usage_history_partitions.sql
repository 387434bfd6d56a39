-- +goose Up
-- Usage history in monthly partitions, so that retention drops whole months
-- instead of deleting rows, and idempotency keys in a table of their own,
-- partitioned by the month they arrived in, so that the key check probes a
-- few small indexes instead of one index holding every key ever accepted.
--
-- usage_events is partitioned by occurred_at, the time that decides an
-- event's period. A partitioned table's unique keys must hold its partition
-- column, so (org_id, idempotency_key) can no longer be unique there: keys
-- are claimed in usage_event_keys, whose partitions of the months still
-- inside the idempotency window are probed by (org_id, idempotency_key)
-- before a key is accepted (see internal/usage/history.go).

-- tollgate_month_partition makes sure the partition of parent for the UTC
-- month holding at exists, moving into it any rows the default partition
-- took for that month, and reports whether it created it. The partition is
-- built apart and then attached: ATTACH locks the parent less than CREATE
-- TABLE ... PARTITION OF, so inserts into other months go on meanwhile.
-- +goose StatementBegin
CREATE FUNCTION tollgate_month_partition(parent regclass, at timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    lo   timestamptz := date_trunc('month', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi   timestamptz := lo + interval '1 month';
    base text := (SELECT relname FROM pg_class WHERE oid = parent);
    part text := base || '_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMM');
    def  text := base || '_default';
    col  text;
BEGIN
    -- Makers of partitions of one table take turns; inserts do not wait.
    EXECUTE format('LOCK TABLE %s IN SHARE UPDATE EXCLUSIVE MODE', parent);
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    SELECT a.attname INTO col FROM pg_partitioned_table p
        JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
        WHERE p.partrelid = parent;
    EXECUTE format('CREATE TABLE %I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, parent);
    IF to_regclass(quote_ident(def)) IS NOT NULL THEN
        EXECUTE format('LOCK TABLE %I IN EXCLUSIVE MODE', def);
        EXECUTE format('WITH moved AS (DELETE FROM %I WHERE %I >= $1 AND %I < $2 RETURNING *) INSERT INTO %I SELECT * FROM moved',
            def, col, col, part) USING lo, hi;
    END IF;
    EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', parent, part, lo, hi);
    RETURN true;
END
$$;
-- +goose StatementEnd

ALTER TABLE usage_events RENAME TO usage_events_unpartitioned;
ALTER INDEX usage_events_pkey RENAME TO usage_events_unpartitioned_pkey;

-- Raw usage events: the audit trail behind the rollups, kept for
-- USAGE_EVENTS_RETENTION. Reads never scan this table; they use the rollups.
-- The default partition takes an event whose month has no partition (one
-- timestamped far in the past, on a meter that never resets); the
-- maintenance job moves such rows into a partition of their own.
CREATE TABLE usage_events (
    org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL,
    meter           TEXT NOT NULL,
    quantity        BIGINT NOT NULL,
    endpoint        TEXT NOT NULL DEFAULT '',
    occurred_at     TIMESTAMPTZ NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL
) PARTITION BY RANGE (occurred_at);
-- An organisation's events by time, for audits and for the cascade when an
-- organisation is deleted.
CREATE INDEX usage_events_org_occurred_idx ON usage_events (org_id, occurred_at);
CREATE TABLE usage_events_default PARTITION OF usage_events DEFAULT;

-- The idempotency keys of the window: one row per accepted key, in the
-- partition of the UTC month it arrived in. The primary key makes two
-- copies arriving in one month collide; copies in different months are
-- found by the lookup of the months still inside the window.
-- No foreign key: each key is written in the statement that writes its
-- event, whose foreign key already checks the organisation, and a second
-- check per event would cost the ingest path for nothing. The key of an
-- organisation deleted by hand goes with its partition, within 66 days.
CREATE TABLE usage_event_keys (
    org_id          TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    arrival_month   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, idempotency_key, arrival_month)
) PARTITION BY RANGE (arrival_month);
CREATE TABLE usage_event_keys_default PARTITION OF usage_event_keys DEFAULT;

-- Partitions for every month the old table has events in, and for this
-- month and the next three: the maintenance job keeps three months ready.
SELECT tollgate_month_partition('usage_events', m) FROM (
    SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS m FROM usage_events_unpartitioned
    UNION
    SELECT generate_series(date_trunc('month', now() AT TIME ZONE 'UTC'), date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months', interval '1 month') AT TIME ZONE 'UTC'
) months ORDER BY m;
SELECT tollgate_month_partition('usage_event_keys', m) FROM (
    SELECT DISTINCT date_trunc('month', recorded_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS m FROM usage_events_unpartitioned
        WHERE recorded_at >= date_trunc('month', (now() - interval '35 days') AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
    UNION
    SELECT generate_series(date_trunc('month', now() AT TIME ZONE 'UTC'), date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months', interval '1 month') AT TIME ZONE 'UTC'
) months ORDER BY m;

INSERT INTO usage_events SELECT org_id, idempotency_key, meter, quantity, endpoint, occurred_at, recorded_at FROM usage_events_unpartitioned;
-- Every key still inside the idempotency window keeps being refused, as
-- of the month it arrived in; older keys are past the window already.
INSERT INTO usage_event_keys (org_id, idempotency_key, arrival_month)
SELECT org_id, idempotency_key, date_trunc('month', recorded_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
FROM usage_events_unpartitioned
WHERE recorded_at >= date_trunc('month', (now() - interval '35 days') AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';

DROP TABLE usage_events_unpartitioned;

-- +goose Down
CREATE TABLE usage_events_unpartitioned (
    org_id          TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL,
    meter           TEXT NOT NULL,
    quantity        BIGINT NOT NULL,
    endpoint        TEXT NOT NULL DEFAULT '',
    occurred_at     TIMESTAMPTZ NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, idempotency_key)
);
-- A key counted again after its window has two events; the newest stays.
INSERT INTO usage_events_unpartitioned
SELECT DISTINCT ON (org_id, idempotency_key) org_id, idempotency_key, meter, quantity, endpoint, occurred_at, recorded_at
FROM usage_events ORDER BY org_id, idempotency_key, recorded_at DESC;
DROP TABLE usage_event_keys;
DROP TABLE usage_events;
DROP FUNCTION tollgate_month_partition(regclass, timestamptz);
ALTER TABLE usage_events_unpartitioned RENAME TO usage_events;
ALTER INDEX usage_events_unpartitioned_pkey RENAME TO usage_events_pkey;
