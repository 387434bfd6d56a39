package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const recordQuery = `mutation Record($input: RecordUsageInput!) { recordUsage(input: $input) {
  accepted duplicates rejected { index code message } userErrors { field code message } } }`

// endpoints are what the recorded events say was called.
var endpoints = []string{"POST /v1/search", "GET /v1/items", "POST /v1/chat", "GET /v1/files"}

// batchSizes are the recordUsage batch sizes the issue asks about.
var batchSizes = []int{1, 100, 1000}

// recordRow is one line of section 2: recordUsage beside a raw INSERT of as
// many rows per statement.
type recordRow struct {
	Batch      int
	API, Floor run
}

// EventsPerSecond is what recordUsage accepted per second.
func (r recordRow) EventsPerSecond() float64 { return r.API.PerSecond() * float64(r.Batch) }

// RowsPerSecond is what the raw INSERT wrote per second.
func (r recordRow) RowsPerSecond() float64 { return r.Floor.PerSecond() * float64(r.Batch) }

// recordPhase times recordUsage over HTTP with unique keys, and the floor:
// the same number of events per statement written by one multi-row INSERT
// into scratch copies of usage_event_keys and usage_events (floorInsert),
// with no GraphQL, no idempotency window lookup and no rollups.
func recordPhase(ctx context.Context, b *bench, o options) ([]recordRow, error) {
	_, token, err := b.org(ctx, "record", benchPlanID)
	if err != nil {
		return nil, err
	}
	c := newGraphQL(b.baseURL, token)
	defer c.close()
	db := b.app.DB.SQL()
	if err := createFloorTables(ctx, db); err != nil {
		return nil, err
	}

	var seq atomic.Int64 // makes every key of the run unique
	rows := make([]recordRow, 0, len(batchSizes))
	for _, n := range batchSizes {
		api := recordOp(c.post, b.runID, n, &seq)
		floor := rawInsertOp(db, b.runID, n, &seq)
		saturate(ctx, o.recordWorkers, o.warmup, api)
		saturate(ctx, o.recordWorkers, o.warmup, floor)
		row := recordRow{Batch: n}
		row.API = saturate(ctx, o.recordWorkers, o.duration, api)
		row.Floor = saturate(ctx, o.recordWorkers, o.duration, floor)
		rows = append(rows, row)
	}
	// Gone before the next phase, so autovacuum has nothing of it to work
	// on while that phase is timed.
	if err := dropFloorTables(ctx, db); err != nil {
		return nil, err
	}
	return rows, nil
}

// createFloorTables makes the floors' scratch copies of usage_events and
// usage_event_keys, partitioned as they are, with this month's partitions
// and the default ones. LIKE copies columns, defaults and indexes, but not
// the foreign keys: the floor pays for the same rows and indexes, nothing
// else.
func createFloorTables(ctx context.Context, db *sql.DB) error {
	for _, q := range []string{
		"CREATE TABLE bench_raw_events (LIKE usage_events INCLUDING ALL) PARTITION BY RANGE (occurred_at)",
		"CREATE TABLE bench_raw_events_default PARTITION OF bench_raw_events DEFAULT",
		"SELECT tollgate_month_partition('bench_raw_events', now())",
		"CREATE TABLE bench_raw_keys (LIKE usage_event_keys INCLUDING ALL) PARTITION BY RANGE (arrival_month)",
		"CREATE TABLE bench_raw_keys_default PARTITION OF bench_raw_keys DEFAULT",
		"SELECT tollgate_month_partition('bench_raw_keys', now())",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create scratch tables: %w", err)
		}
	}
	return nil
}

func dropFloorTables(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, "DROP TABLE bench_raw_events, bench_raw_keys"); err != nil {
		return fmt.Errorf("drop scratch tables: %w", err)
	}
	return nil
}

