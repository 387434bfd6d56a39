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
// keys the clients were told were counted, summed over the organisations,
// and returns each organisation's stored total.
func (l *usageLoad) verify(ctx context.Context, rep *report, phase string, periods []string) (map[*usageOrg]int64, error) {
	totals := map[*usageOrg]int64{}
	var sum orgFigures
	var lost, unacked []string
	for _, o := range l.orgs {
		f, err := l.figures(ctx, o)
		if err != nil {
			return nil, err
		}
		totals[o] = f.eventSum
		sum.add(f)
		lost = append(lost, f.lost...)
		unacked = append(unacked, f.unacked...)
	}
	rep.info(phase, "distinct keys acknowledged", sum.acked)
	rep.info(phase, "usage_events rows (SQL)", sum.rows)
	rep.check(phase, "SUM(quantity) in usage_events = keys acknowledged", sum.eventSum, sum.acked)
	rep.check(phase, "lost (acknowledged, missing from usage_events)", len(lost), 0)
	rep.check(phase, "stored but never acknowledged", len(unacked), 0)
	rep.check(phase, "double-counted (usage_rollups − SUM(quantity))", sum.rollup-sum.eventSum, 0)
	rep.check(phase, "usage_daily_rollups − SUM(quantity)", sum.daily-sum.eventSum, 0)
	rep.check(phase, "usage_endpoint_rollups − SUM(quantity) of events with an endpoint", sum.byEndpoint-sum.withEndpoint, 0)
	if len(lost) > 0 {
		rep.note("phase 1: lost keys, e.g. %s", sample(lost))
	}
	if len(unacked) > 0 {
		rep.note("phase 1: stored keys no client saw succeed, e.g. %s", sample(unacked))
	}

	for _, t := range l.env.processes() {
		var total int64
		for _, o := range l.orgs {
			for _, p := range periods {
				var u struct {
					Usage struct {
						Meters []struct {
							Meter string
							Used  int64
						}
					}
				}
				if err := query(ctx, l.client, t.url, bearer(o.tok), usageReport, map[string]any{"period": p}, &u); err != nil {
					return nil, fmt.Errorf("usage query on %s: %w", t.name, err)
				}
				for _, m := range u.Usage.Meters {
					if m.Meter == usageMeter {
						total += m.Used
					}
				}
			}
		}
		rep.check(phase, "usage query on "+t.name+" (GraphQL, rollups)", total, sum.eventSum)
	}

	// The gate reads the current month's Redis counter, which an outage may
	// have left stale; Tollgate promises to repair it, so it gets a moment.
	if len(periods) > 1 {
		rep.note("phase 1 crossed a month boundary: the usageGate check (current month only) was skipped")
		return totals, nil
	}
	for _, t := range l.env.processes() {
		var used int64
		deadline := time.Now().Add(gateSettle)
		for {
			used = 0
			for _, o := range l.orgs {
				var g struct{ UsageGate struct{ Used int64 } }
				if err := query(ctx, l.client, t.url, bearer(o.tok), gateQuery, map[string]any{"meter": usageMeter}, &g); err != nil {
					return nil, fmt.Errorf("usageGate on %s: %w", t.name, err)
				}
				used += g.UsageGate.Used
			}
			if used == sum.eventSum || time.Now().After(deadline) {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		rep.check(phase, "usageGate on "+t.name+" (Redis counters, "+gateSettle.String()+" to settle)", used, sum.eventSum)
	}
	return totals, nil
}

// orgFigures is what the database holds of one organisation's phase 1
// usage, beside what its clients were told.
type orgFigures struct {
	acked, rows                                       int
	eventSum, withEndpoint, rollup, daily, byEndpoint int64
	lost, unacked                                     []string
}

func (f *orgFigures) add(g orgFigures) {
	f.acked += g.acked
	f.rows += g.rows
	f.eventSum += g.eventSum
	f.withEndpoint += g.withEndpoint
	f.rollup += g.rollup
	f.daily += g.daily
	f.byEndpoint += g.byEndpoint
}

func (l *usageLoad) figures(ctx context.Context, o *usageOrg) (orgFigures, error) {
	db := l.env.db
	var f orgFigures
	l.mu.Lock()
	acked := o.acked
	l.mu.Unlock()
	f.acked = len(acked)
	stored := map[string]int64{}
	rows, err := db.Query(ctx, `SELECT idempotency_key, quantity, endpoint FROM usage_events WHERE org_id = $1 AND meter = $2`, o.id, usageMeter)
	if err != nil {
		return f, fmt.Errorf("read usage_events: %w", err)
	}
	// Events without an endpoint are in no per-endpoint rollup, by design.
	for rows.Next() {
		var k, endpoint string
		var q int64
		if err := rows.Scan(&k, &q, &endpoint); err != nil {
			rows.Close()
			return f, err
		}
		stored[k] = q
		f.eventSum += q
		if endpoint != "" {
			f.withEndpoint += q
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("read usage_events: %w", err)
	}
	f.rows = len(stored)
	sum := func(table string) (int64, error) {
		var n int64
		err := db.QueryRow(ctx, `SELECT COALESCE(SUM(used), 0)::bigint FROM `+table+` WHERE org_id = $1 AND meter = $2`, o.id, usageMeter).Scan(&n)
		if err != nil {
			return 0, fmt.Errorf("sum %s: %w", table, err)
		}
		return n, nil
	}
	if f.rollup, err = sum("usage_rollups"); err != nil {
		return f, err
	}
	if f.daily, err = sum("usage_daily_rollups"); err != nil {
		return f, err
	}
	if f.byEndpoint, err = sum("usage_endpoint_rollups"); err != nil {
		return f, err
	}
	for k := range acked {
		if _, ok := stored[k]; !ok {
			f.lost = append(f.lost, k)
		}
	}
	for k := range stored {
		if _, ok := acked[k]; !ok {
			f.unacked = append(f.unacked, k)
		}
	}
	return f, nil
}

func sample(keys []string) string {
	if len(keys) > 5 {
		keys = keys[:5]
	}
	return strings.Join(keys, ", ")
}
