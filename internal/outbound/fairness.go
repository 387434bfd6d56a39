package outbound

import (
	"math/rand/v2"
	"sync"
	"time"
)

// MaxInFlightPerOrg is how many of one organisation's attempts this
// process sends at once. The River workers that send deliveries (ten) are
// shared by every organisation, and an attempt may hold one for its whole
// 5 s: without a bound, one organisation's receivers that never answer
// (or answer in 4.9 s) held every worker, and every other organisation's
// deliveries waited behind them (a probe measured 227 s for one event).
// With it, one organisation holds at most two workers; its other
// deliveries wait their turn, and other organisations' go out at once.
const MaxInFlightPerOrg = 2

// Bounds of how long a delivery waits for its organisation's turn before
// River offers it again. It waits about twice as long as the
// organisation's oldest attempt in flight has taken so far: a burst to
// fast receivers drains in steps of a tenth of a second, while deliveries
// queued behind receivers that take seconds are offered only every few
// seconds rather than fetched and put back many times a second.
const (
	minTurnWait = 100 * time.Millisecond
	maxTurnWait = attemptTimeout
)

// attemptTimeout is how long one attempt may take (newHTTPClient's).
const attemptTimeout = 5 * time.Second

// turns counts each organisation's attempts in flight in this process.
type turns struct {
	mu      sync.Mutex
	started map[string][]time.Time // by org, when each attempt in flight began
}

// take claims one of org's MaxInFlightPerOrg turns. ok is false when all
// are in use; then wait is how long the delivery should wait before it is
// offered again. done gives the turn back.
func (t *turns) take(org string) (done func(), wait time.Duration, ok bool) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.started == nil {
		t.started = map[string][]time.Time{}
	}
	running := t.started[org]
	if len(running) >= MaxInFlightPerOrg {
		var longest time.Duration
		for _, at := range running {
			longest = max(longest, now.Sub(at))
		}
		wait = min(max(2*longest, minTurnWait), maxTurnWait)
		// ±20% so that the deliveries waiting are not all offered at once.
		return nil, time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64())), false
	}
	t.started[org] = append(running, now)
	return func() { t.give(org, now) }, 0, true
}

// give ends the turn org took at started.
func (t *turns) give(org string, started time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	running := t.started[org]
	for i, at := range running {
		if at.Equal(started) {
			running = append(running[:i], running[i+1:]...)
			break
		}
	}
	if len(running) == 0 {
		delete(t.started, org)
		return
	}
	t.started[org] = running
}
