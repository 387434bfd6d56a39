package app_test

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/app"
)

func TestGCPercentKeepsTheHeapGoalAboveTheMinimum(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live uint64
		want int
	}{
		{8 * mib, 700},   // 8 MiB × 8 = 64 MiB
		{64 * mib, 400},  // exactly at the minimum: plain GOGC 400 gives 320
		{1 * mib, 1500},  // counted as 4 MiB, or the runtime's 4 MiB × GOGC minimum would pass 64
		{0, 1500},        // before any measurement
		{500 * mib, 400}, // a large heap is never collected more often than GOGC 400
		{12 * mib, 433},  // 12 × 5.33 = 64
		{16 * mib, 400},  // 16 × 5 = 80 ≥ 64
		{2 * 1024 * mib, 400},
	} {
		if got := app.GCPercentFor(c.live, app.DefaultMinHeapGoal, app.DefaultGCPercent); got != c.want {
			t.Errorf("live %d MiB: GOGC %d, want %d", c.live/mib, got, c.want)
		}
	}
}

// TuneGC keeps retuning after every collection: with this test binary's
// small heap, GOGC ends up above 400 so that the goal stays near the
// minimum.
func TestTuneGCRaisesGOGCForASmallHeap(t *testing.T) {
	if os.Getenv("GOGC") != "" {
		t.Skip("GOGC is set; TuneGC leaves it alone")
	}
	// The tuner stays armed for the rest of this test binary (it cannot be
	// stopped); it only makes collections rarer. The memory limit is put back.
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	app.TuneGC()
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // cleanups run after the collection
		p := debug.SetGCPercent(-1)
		debug.SetGCPercent(p)
		if p > app.DefaultGCPercent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GOGC still %d after collections; the tuner did not raise it for a small heap", p)
		}
	}
}
