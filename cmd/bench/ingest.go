package main

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tollgate-billing/tollgate/internal/store"
)

// The ingest section reproduces the table of the issue "Ingest at the
// floor": every figure beside a floor measured in the same run, with
// Tollgate alone in a server process of its own (so its RSS is its own) and
// the load generator in this one.
const (
	// ingestClients is how many clients send one-event recordUsage, and
	// how many connections the single-row INSERT floor uses (as pgbench -c).
	ingestClients = 64
	// allocGates and allocRecords are the in-process requests the
	// allocation figures average over.
	allocGates   = 5000
	allocRecords = 500
)

// Targets of the ingest issue, as ratios to floors of the same run.
const (
	targetOneEventRatio = 1.0
	targetOneEventP99   = 25 * time.Millisecond
	targetBatchRatio    = 0.5
	targetGateSatRatio  = 0.6
	targetGateP99Ratio  = 1.5
	targetPeakRSS       = 256 << 20
	targetIdleRSS       = 64 << 20
)

// ingestResult is the ingest section.
type ingestResult struct {
	// OneOrg and ManyOrgs are one-event recordUsage from ingestClients
	// clients on one organisation and on one each; Floor is the single-row
	// durable INSERT … ON CONFLICT DO NOTHING from as many connections.
	OneOrg, ManyOrgs, Floor run
	// OneOrgGroup and ManyOrgsGroup are the group commits of those phases.
	OneOrgGroup, ManyOrgsGroup GroupStages
	// OneOrgCPU, ManyOrgsCPU and FloorCPU are where each of those phases'
	// CPU went, per event.
	OneOrgCPU, ManyOrgsCPU, FloorCPU CPUPerOp
	// BareOne is `{ __typename }` from as many clients, in turn with those
	// phases, and BareOneCPU where its CPU went, per request: what the
	// server's HTTP, middleware and GraphQL layers cost with nothing behind
	// them.
	BareOne    run
	BareOneCPU CPUPerOp
	// NetHTTP is a bare net/http handler of the server process answering a
	// fixed body (netHTTPFloorPath) to a one-event request from as many
	// clients, and NetHTTPCPU where its CPU went, per request: what any
	// server on net/http spends, with no authentication, GraphQL or usage
	// service.
	NetHTTP    run
	NetHTTPCPU CPUPerOp
	// Batches are recordUsage of 100 and 1,000 events beside a raw
	// multi-row INSERT of as many rows.
	Batches []recordRow
	// Gate and Bare are usageGate and `{ __typename }` at each fixed rate
	// and at saturation (rate 0).
	Gate, Bare map[int]run
	// IdleRSS is the server's RSS once started and warmed by a few
	// requests; PeakRSS its high-water mark after all of the load.
	IdleRSS, PeakRSS int64
	// Allocations per request, measured in this process on the in-process
	// handler, one request at a time.
	GateAllocs, GateBytes       float64
	EventAllocs1, EventBytes1   float64 // per event, one-event calls
	EventAllocs1k, EventBytes1k float64 // per event, 1,000-event calls
}

// ingestRounds is how many turns each compared phase gets (interleave):
// 2 s each with the default 8 s phases.
const ingestRounds = 4

// groupTally adds up the group-commit histograms over the turns of a phase.
type groupTally struct {
	srv *server
	sum groupMetrics
	err error
}

// around wraps a phase's turn with reads of the histograms.
func (g *groupTally) around(ctx context.Context, phase func(rec *recorder, d time.Duration)) func(rec *recorder, d time.Duration) {
	return func(rec *recorder, d time.Duration) {
		before, err := g.srv.groupCounts(ctx)
		phase(rec, d)
		after, err1 := g.srv.groupCounts(ctx)
		if g.err = cmp.Or(g.err, err, err1); g.err == nil {
			g.sum = g.sum.add(after, 1).add(before, -1)
		}
	}
}

// GroupStages are a phase's mean group-commit figures, from the server's
// metrics: calls per group, and milliseconds a call waited for its group,
// a group's commit and its Redis mirror.
type GroupStages struct {
	Calls, WaitMs, CommitMs, PublishMs float64
}

