package app

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// Garbage collector defaults when GOGC and GOMEMLIMIT are unset.
//
// Tollgate's live heap is about 10 MiB under load (25 MiB with concurrent
// 1,000-event batches) while each request allocates 10–30 KiB. A goal
// proportional to the live heap alone (GOGC=100) then means tens of
// collections a second under load; when requests allocated several times
// what they do now, the usageGate p99 in cmd/bench was made almost entirely
// of requests caught by a collection (3.8 ms at GOGC=100).
//
// So the heap goal is never below DefaultMinHeapGoal: a small heap may grow
// that far between collections (by arithmetic about five a second at 11,000
// one-event recordUsage calls a second, each collection a few ms of one
// core's time in GODEBUG=gctrace=1), and a larger one gets GOGC=400. The soft
// memory limit bounds both; past it the collector works harder rather than
// let the heap grow.
//
// These once were a 192 MiB goal, GOGC 800 and a 224 MiB limit, which
// bought the gate's p99 with 240 MiB of RSS under load. Requests now
// allocate less (cmd/bench reports allocations per gate request and per
// recorded event), and on 2026-12-02 these values measured what the old
// ones did within the run-to-run spread (eight full runs of cmd/bench: gate
// p99 0.44–1.61× the bare endpoint's, one miss of its 1.5× line, as the
// old values also missed once in six alternating part runs; one-event and
// batch ratios unchanged), with the server's peak RSS at 145–163 MiB
// instead of 238–246.
const (
	DefaultGCPercent   = 400
	DefaultMemoryLimit = 160 << 20
	DefaultMinHeapGoal = 64 << 20
)

// TuneGC applies the defaults above unless GOGC or GOMEMLIMIT say otherwise.
// The binary and the benchmark both call it, so they measure the same
// runtime.
func TuneGC() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(DefaultMemoryLimit)
	}
	if os.Getenv("GOGC") == "" {
		t := &gcTuner{percent: DefaultGCPercent, minGoal: DefaultMinHeapGoal}
		t.sample = []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		// Until a collection has measured the live heap, plain GOGC.
		debug.SetGCPercent(t.percent)
		t.arm()
	}
}

// gcTuner sets GOGC after every collection so that the next goal is at least
// minGoal: GOGC = max(percent, minGoal/live - 100%). Go has no minimum-heap
// setting; this is the documented replacement for a heap ballast.
type gcTuner struct {
	percent int
	minGoal uint64
	sample  []metrics.Sample // only touched by the cleanup, one at a time
}

// GCPercentFor is the GOGC that makes the next heap goal at least minGoal
// for a live heap of live bytes, and never less than percent.
func GCPercentFor(live, minGoal uint64, percent int) int {
	// The runtime also scales its 4 MiB minimum heap by GOGC/100; counting
	// a smaller live heap as 4 MiB keeps that product within minGoal too.
	live = max(live, 4<<20)
	if need := int(minGoal*100/live) - 100; need > percent {
		return need
	}
	return percent
}

func (t *gcTuner) afterGC() {
	metrics.Read(t.sample)
	var live uint64
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	debug.SetGCPercent(GCPercentFor(live, t.minGoal, t.percent))
	t.arm()
}

func (t *gcTuner) arm() {
	// A cleanup runs after the collection that freed its object: arm the
	// next one on a fresh object (large enough not to share a tiny block).
	runtime.AddCleanup(new([64]byte), func(t *gcTuner) { t.afterGC() }, t)
}
