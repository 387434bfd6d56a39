package clock_test

import (
	"context"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/clock"
)

// A chore runs as soon as its loop starts (a replica does not wait an
// interval to prune or poll), and the loop ends when ctx does, without
// waiting for the next tick.
func TestEveryRunsAtOnceAndStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		clock.Every(ctx, time.Hour, func(context.Context) { calls <- struct{}{} })
	}()
	select {
	case <-calls:
	case <-time.After(10 * time.Second):
		t.Fatal("the chore did not run at once; it waited for the first hourly tick")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop kept running after its context ended")
	}
}
