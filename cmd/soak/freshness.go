package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// faultRepair is how long after Redis is back its counters may still lag on
// some process: the watcher's look (0.5 s), the skip after a failure (1 s)
// and the resync of dirty counters (1 s), with room.
const faultRepair = 5 * time.Second

// freshness is phase 1's read-after-write probe. Usage promises that a
// recordUsage acknowledged by one process is seen by the next usageGate on
// every process (Redis counters, and the gate leases that answer from a
// process's memory). One client records one event at a time on each process
// in turn and, once it is acknowledged, asks the gate of the two others; a
// gate answering less than the events acknowledged so far is stale. Redis
// outages excuse what falls near them: a process that could not write a
// counter marks it dirty only for itself.
type freshness struct {
	org  *usageOrg
	hc   *http.Client
	env  *environment
	stop time.Time

	mu            sync.Mutex
	writes, gates int
	stale         []staleGate
	redisDown     [][2]time.Time
}

// staleGate is a gate that answered less than had been acknowledged.
type staleGate struct {
	at   time.Time
	what string
}

// redisOutage is told when Redis went down and came back.
func (f *freshness) redisOutage(from, to time.Time) {
	f.mu.Lock()
	f.redisDown = append(f.redisDown, [2]time.Time{from, to})
	f.mu.Unlock()
}

func (f *freshness) nearFault(t time.Time) bool {
	for _, w := range f.redisDown {
		if !t.Before(w[0].Add(-time.Second)) && t.Before(w[1].Add(faultRepair)) {
			return true
		}
	}
	return false
}

// run probes until the phase's load stops.
func (f *freshness) run(ctx context.Context) {
	var acked int64
	for i := 0; time.Now().Before(f.stop) && ctx.Err() == nil; i++ {
		writer := f.env.proc(i)
		key := fmt.Sprintf("%s-fresh-%06d", f.env.runID, i)
		body := map[string]any{"in": map[string]any{"events": []any{
			map[string]any{"meter": usageMeter, "quantity": 1, "idempotencyKey": key}}}}
		var out recordPayload
		// The same key until it is counted, so acked stays exact.
		for ctx.Err() == nil {
			err := query(ctx, f.hc, writer.url, bearer(f.org.tok), recordUsage, body, &out)
			if err == nil && out.RecordUsage.Accepted+out.RecordUsage.Duplicates == 1 {
				break
			}
			if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		acked++
		for j := range f.env.processes() {
			reader := f.env.proc(i + j)
			var g struct{ UsageGate struct{ Used int64 } }
			asked := time.Now()
			if err := query(ctx, f.hc, reader.url, bearer(f.org.tok), gateQuery, map[string]any{"meter": usageMeter}, &g); err != nil {
				continue // an outage; the gate's answer is checked elsewhere
			}
			f.mu.Lock()
			f.gates++
			if g.UsageGate.Used < acked {
				f.stale = append(f.stale, staleGate{asked, fmt.Sprintf("%s answered %d after %s acknowledged event %d",
					reader.name, g.UsageGate.Used, writer.name, acked)})
			}
			f.mu.Unlock()
		}
		f.mu.Lock()
		f.writes++
		f.mu.Unlock()
	}
}

// report adds the probe's figures to phase 1's. An outage's end is known
// only once it is over, so stale gates are judged here.
func (f *freshness) report(rep *report, phase string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	excused, stale := 0, []string{}
	for _, s := range f.stale {
		if f.nearFault(s.at) {
			excused++
		} else {
			stale = append(stale, s.what)
		}
	}
	rep.info(phase, "read-after-write probe: events recorded one at a time / gates then asked on every process", fmt.Sprintf("%d / %d", f.writes, f.gates))
	rep.info(phase, "read-after-write probe: gates behind an acknowledged write within "+faultRepair.String()+" of a Redis outage (excused)", excused)
	rep.check(phase, "read-after-write probe: gates behind an acknowledged write elsewhere", len(stale), 0)
	for _, s := range stale[:min(len(stale), 3)] {
		rep.info(phase, "read-after-write probe: stale", s)
	}
}