// stages are the phase's means.
func (g *groupTally) stages() (GroupStages, error) {
	m := g.sum
	return GroupStages{
		Calls:     m.calls / max(m.groups, 1),
		WaitMs:    1000 * m.wait / max(m.waits, 1),
		CommitMs:  1000 * m.commit / max(m.commits, 1),
		PublishMs: 1000 * m.publish / max(m.publishes, 1),
	}, g.err
}

// ingestRates are the fixed rates the gate is timed at.
var ingestRates = []int{2000, 5000}

func ingestPhase(ctx context.Context, b *bench, o options) (ingestResult, error) {
	r := ingestResult{Gate: map[int]run{}, Bare: map[int]run{}}
	srv, err := startServer(ctx, b)
	if err != nil {
		return r, err
	}
	defer srv.stop()

	// Organisations: one for the gate and the one-org load, and one per
	// client for the many-org load.
	_, gateToken, err := b.org(ctx, "ingest", benchPlanID)
	if err != nil {
		return r, err
	}
	tokens := make([]string, ingestClients)
	for i := range tokens {
		if _, tokens[i], err = b.org(ctx, "ingest-"+strconv.Itoa(i), benchPlanID); err != nil {
			return r, err
		}
	}
	// Every request of this section goes through rawClient, so the load
	// generator takes as little as it can of the two cores the server,
	// Postgres and Redis share; the floors' clients are as lean (pgx).
	var seq atomic.Int64
	one, err := newRawClient(srv.baseURL, gateToken, nil)
	if err != nil {
		return r, err
	}
	defer one.close()
	if err := recordOp(one.send, b.runID, 10, &seq)(ctx); err != nil { // some usage for the gate to read
		return r, err
	}
	gate, err := newRawClient(srv.baseURL, gateToken, body(gateQuery, map[string]any{"meter": gateMeter}))
	if err != nil {
		return r, err
	}
	defer gate.close()
	bare, err := newRawClient(srv.baseURL, gateToken, body(floorQuery, nil))
	if err != nil {
		return r, err
	}
	defer bare.close()
	netHTTP, err := newRawClientAt(srv.baseURL, netHTTPFloorPath, gateToken, recordBody(b.runID, 0, 1))
	if err != nil {
		return r, err
	}
	defer netHTTP.close()
	for range 10 {
		if err := gate.post(ctx); err != nil {
			return r, err
		}
	}
	if r.IdleRSS, _, err = srv.memory(); err != nil {
		return r, err
	}

	// The floors' own pool, as pgbench opens one connection per client.
	// The in-process app of sections 1-3 gives back its idle connections
	// first: with the server process's pools and River's, Postgres's
	// default 100 connections would not hold them all.
	b.app.DB.SQL().SetMaxIdleConns(0)
	floorDB, err := store.Open(ctx, store.Options{URL: b.dbURL, MaxOpenConns: ingestClients})
	if err != nil {
		return r, err
	}
	defer floorDB.Close()
	db := floorDB.SQL()
	if err := createFloorTables(ctx, db); err != nil {
		return r, err
	}
	defer dropFloorTables(context.WithoutCancel(ctx), db)

	// One-event calls, beside the single-row floor.
	if o.ingests("one") {
		oneOrg := recordOp(one.send, b.runID, 1, &seq)
		manyOps := make([]op, ingestClients)
		for i := range manyOps {
			c, err := newRawClient(srv.baseURL, tokens[i], nil)
			if err != nil {
				return r, err
			}
			defer c.close()
			manyOps[i] = recordOp(c.send, b.runID, 1, &seq)
		}
		floor := singleRowInsertOp(db, b.runID, &seq)
		many := func(w int) op { return manyOps[w] }
		saturate(ctx, ingestClients, o.warmup, oneOrg)
		saturateEach(ctx, ingestClients, o.warmup, many)
		saturate(ctx, ingestClients, o.warmup, floor)
		oneGroups, manyGroups := &groupTally{srv: srv}, &groupTally{srv: srv}
		pid := srv.cmd.Process.Pid
		oneCPU, manyCPU, floorCPU, bareCPU, netCPU := &cpuTally{serverPID: pid}, &cpuTally{serverPID: pid}, &cpuTally{serverPID: pid}, &cpuTally{serverPID: pid}, &cpuTally{serverPID: pid}
		saturate(ctx, ingestClients, o.warmup, bare.post)
		saturate(ctx, ingestClients, o.warmup, netHTTP.post)
		runs := interleave(ctx, o.duration, ingestRounds,
			oneGroups.around(ctx, oneCPU.around(func(rec *recorder, d time.Duration) {
				saturateInto(ctx, rec, ingestClients, d, func(int) op { return oneOrg })
			})),
			manyGroups.around(ctx, manyCPU.around(func(rec *recorder, d time.Duration) { saturateInto(ctx, rec, ingestClients, d, many) })),
			floorCPU.around(func(rec *recorder, d time.Duration) {
				saturateInto(ctx, rec, ingestClients, d, func(int) op { return floor })
			}),
			bareCPU.around(func(rec *recorder, d time.Duration) {
				saturateInto(ctx, rec, ingestClients, d, func(int) op { return bare.post })
			}),
			netCPU.around(func(rec *recorder, d time.Duration) {
				saturateInto(ctx, rec, ingestClients, d, func(int) op { return netHTTP.post })
			}))
		r.OneOrg, r.ManyOrgs, r.Floor, r.BareOne, r.NetHTTP = runs[0], runs[1], runs[2], runs[3], runs[4]
		r.OneOrgCPU, r.ManyOrgsCPU, r.FloorCPU, r.BareOneCPU, r.NetHTTPCPU = oneCPU.perOp(), manyCPU.perOp(), floorCPU.perOp(), bareCPU.perOp(), netCPU.perOp()
		if r.OneOrgGroup, err = oneGroups.stages(); err != nil {
			return r, err
		}
		if r.ManyOrgsGroup, err = manyGroups.stages(); err != nil {
			return r, err
		}
	}

	// Batches, beside the raw multi-row insert.
	for _, n := range []int{100, 1000} {
		if !o.ingests("batch") {
			break
		}
		api, raw := recordOp(one.send, b.runID, n, &seq), rawInsertOp(db, b.runID, n, &seq)
		saturate(ctx, o.recordWorkers, o.warmup, api)
		saturate(ctx, o.recordWorkers, o.warmup, raw)
		runs := interleave(ctx, o.duration, ingestRounds,
			func(rec *recorder, d time.Duration) {
				saturateInto(ctx, rec, o.recordWorkers, d, func(int) op { return api })
			},
			func(rec *recorder, d time.Duration) {
				saturateInto(ctx, rec, o.recordWorkers, d, func(int) op { return raw })
			})
		r.Batches = append(r.Batches, recordRow{Batch: n, API: runs[0], Floor: runs[1]})
	}

	// The gate beside the bare endpoint, at fixed rates and at saturation.
	if o.ingests("gate") {
		saturate(ctx, o.workers, o.warmup, bare.post)
		saturate(ctx, o.workers, o.warmup, gate.post)
		for _, rate := range ingestRates {
			runs := interleave(ctx, o.duration, ingestRounds,
				func(rec *recorder, d time.Duration) { pacedInto(ctx, rec, rate, d, bare.post) },
				func(rec *recorder, d time.Duration) { pacedInto(ctx, rec, rate, d, gate.post) })
			r.Bare[rate], r.Gate[rate] = runs[0], runs[1]
		}
		runs := interleave(ctx, o.duration, ingestRounds,
			func(rec *recorder, d time.Duration) {
				saturateInto(ctx, rec, o.workers, d, func(int) op { return bare.post })
			},
			func(rec *recorder, d time.Duration) {
				saturateInto(ctx, rec, o.workers, d, func(int) op { return gate.post })
			})
		r.Bare[0], r.Gate[0] = runs[0], runs[1]
	}
	if _, r.PeakRSS, err = srv.memory(); err != nil {
		return r, err
	}

	if err := r.measureAllocations(ctx, b, gateToken, &seq); err != nil {
		return r, err
	}
	return r, nil
}