// floorInsert is the floor's statement for n events: each key claimed in
// bench_raw_keys (ON CONFLICT DO NOTHING, as recordUsage claims it) and
// the events of the keys claimed written to bench_raw_events, with no
// window lookup, no GraphQL and no rollups.
func floorInsert(n int) string {
	var q strings.Builder
	q.WriteString("WITH v (org_id, idempotency_key, meter, quantity, endpoint, occurred_at, recorded_at) AS (VALUES ")
	for i := range n {
		if i > 0 {
			q.WriteString(", ")
		}
		p := 7 * i
		fmt.Fprintf(&q, "($%d::text, $%d::text, $%d::text, $%d::bigint, $%d::text, $%d::timestamptz, $%d::timestamptz)",
			p+1, p+2, p+3, p+4, p+5, p+6, p+7)
	}
	q.WriteString("), k AS (INSERT INTO bench_raw_keys (org_id, idempotency_key, arrival_month)" +
		" SELECT org_id, idempotency_key, date_trunc('month', recorded_at) FROM v ON CONFLICT DO NOTHING RETURNING org_id, idempotency_key)" +
		" INSERT INTO bench_raw_events SELECT v.* FROM v JOIN k USING (org_id, idempotency_key)")
	return q.String()
}

// poster sends a request body and returns the answer's: graphQL.post, or
// rawClient.send where the load generator must stay light.
type poster func(ctx context.Context, body []byte) ([]byte, error)

// recordOp sends one recordUsage of n new events and checks that every one
// was accepted.
func recordOp(post poster, runID string, n int, seq *atomic.Int64) op {
	return func(ctx context.Context) error {
		buf := recordBody(runID, seq.Add(1), n)
		raw, err := post(ctx, buf)
		if err != nil {
			return err
		}
		var resp struct {
			Data struct {
				RecordUsage struct {
					Accepted, Duplicates int
					Rejected, UserErrors []json.RawMessage
				}
			}
		}
		if err := json.Unmarshal(raw, &resp); err != nil {
			return fmt.Errorf("decode recordUsage response: %w", err)
		}
		if got := resp.Data.RecordUsage; got.Accepted != n || got.Duplicates != 0 || len(got.Rejected) > 0 || len(got.UserErrors) > 0 {
			return fmt.Errorf("recordUsage of %d new events answered %.300s", n, raw)
		}
		return nil
	}
}

// recordQueryJSON is recordQuery as a JSON string.
var recordQueryJSON, _ = json.Marshal(recordQuery)

// recordBody is a recordUsage request of n new events, call s of the run.
// It is built by hand: encoding a thousand events through reflection would
// load the same two cores the server runs on.
func recordBody(runID string, s int64, n int) []byte {
	buf := make([]byte, 0, 160+n*110)
	buf = append(buf, `{"query":`...)
	buf = append(buf, recordQueryJSON...)
	buf = append(buf, `,"variables":{"input":{"events":[`...)
	for i := range n {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"meter":"api_calls","quantity":1,"idempotencyKey":"`...)
		buf = append(buf, runID...)
		buf = append(buf, '-')
		buf = strconv.AppendInt(buf, s, 10)
		buf = append(buf, '-')
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, `","endpoint":"`...)
		buf = append(buf, endpoints[i%len(endpoints)]...)
		buf = append(buf, `"}`...)
	}
	return append(buf, `]}}}`...)
}

// rawInsertOp writes n rows in one INSERT statement (one transaction, like
// recordUsage) through the same driver and pool Tollgate uses.
func rawInsertOp(db *sql.DB, runID string, n int, seq *atomic.Int64) op {
	stmt := floorInsert(n)
	org := "raw-" + runID
	return func(ctx context.Context) error {
		s := strconv.FormatInt(seq.Add(1), 10)
		now := time.Now().UTC()
		args := make([]any, 0, 7*n)
		for i := range n {
			args = append(args, org, runID+"-"+s+"-"+strconv.Itoa(i), "api_calls", int64(1), endpoints[i%len(endpoints)], now, now)
		}
		_, err := db.ExecContext(ctx, stmt, args...)
		return err
	}
}
