package main

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// op is one request of a load phase.
type op func(ctx context.Context) error

// run is what one load phase measured.
type run struct {
	Ops      int // completed without error
	Errors   int
	FirstErr error
	// Dropped counts open-loop sends skipped because maxInFlight requests
	// were still outstanding: the server had fallen behind the schedule.
	Dropped int
	Elapsed time.Duration
	// Latency is service time: from sending a request to having read all of
	// its response.
	Latency summary
	// Scheduled (open loop only) is measured from when the request was due
	// rather than when it left, so a stall shows in every request it
	// delayed instead of hiding as one slow sample (coordinated omission).
	Scheduled summary
	// Stalls (open loop only) are the machine stalls the probe saw during
	// the phase, and Clean the latency of the requests that overlapped none
	// of them; Excluded is how many did.
	Stalls   stallSummary
	Clean    summary
	Excluded int
	CPU      cpuShare
	// GCs is how many garbage collections ran during the phase, Alloc how
	// many bytes the process allocated (server and load generator).
	GCs   uint32
	Alloc uint64
	// Turns (interleaved phases only) is the completed operations per
	// second of each turn, in order.
	Turns []float64
}

// PerSecond is the completed operations per second.
func (r run) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// maxInFlight bounds the open-loop generator, so an overloaded server
// produces drops instead of an unbounded pile of goroutines.
const maxInFlight = 2048

type recorder struct {
	cpu                 cpuSample
	mem                 runtime.MemStats
	ok, failed, dropped atomic.Int64
	firstErr            error
	once                sync.Once
	latency, scheduled  latencies
	// spans are the successful requests' lifetimes, kept by open-loop
	// phases to set against the machine stalls.
	spansMu sync.Mutex
	spans   []interval
}

func (r *recorder) observe(err error, took time.Duration) bool {
	if err != nil {
		r.failed.Add(1)
		r.once.Do(func() { r.firstErr = err })
		return false
	}
	r.ok.Add(1)
	r.latency.add(took)
	return true
}

func newRecorder() *recorder {
	r := &recorder{cpu: sampleCPU()}
	runtime.ReadMemStats(&r.mem)
	return r
}

func (r *recorder) result(elapsed time.Duration) run {
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	return run{
		Ops: int(r.ok.Load()), Errors: int(r.failed.Load()), FirstErr: r.firstErr, Dropped: int(r.dropped.Load()),
		Elapsed: elapsed, Latency: r.latency.summary(), Scheduled: r.scheduled.summary(),
		CPU: r.cpu.since(), GCs: mem.NumGC - r.mem.NumGC, Alloc: mem.TotalAlloc - r.mem.TotalAlloc,
	}
}

// paced sends requests at a fixed rate for d whatever the responses do (an
// open loop), as independent clients would. A late wake-up of the generator
// sends the overdue requests at once, so the average rate stays exact. The
// result sets the requests against the machine stalls probe saw (nil: no
// probe, and Clean is the whole latency).
func paced(ctx context.Context, rate int, d time.Duration, probe *stallProbe, do op) run {
	rec := newRecorder()
	start := time.Now()
	pacedInto(ctx, rec, rate, d, do)
	r := rec.result(time.Since(start))
	if probe == nil {
		r.Clean = r.Latency
		return r
	}
	// Let the probe report a stall that ended with the phase.
	time.Sleep(10 * stallGap)
	stalls := probe.within(start, time.Now())
	r.Stalls = summarizeStalls(stalls)
	var clean latencies
	for _, sp := range rec.spans {
		if slices.ContainsFunc(stalls, func(st interval) bool { return st.overlaps(sp.from, sp.to) }) {
			r.Excluded++
			continue
		}
		clean.d = append(clean.d, sp.to.Sub(sp.from))
	}
	r.Clean = clean.summary()
	return r
}