// singleRowInsertOp is pgbench's custom-script loop: one durable
// INSERT … ON CONFLICT DO NOTHING of one new row per transaction.
func singleRowInsertOp(db *sql.DB, runID string, seq *atomic.Int64) op {
	q := floorInsert(1)
	org := "raw-" + runID
	return func(ctx context.Context) error {
		now := time.Now().UTC()
		key := runID + "-1-" + strconv.FormatInt(seq.Add(1), 10)
		_, err := db.ExecContext(ctx, q, org, key, "api_calls", int64(1), endpoints[0], now, now)
		return err
	}
}

// measureAllocations counts what the in-process handler allocates per
// usageGate request and per recorded event, one request at a time. The
// figures include the test request and response writer, a few allocations.
func (r *ingestResult) measureAllocations(ctx context.Context, b *bench, token string, seq *atomic.Int64) error {
	// Connections are reused again, as in normal serving.
	b.app.DB.SQL().SetMaxIdleConns(2)
	h := b.app.Handler()
	serve := func(payload []byte) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/graphql", bytes.NewReader(payload))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		w := &bodyWriter{header: http.Header{}}
		h.ServeHTTP(w, req)
		if w.status != 0 && w.status != http.StatusOK || bytes.Contains(w.body.Bytes(), []byte(`"errors"`)) {
			return fmt.Errorf("in-process request answered %d: %.300s", w.status, w.body.Bytes())
		}
		return nil
	}
	per := func(n int, units float64, next func() []byte) (allocs, bytes float64, err error) {
		for range n / 10 { // warm caches and pools
			if err := serve(next()); err != nil {
				return 0, 0, err
			}
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range n {
			if err := serve(next()); err != nil {
				return 0, 0, err
			}
		}
		runtime.ReadMemStats(&after)
		total := float64(n) * units
		return float64(after.Mallocs-before.Mallocs) / total, float64(after.TotalAlloc-before.TotalAlloc) / total, nil
	}
	gateBody := body(gateQuery, map[string]any{"meter": gateMeter})
	var err error
	if r.GateAllocs, r.GateBytes, err = per(allocGates, 1, func() []byte { return gateBody }); err != nil {
		return err
	}
	if r.EventAllocs1, r.EventBytes1, err = per(allocRecords, 1, func() []byte { return recordBody(b.runID, seq.Add(1), 1) }); err != nil {
		return err
	}
	r.EventAllocs1k, r.EventBytes1k, err = per(allocRecords/50, 1000, func() []byte { return recordBody(b.runID, seq.Add(1), 1000) })
	return err
}

