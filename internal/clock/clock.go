// Package clock gives every service its notion of "now", so that billing
// periods and signature windows can be tested by moving time instead of
// sleeping.
package clock

import (
	"context"
	"sync"
	"time"
)

// Clock tells the current time. Services take one instead of calling time.Now.
type Clock interface {
	Now() time.Time
}

// Real is the wall clock, in UTC.
type Real struct{}

// Now returns the current UTC time.
func (Real) Now() time.Time { return time.Now().UTC() }

// Fake is a settable clock for tests.
type Fake struct {
	mu  sync.Mutex
	now time.Time
}

// NewFake returns a clock frozen at t.
func NewFake(t time.Time) *Fake { return &Fake{now: t.UTC()} }

// Now returns the frozen time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Set moves the clock to t.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	f.now = t.UTC()
	f.mu.Unlock()
}

// Advance moves the clock forward by d.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// MonthStart is the first instant of t's UTC calendar month.
func MonthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// MonthEnd is the first instant of the UTC month after t's.
func MonthEnd(t time.Time) time.Time {
	return MonthStart(t).AddDate(0, 1, 0)
}

// Every calls fn at once and then every d until ctx ends: Tollgate's one
// loop for periodic chores in a replica. A call that outlasts d delays the
// next rather than piling calls up. The interval is wall time, not the
// injected clock's: a chore that compares times reads the clock itself.
func Every(ctx context.Context, d time.Duration, fn func(ctx context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		fn(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
