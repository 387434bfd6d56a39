package app

import (
	"os"
	"runtime/debug"
)

// Garbage collector defaults when GOGC and GOMEMLIMIT are unset. Tollgate's
// live heap is a few MiB while each request allocates tens of KiB, so Go's
// default GOGC=100 collects many times a second under load, and those pauses
// were most of the usageGate p99 in cmd/bench (3.8 ms at GOGC=100, 1.4 ms at
// 400, 1.0 ms at 800, at 2k req/s on 2 cores). 800 trades some tens of MiB of
// heap for that; the soft memory limit makes the collector work harder
// rather than let a large heap grow past it.
const (
	DefaultGCPercent   = 800
	DefaultMemoryLimit = 512 << 20
)

// TuneGC applies the defaults above unless GOGC or GOMEMLIMIT say otherwise.
// The binary and the benchmark both call it, so they measure the same
// runtime.
func TuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(DefaultMemoryLimit)
	}
}