// bodyWriter is a ResponseWriter that keeps the answer for checking.
type bodyWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *bodyWriter) Header() http.Header         { return w.header }
func (w *bodyWriter) WriteHeader(status int)      { w.status = status }
func (w *bodyWriter) Write(p []byte) (int, error) { return w.body.Write(p) }

// ingestFigure is one line of the ingest table: a figure beside its floor
// and target.
type ingestFigure struct {
	What     string  `json:"what"`
	Measured float64 `json:"measured"`
	Floor    float64 `json:"floor,omitempty"`
	Unit     string  `json:"unit"`
	// Ratio is Measured/Floor (or the latency ratio), judged against
	// Target; a figure without a floor is judged on Measured.
	Ratio  float64 `json:"ratio,omitempty"`
	Target string  `json:"target,omitempty"`
	Pass   *bool   `json:"pass,omitempty"`
	// TurnRatios (throughput figures) are the ratio of each interleaved
	// turn: Tollgate's turn against the floor's turn of the same round. Their
	// spread is this run's own noise, by which to read a Ratio near its
	// target.
	TurnRatios []float64 `json:"turnRatios,omitempty"`
}

// turnRatios divides each turn of x by the same round's turn of floor.
func turnRatios(x, floor run) []float64 {
	var out []float64
	for i := range min(len(x.Turns), len(floor.Turns)) {
		if floor.Turns[i] > 0 {
			out = append(out, x.Turns[i]/floor.Turns[i])
		}
	}
	return out
}

