package app

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// Garbage collector defaults when GOGC and GOMEMLIMIT are unset.
//
// Tollgate's live heap is a few MiB while each request allocates tens of
// KiB. A goal proportional to the live heap alone (GOGC) then means many
// collections a second under load, and in cmd/bench the usageGate p99 was
// made almost entirely of requests caught by a collection: its
// stop-the-world phases took up to 2.6 ms on 2 busy cores, and its mark phase
// takes one of the two cores for several more. At GOGC=100 the p99 was
// 3.8 ms, at 800 about 1.0-1.6 ms with a collection every 0.75 s.
//
// So the heap goal is never below DefaultMinHeapGoal: a small heap is allowed
// to grow that far between collections, and a large one gets GOGC=800 as
// before. The soft memory limit bounds both; past it the collector works
// harder rather than let the heap grow. At 512 MiB it let GOGC=800 on the
// live heap of concurrent 1,000-event batches take the process to 580 MiB
// RSS; 224 MiB keeps RSS (the limit plus the binary's own pages) within
// 256 MiB, and stays above the minimum goal so an idle-sized heap is still
// collected rarely.
const (
	DefaultGCPercent   = 800
	DefaultMemoryLimit = 224 << 20
	DefaultMinHeapGoal = 192 << 20
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
