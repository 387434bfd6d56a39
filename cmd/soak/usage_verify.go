package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

const (
	usageReport = `query Usage($period: String) { usage(period: $period) { meters { meter used } } }`
	gateQuery   = `query Gate($meter: String!) { usageGate(meter: $meter) { used } }`
	// gateSettle is how long the Redis counters get to catch up after the
	// load: Tollgate rewrites counters it failed to write every second.
	gateSettle = 10 * time.Second
)

// verify compares the database, the usage report and the gate with the
// keys the clients were told were counted.
func (l *usageLoad) verify(ctx context.Context, rep *report, phase, orgID, tok string, acked map[string]struct{}, periods []string) error {
	db := l.env.db
	stored := map[string]int64{}
	rows, err := db.Query(ctx, `SELECT idempotency_key, quantity, endpoint FROM usage_events WHERE org_id = $1 AND meter = $2`, orgID, usageMeter)
	if err != nil {
		return fmt.Errorf("read usage_events: %w", err)
	}
	// Events without an endpoint are in no per-endpoint rollup, by design.
	var eventSum, withEndpoint int64
	for rows.Next() {
		var k, endpoint string
		var q int64
		if err := rows.Scan(&k, &q, &endpoint); err != nil {
			rows.Close()
			return err
		}
		stored[k] = q
		eventSum += q
		if endpoint != "" {
			withEndpoint += q
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read usage_events: %w", err)
	}
	sum := func(table string) (int64, error) {
		var n int64
		err := db.QueryRow(ctx, `SELECT COALESCE(SUM(used), 0)::bigint FROM `+table+` WHERE org_id = $1 AND meter = $2`, orgID, usageMeter).Scan(&n)
		if err != nil {
			return 0, fmt.Errorf("sum %s: %w", table, err)
		}
		return n, nil
	}
	rollup, err := sum("usage_rollups")
	if err != nil {
		return err
	}
	daily, err := sum("usage_daily_rollups")
	if err != nil {
		return err
	}
	byEndpoint, err := sum("usage_endpoint_rollups")
	if err != nil {
		return err
	}

	var lost, unacked []string
	for k := range acked {
		if _, ok := stored[k]; !ok {
			lost = append(lost, k)
		}
	}
	for k := range stored {
		if _, ok := acked[k]; !ok {
			unacked = append(unacked, k)
		}
	}
	rep.info(phase, "distinct keys acknowledged", len(acked))
	rep.info(phase, "usage_events rows (SQL)", len(stored))
	rep.check(phase, "SUM(quantity) in usage_events = keys acknowledged", eventSum, len(acked))
	rep.check(phase, "lost (acknowledged, missing from usage_events)", len(lost), 0)
	rep.check(phase, "stored but never acknowledged", len(unacked), 0)
	rep.check(phase, "double-counted (usage_rollups − SUM(quantity))", rollup-eventSum, 0)
	rep.check(phase, "usage_daily_rollups − SUM(quantity)", daily-eventSum, 0)
	rep.check(phase, "usage_endpoint_rollups − SUM(quantity) of events with an endpoint", byEndpoint-withEndpoint, 0)
	if len(lost) > 0 {
		rep.note("phase 1: lost keys, e.g. %s", sample(lost))
	}
	if len(unacked) > 0 {
		rep.note("phase 1: stored keys no client saw succeed, e.g. %s", sample(unacked))
	}

	for _, t := range l.env.processes() {
		var total int64
		for _, p := range periods {
			var u struct {
				Usage struct {
					Meters []struct {
						Meter string
						Used  int64
					}
				}
			}
			if err := query(ctx, l.client, t.url, bearer(tok), usageReport, map[string]any{"period": p}, &u); err != nil {
				return fmt.Errorf("usage query on %s: %w", t.name, err)
			}
			for _, m := range u.Usage.Meters {
				if m.Meter == usageMeter {
					total += m.Used
				}
			}
		}
		rep.check(phase, "usage query on "+t.name+" (GraphQL, rollups)", total, eventSum)
	}

	// The gate reads the current month's Redis counter, which an outage may
	// have left stale; Tollgate promises to repair it, so it gets a moment.
	if len(periods) == 1 {
		for _, t := range l.env.processes() {
			var used int64
			deadline := time.Now().Add(gateSettle)
			for {
				var g struct{ UsageGate struct{ Used int64 } }
				if err := query(ctx, l.client, t.url, bearer(tok), gateQuery, map[string]any{"meter": usageMeter}, &g); err != nil {
					return fmt.Errorf("usageGate on %s: %w", t.name, err)
				}
				used = g.UsageGate.Used
				if used == eventSum || time.Now().After(deadline) {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			rep.check(phase, "usageGate on "+t.name+" (Redis counter, "+gateSettle.String()+" to settle)", used, eventSum)
		}
	} else {
		rep.note("phase 1 crossed a month boundary: the usageGate check (current month only) was skipped")
	}
	return nil
}

func sample(keys []string) string {
	if len(keys) > 5 {
		keys = keys[:5]
	}
	return strings.Join(keys, ", ")
}