// figures are the ingest section's lines, in the order.
func (r ingestResult) figures() []ingestFigure {
	judge := func(ok bool) *bool { return &ok }
	perS := func(x run) float64 { return x.PerSecond() }
	out := []ingestFigure{
		{What: "one-event recordUsage, 64 clients, one organisation", Measured: perS(r.OneOrg), Floor: perS(r.Floor), Unit: "events/s",
			Ratio: perS(r.OneOrg) / perS(r.Floor), Target: fmt.Sprintf("≥ %.1f× floor", targetOneEventRatio),
			Pass: judge(perS(r.OneOrg) >= targetOneEventRatio*perS(r.Floor)), TurnRatios: turnRatios(r.OneOrg, r.Floor)},
		{What: "  its p99", Measured: ms64(r.OneOrg.Latency.P99), Floor: ms64(r.Floor.Latency.P99), Unit: "ms",
			Target: "≤ " + ms(targetOneEventP99), Pass: judge(r.OneOrg.Latency.P99 <= targetOneEventP99)},
		{What: "one-event recordUsage, 64 clients, 64 organisations", Measured: perS(r.ManyOrgs), Floor: perS(r.Floor), Unit: "events/s",
			Ratio: perS(r.ManyOrgs) / perS(r.Floor), Target: fmt.Sprintf("≥ %.1f× floor", targetOneEventRatio),
			Pass: judge(perS(r.ManyOrgs) >= targetOneEventRatio*perS(r.Floor)), TurnRatios: turnRatios(r.ManyOrgs, r.Floor)},
	}
	for _, row := range r.Batches {
		f := ingestFigure{What: fmt.Sprintf("recordUsage, %d-event batches", row.Batch), Measured: row.EventsPerSecond(),
			Floor: row.RowsPerSecond(), Unit: "events/s", Ratio: row.EventsPerSecond() / row.RowsPerSecond(), TurnRatios: turnRatios(row.API, row.Floor)}
		if row.Batch == 1000 {
			f.Target, f.Pass = fmt.Sprintf("≥ %.1f× floor", targetBatchRatio), judge(f.Ratio >= targetBatchRatio)
		}
		out = append(out, f)
	}
	sat := ingestFigure{What: "usageGate at saturation", Measured: perS(r.Gate[0]), Floor: perS(r.Bare[0]), Unit: "req/s",
		Ratio: perS(r.Gate[0]) / perS(r.Bare[0]), Target: fmt.Sprintf("≥ %.1f× bare", targetGateSatRatio), TurnRatios: turnRatios(r.Gate[0], r.Bare[0])}
	sat.Pass = judge(sat.Ratio >= targetGateSatRatio)
	out = append(out, sat)
	for _, rate := range ingestRates {
		g, b := r.Gate[rate], r.Bare[rate]
		f := ingestFigure{What: fmt.Sprintf("usageGate p99 at %d req/s", rate), Measured: ms64(g.Latency.P99), Floor: ms64(b.Latency.P99),
			Unit: "ms", Ratio: ratio(g.Latency.P99, b.Latency.P99), Target: fmt.Sprintf("≤ %.1f× bare", targetGateP99Ratio)}
		f.Pass = judge(f.Ratio <= targetGateP99Ratio && g.Dropped == 0)
		out = append(out, f)
	}
	out = append(out,
		ingestFigure{What: "peak RSS of the server (after all of this load)", Measured: float64(r.PeakRSS) / (1 << 20), Unit: "MiB",
			Target: "≤ " + mib(targetPeakRSS), Pass: judge(r.PeakRSS <= targetPeakRSS)},
		ingestFigure{What: "idle RSS of the server", Measured: float64(r.IdleRSS) / (1 << 20), Unit: "MiB",
			Target: "≤ " + mib(targetIdleRSS), Pass: judge(r.IdleRSS <= targetIdleRSS)},
		ingestFigure{What: "calls per group commit, one organisation", Measured: r.OneOrgGroup.Calls, Unit: "calls"},
		ingestFigure{What: "calls per group commit, 64 organisations", Measured: r.ManyOrgsGroup.Calls, Unit: "calls"},
		ingestFigure{What: "allocations per usageGate request", Measured: r.GateAllocs, Unit: fmt.Sprintf("allocs (%.1f KiB)", r.GateBytes/1024)},
		ingestFigure{What: "allocations per recorded event, one-event calls", Measured: r.EventAllocs1, Unit: fmt.Sprintf("allocs (%.1f KiB)", r.EventBytes1/1024)},
		ingestFigure{What: "allocations per recorded event, 1,000-event calls", Measured: r.EventAllocs1k, Unit: fmt.Sprintf("allocs (%.2f KiB)", r.EventBytes1k/1024)},
	)
	// A part left out by -ingest-parts has no figures.
	return slices.DeleteFunc(out, func(f ingestFigure) bool { return f.Measured == 0 && f.Floor == 0 })
}

