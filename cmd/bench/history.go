package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/usage"
)

const usageQuery = `query Usage { usage { periodStart periodEnd meters { meter used limit remaining unlimited overage } } }`

// seedBatch is how many events one seeding Record call carries: the most
// one call takes.
const seedBatch = usage.MaxBatch

// historyEndpoints are more than the record phase uses, so the per-endpoint
// rollups have some width.
var historyEndpoints = []string{
	"POST /v1/search", "GET /v1/items", "POST /v1/chat", "GET /v1/files",
	"PUT /v1/files", "DELETE /v1/files", "POST /v1/embed", "GET /v1/health",
}

// usageLatency is the `usage` query of one organisation, timed in one state.
type usageLatency struct {
	Events          int
	State           string
	HTTP, InProcess run
}

// historyResult is section 3 of the report.
type historyResult struct {
	// Before is the small organisation before the large one exists; Fresh
	// the large one straight after its writes.
	Before, Fresh usageLatency
	// Small and Large are compared for the target: timed alternately, query
	// by query, after VACUUM (ANALYZE) of the usage tables, so both see the
	// same database and the same machine and differ only in history.
	Small, Large usageLatency
	// Seeded is how long writing the large history took, Vacuum how long
	// settling the tables then took.
	Seeded, Vacuum time.Duration
	Skipped        bool
}

// historyPhase times `usage` for an organisation with 10k events, then for
// one with 1M. The events go through Service.Record, so rollups and events
// are exactly what production would hold, and both are checked against what
// was sent.
func historyPhase(ctx context.Context, b *bench, o options) (historyResult, error) {
	var r historyResult
	small, err := newHistory(ctx, b, "history-small")
	if err != nil {
		return r, err
	}
	defer small.c.close()
	if err := small.seedTo(ctx, o.smallHistory, o.seedWorkers); err != nil {
		return r, err
	}
	if r.Before, err = small.measure(ctx, o, "before the large history"); err != nil {
		return r, err
	}
	if o.skip1M {
		r.Skipped = true
		return r, nil
	}

	large, err := newHistory(ctx, b, "history-large")
	if err != nil {
		return r, err
	}
	defer large.c.close()
	t0 := time.Now()
	if err := large.seedTo(ctx, o.largeHistory, o.seedWorkers); err != nil {
		return r, err
	}
	r.Seeded = time.Since(t0)
	if r.Fresh, err = large.measure(ctx, o, "just written"); err != nil {
		return r, err
	}

	t0 = time.Now()
	for _, table := range []string{"usage_events", "usage_event_keys", "usage_rollups", "usage_endpoint_rollups", "usage_daily_rollups"} {
		if _, err := b.app.DB.SQL().ExecContext(ctx, "VACUUM (ANALYZE) "+table); err != nil {
			return r, fmt.Errorf("vacuum %s: %w", table, err)
		}
	}
	r.Vacuum = time.Since(t0)

	const state = "alternating, after VACUUM"
	r.Small = usageLatency{Events: int(small.written.Load()), State: state}
	r.Large = usageLatency{Events: int(large.written.Load()), State: state}
	saturate(ctx, 1, o.warmup, small.overHTTP)
	saturate(ctx, 1, o.warmup, large.overHTTP)
	r.Small.HTTP, r.Large.HTTP = alternate(ctx, o.queries, small.overHTTP, large.overHTTP)
	r.Small.InProcess, r.Large.InProcess = alternate(ctx, o.queries, small.inProcess, large.inProcess)
	if err := small.verify(ctx); err != nil {
		return r, err
	}
	return r, large.verify(ctx)
}

// history writes a deterministic stream of events for one organisation and
// remembers what it wrote.
type history struct {
	b     *bench
	org   string
	c     *graphQL
	body  []byte // the usage query, encoded
	start time.Time
	// spanSeconds spreads timestamps over the month so far, so the daily
	// rollups have a row per day as a real month would.
	spanSeconds int64

	next    atomic.Int64 // next batch number
	written atomic.Int64 // events accepted
	mu      sync.Mutex
	sums    map[string]int64 // expected used per meter
}

// newHistory creates an organisation of this run for a history.
func newHistory(ctx context.Context, b *bench, name string) (*history, error) {
	org, token, err := b.org(ctx, name, benchPlanID)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	start := clock.MonthStart(now)
	span := max(now.Add(-time.Minute).Sub(start), 0)
	return &history{
		b: b, org: org, c: newGraphQL(b.baseURL, token), body: body(usageQuery, nil),
		start: start, spanSeconds: int64(span / time.Second), sums: map[string]int64{},
	}, nil
}

