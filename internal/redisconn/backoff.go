package redisconn

import (
	"sync/atomic"
	"time"
)

// BackoffInterval is how long Redis is skipped after a failure, so an
// unreachable Redis costs one timeout per interval rather than one per
// request.
const BackoffInterval = time.Second

// Backoff is the "skip Redis for a second after a failure" rule that every
// Redis user with a database fallback follows. The zero value is ready: Redis
// is available.
type Backoff struct {
	downUntil atomic.Int64 // UnixNano; Redis is skipped before it
	faults    atomic.Uint64
}

// Available reports whether Redis should be tried at now.
func (b *Backoff) Available(now time.Time) bool { return now.UnixNano() >= b.downUntil.Load() }

// Fail records a failure at now and skips Redis for BackoffInterval. It
// reports whether this failure began an outage, so that callers log an
// outage once rather than once per request in flight.
func (b *Backoff) Fail(now time.Time) (began bool) {
	b.faults.Add(1)
	n := now.UnixNano()
	return b.downUntil.Swap(n+int64(BackoffInterval)) <= n
}

// Recovered makes Redis available again at once, after a call succeeded.
func (b *Backoff) Recovered() { b.downUntil.Store(0) }

// Faults counts the failures recorded.
func (b *Backoff) Faults() uint64 { return b.faults.Load() }