// ratioText prints a ratio to two decimals, or to as many as four while
// fewer would round it onto a tenth: every target's line lies on a tenth,
// and 0.996 printed as "1.00×" beside MISS reads as a wrong verdict.
func ratioText(x float64) string {
	s := fmt.Sprintf("%.2f", x)
	for digits := 3; strings.HasSuffix(s, "0") && digits <= 4; digits++ {
		s = fmt.Sprintf("%.*f", digits, x)
	}
	return s + "×"
}

func ms64(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func printIngest(r ingestResult, o options) {
	fmt.Printf("\n5. Ingest at the floor: Tollgate alone in a server process, the load from this one; one-event recordUsage from %d clients beside "+
		"%d connections each running one durable single-event INSERT … ON CONFLICT DO NOTHING per transaction into copies of usage_event_keys and usage_events (pgbench's loop); "+
		"batches from %d clients beside a raw multi-row INSERT; usageGate beside `{ __typename }`; each figure and its floor measured in %d interleaved turns of %s\n",
		ingestClients, ingestClients, o.recordWorkers, ingestRounds, o.duration/ingestRounds)
	check("ingest one org", r.OneOrg)
	check("ingest 64 orgs", r.ManyOrgs)
	check("ingest single-row floor", r.Floor)
	check("ingest `{ __typename }` from 64 clients", r.BareOne)
	check("ingest bare net/http handler from 64 clients", r.NetHTTP)
	for _, row := range r.Batches {
		check(fmt.Sprintf("ingest batch %d", row.Batch), row.API)
		check(fmt.Sprintf("ingest raw insert %d", row.Batch), row.Floor)
	}
	for rate, x := range r.Gate {
		check(fmt.Sprintf("ingest gate %d", rate), x)
		check(fmt.Sprintf("ingest bare %d", rate), r.Bare[rate])
	}
	w := table()
	fmt.Fprintln(w, "what\tmeasured\tfloor\tratio\ttarget\tresult\t")
	for _, f := range r.figures() {
		floor, rat, verdict := "-", "-", ""
		if f.Floor != 0 {
			floor = fmt.Sprintf("%.1f", f.Floor)
		}
		if f.Ratio != 0 {
			rat = ratioText(f.Ratio)
		}
		if f.Pass != nil {
			verdict = map[bool]string{true: "PASS", false: "MISS"}[*f.Pass]
		}
		fmt.Fprintf(w, "%s\t%.1f %s\t%s\t%s\t%s\t%s\t\n", f.What, f.Measured, f.Unit, floor, rat, f.Target, verdict)
	}
	w.Flush()
	for _, f := range r.figures() {
		if len(f.TurnRatios) > 1 {
			turns := make([]string, len(f.TurnRatios))
			for i, x := range f.TurnRatios {
				turns[i] = fmt.Sprintf("%.2f", x)
			}
			fmt.Printf("   %s, turn by turn (each against the floor's turn of its round; their spread is this run's noise): %s×\n",
				strings.TrimSpace(f.What), strings.Join(turns, ", "))
		}
	}
	if o.ingests("one") {
		fmt.Printf("   one-event p50/p99: one org %s/%s, 64 orgs %s/%s, single-row floor %s/%s\n",
			ms(r.OneOrg.Latency.P50), ms(r.OneOrg.Latency.P99), ms(r.ManyOrgs.Latency.P50), ms(r.ManyOrgs.Latency.P99),
			ms(r.Floor.Latency.P50), ms(r.Floor.Latency.P99))
		for _, p := range []struct {
			what string
			g    GroupStages
		}{{"one org", r.OneOrgGroup}, {"64 orgs", r.ManyOrgsGroup}} {
			fmt.Printf("   group commit, %s (means): a call waits %.2f ms for its group; a group commits in %.2f ms, then mirrors to Redis in %.2f ms\n",
				p.what, p.g.WaitMs, p.g.CommitMs, p.g.PublishMs)
		}
		for _, p := range []struct {
			what string
			c    CPUPerOp
		}{{"one org", r.OneOrgCPU}, {"64 orgs", r.ManyOrgsCPU}, {"single-row floor", r.FloorCPU}} {
			fmt.Printf("   CPU per event (µs, /proc ticks), %s: server %.0f, Postgres %.0f, Redis %.0f, load generator %.0f, other %.0f; machine %.0f%% busy\n",
				p.what, p.c.Server, p.c.Postgres, p.c.Redis, p.c.Load, p.c.Other, 100*p.c.Busy)
		}
		if c := r.BareOneCPU; c.Busy > 0 {
			fmt.Printf("   CPU per request (µs, /proc ticks), `{ __typename }` from the same %d clients (%.0f req/s): server %.0f, Postgres %.0f, Redis %.0f, load generator %.0f, other %.0f; machine %.0f%% busy\n",
				ingestClients, r.BareOne.PerSecond(), c.Server, c.Postgres, c.Redis, c.Load, c.Other, 100*c.Busy)
			model, bound := oneEventBounds(r.FloorCPU, r.BareOneCPU, r.OneOrgCPU, r.ManyOrgsCPU)
			fmt.Printf("   the floor's CPU per row over Tollgate's per event, times Tollgate's busy share over the floor's: one org %.2f×, 64 orgs %.2f× (measured above: %.2f×, %.2f×)\n",
				model[0], model[1], r.OneOrg.PerSecond()/r.Floor.PerSecond(), r.ManyOrgs.PerSecond()/r.Floor.PerSecond())
			fmt.Printf("   the same were the server to spend on a one-event call no more than on `{ __typename }`: one org %.2f×, 64 orgs %.2f×\n",
				bound[0], bound[1])
		}
		if c := r.NetHTTPCPU; c.Busy > 0 && r.BareOneCPU.Busy > 0 {
			_, bound := oneEventBounds(r.FloorCPU, c, r.OneOrgCPU, r.ManyOrgsCPU)
			fmt.Printf("   a bare net/http handler answering a fixed body from the same %d clients (%.0f req/s): server %.0f µs a request; "+
				"were Tollgate's server to spend no more than it (no authentication, GraphQL or usage service): one org %.2f×, 64 orgs %.2f×\n",
				ingestClients, r.NetHTTP.PerSecond(), c.Server, bound[0], bound[1])
		}
	}
	for _, rate := range append(slices.Clone(ingestRates), 0) {
		if !o.ingests("gate") {
			break
		}
		load := fmt.Sprintf("open loop %d req/s", rate)
		if rate == 0 {
			load = fmt.Sprintf("closed loop %d workers", o.workers)
		}
		g, b := r.Gate[rate], r.Bare[rate]
		fmt.Printf("   %s: usageGate %.0f req/s p50 %s p99 %s (dropped %d); bare %.0f req/s p50 %s p99 %s (dropped %d)\n", load,
			g.PerSecond(), ms(g.Latency.P50), ms(g.Latency.P99), g.Dropped, b.PerSecond(), ms(b.Latency.P50), ms(b.Latency.P99), b.Dropped)
	}
}

// oneEventBounds is the one-event ratio as CPU predicts it (the floor's
// CPU per row over Tollgate's per event, times the share of the machine
// each kept busy), for one organisation and for 64: model as measured, and
// bound with the server's CPU per event replaced by what it spends on
// `{ __typename }`. Zero where a figure is missing.
func oneEventBounds(floor, bare CPUPerOp, phases ...CPUPerOp) (model, bound []float64) {
	total := func(c CPUPerOp) float64 { return c.Server + c.Postgres + c.Redis + c.Load + c.Other }
	for _, c := range phases {
		if floor.Busy <= 0 || c.Busy <= 0 || total(c) <= 0 {
			model, bound = append(model, 0), append(bound, 0)
			continue
		}
		scale := total(floor) * c.Busy / floor.Busy
		model = append(model, scale/total(c))
		bound = append(bound, scale/(total(c)-c.Server+bare.Server))
	}
	return model, bound
}