// event is the i-th event: mostly api_calls, some llm_tokens, and storage
// deltas of both signs on the meter that never resets.
func (h *history) event(i int) usage.Event {
	const spread = 100_003 // prime, so meters and endpoints fall on every day
	at := h.start.Add(time.Duration(h.spanSeconds*int64(i%spread)/spread) * time.Second)
	e := usage.Event{IdempotencyKey: "h-" + strconv.Itoa(i), Endpoint: historyEndpoints[i%len(historyEndpoints)], Timestamp: &at}
	switch m := i % 10; {
	case m < 7:
		e.Meter, e.Quantity = "api_calls", 1
	case m < 9:
		e.Meter, e.Quantity = "llm_tokens", int64(i%997+1)
	case (i/10)%2 == 0:
		e.Meter, e.Quantity = "storage_bytes", 4096
	default:
		e.Meter, e.Quantity = "storage_bytes", -1024
	}
	return e
}

// seedTo records batches until the history holds total events, with
// workers concurrent callers.
func (h *history) seedTo(ctx context.Context, total, workers int) error {
	batches := int64(total / seedBatch)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				k, ok := h.claim(batches)
				if !ok {
					return
				}
				if err := h.record(ctx, int(k)); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	// A failed worker leaves batches unclaimed, so stop here rather than
	// measure a short history.
	return firstErr
}

// claim takes the next batch number below end. It never moves past end, so
// the next seedTo carries on exactly where this one stopped.
func (h *history) claim(end int64) (int64, bool) {
	for {
		k := h.next.Load()
		if k >= end {
			return 0, false
		}
		if h.next.CompareAndSwap(k, k+1) {
			return k, true
		}
	}
}

func (h *history) record(ctx context.Context, k int) error {
	events := make([]usage.Event, seedBatch)
	sums := map[string]int64{}
	for j := range events {
		events[j] = h.event(k*seedBatch + j)
		sums[events[j].Meter] += events[j].Quantity
	}
	res, err := h.b.app.Usage.Record(ctx, h.org, events)
	if err != nil {
		return fmt.Errorf("seed batch %d: %w", k, err)
	}
	if res.Accepted != len(events) {
		return fmt.Errorf("seed batch %d: %d of %d accepted (%d duplicates, %v)", k, res.Accepted, len(events), res.Duplicates, res.Rejected)
	}
	h.written.Add(int64(len(events)))
	h.mu.Lock()
	for m, n := range sums {
		h.sums[m] += n
	}
	h.mu.Unlock()
	return nil
}

func (h *history) overHTTP(ctx context.Context) error { _, err := h.c.post(ctx, h.body); return err }

func (h *history) inProcess(ctx context.Context) error {
	_, _, err := h.b.app.Usage.Usage(ctx, h.org, "")
	return err
}

// measure times `usage` over HTTP and in process, each after a warm-up, then
// checks that the rollups it reads and the raw events both match what was
// recorded.
func (h *history) measure(ctx context.Context, o options, state string) (usageLatency, error) {
	u := usageLatency{Events: int(h.written.Load()), State: state}
	saturate(ctx, 1, o.warmup, h.overHTTP)
	u.HTTP = sequential(ctx, o.queries, h.overHTTP)
	saturate(ctx, 1, o.warmup, h.inProcess)
	u.InProcess = sequential(ctx, o.queries, h.inProcess)
	return u, h.verify(ctx)
}

func (h *history) verify(ctx context.Context) error {
	var got struct {
		Usage struct {
			Meters []struct {
				Meter string
				Used  int64
			}
		}
	}
	if err := h.c.do(ctx, usageQuery, nil, &got); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range got.Usage.Meters {
		if m.Used != h.sums[m.Meter] {
			return fmt.Errorf("usage reports %s used %d, but %d was recorded", m.Meter, m.Used, h.sums[m.Meter])
		}
	}
	var rows []struct {
		Meter string
		N     int64
		Sum   int64
	}
	err := h.b.app.DB.WithContext(ctx).Raw(
		"SELECT meter, COUNT(*) AS n, SUM(quantity) AS sum FROM usage_events WHERE org_id = ? GROUP BY meter", h.org).Scan(&rows).Error
	if err != nil {
		return fmt.Errorf("count seeded events: %w", err)
	}
	var n int64
	for _, r := range rows {
		n += r.N
		if r.Sum != h.sums[r.Meter] {
			return fmt.Errorf("usage_events sum to %d on %s, but %d was recorded", r.Sum, r.Meter, h.sums[r.Meter])
		}
	}
	if n != h.written.Load() {
		return fmt.Errorf("usage_events holds %d events of the org, but %d were recorded", n, h.written.Load())
	}
	return nil
}
