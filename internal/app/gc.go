package app

import (
	"os"
	"runtime/debug"
)

// DefaultGCPercent is the garbage collector's target when GOGC is unset.
// Tollgate's live heap is a few MiB while each request allocates tens of
// KiB, so Go's default of 100 collects many times a second under load and
// those pauses are most of the gate's p99 (measured with cmd/bench). 400
// trades a few MiB of heap for a fraction of the collections.
const DefaultGCPercent = 400

// TuneGC applies DefaultGCPercent unless GOGC says otherwise. The binary and
// the benchmark both call it, so they measure the same runtime.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
}