// pacedInto sends paced's open-loop load for d into rec.
func pacedInto(ctx context.Context, rec *recorder, rate int, d time.Duration, do op) {
	every := time.Second / time.Duration(rate)
	total := int(d / every)
	var (
		wg       sync.WaitGroup
		inflight = make(chan struct{}, maxInFlight)
	)
	start := time.Now()
	for i := 0; i < total && ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * every)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		select {
		case inflight <- struct{}{}:
		default:
			rec.dropped.Add(1)
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-inflight; wg.Done() }()
			sent := time.Now()
			err := do(ctx)
			done := time.Now()
			if rec.observe(err, done.Sub(sent)) {
				rec.scheduled.add(done.Sub(due))
				rec.spansMu.Lock()
				rec.spans = append(rec.spans, interval{sent, done})
				rec.spansMu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// saturate runs workers that each send the next request as soon as the last
// one answered (a closed loop) for d: the most the server gives this many
// clients.
func saturate(ctx context.Context, workers int, d time.Duration, do op) run {
	return saturateEach(ctx, workers, d, func(int) op { return do })
}

// saturateEach is saturate with an op of its own for each worker.
func saturateEach(ctx context.Context, workers int, d time.Duration, opOf func(worker int) op) run {
	rec := newRecorder()
	start := time.Now()
	saturateInto(ctx, rec, workers, d, opOf)
	return rec.result(time.Since(start))
}

// saturateInto sends saturateEach's closed-loop load for d into rec.
func saturateInto(ctx context.Context, rec *recorder, workers int, d time.Duration, opOf func(worker int) op) {
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for w := range workers {
		do := opOf(w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				t0 := time.Now()
				err := do(ctx)
				rec.observe(err, time.Since(t0))
			}
		}()
	}
	wg.Wait()
}

// interleave measures phases that are to be compared (Tollgate and its
// floor) in turns: rounds rounds, each giving every phase d/rounds, so that
// each sees the same machine. On this VM a phase's throughput drifts by
// tens of percent within minutes, which back-to-back phases of 8 s turned
// into noise in their ratio. A phase sends its load into the recorder it
// is given for the time it is given. The runs hold operations, errors,
// elapsed time and latencies; their CPU, GC and allocation figures would
// mix the phases and are left zero.
func interleave(ctx context.Context, d time.Duration, rounds int, phases ...func(rec *recorder, d time.Duration)) []run {
	recs := make([]*recorder, len(phases))
	elapsed := make([]time.Duration, len(phases))
	for i := range recs {
		recs[i] = newRecorder()
	}
	turns := make([][]float64, len(phases))
	turn := d / time.Duration(rounds)
	for range rounds {
		for i, phase := range phases {
			if ctx.Err() != nil {
				break
			}
			start, before := time.Now(), recs[i].ok.Load()
			phase(recs[i], turn)
			took := time.Since(start)
			elapsed[i] += took
			turns[i] = append(turns[i], float64(recs[i].ok.Load()-before)/took.Seconds())
		}
	}
	runs := make([]run, len(phases))
	for i, rec := range recs {
		r := rec.result(elapsed[i])
		r.CPU, r.GCs, r.Alloc = cpuShare{}, 0, 0
		r.Clean = r.Latency
		r.Turns = turns[i]
		runs[i] = r
	}
	return runs
}

// sequential runs n requests one after another: the latency of a single
// client on an otherwise idle server.
func sequential(ctx context.Context, n int, do op) run {
	rec := newRecorder()
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		t0 := time.Now()
		err := do(ctx)
		rec.observe(err, time.Since(t0))
	}
	return rec.result(time.Since(start))
}

// alternate runs n requests of a and of b, one after the other in turn, so
// that whatever else the machine does falls on both alike.
func alternate(ctx context.Context, n int, a, b op) (run, run) {
	ra, rb := newRecorder(), newRecorder()
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		t0 := time.Now()
		err := a(ctx)
		ra.observe(err, time.Since(t0))
		t0 = time.Now()
		err = b(ctx)
		rb.observe(err, time.Since(t0))
	}
	elapsed := time.Since(start)
	return ra.result(elapsed), rb.result(elapsed)
}
