package cache_test

import (
	"context"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/cache"
)

// A shared load runs on its own context: the caller that started it giving
// up does not cancel it, so the callers waiting on it still get its value.
// (Sharing itself is tested where it is used: auth, orgs, usage.)
func TestALoadOutlivesTheCallerThatStartedIt(t *testing.T) {
	var l cache.Loads[int]
	started, release := make(chan struct{}), make(chan struct{})
	caller, giveUp := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := l.Do(caller, "k", func(ctx context.Context) (int, error) {
			close(started)
			<-release
			return 7, ctx.Err()
		})
		done <- err
	}()
	<-started
	giveUp()
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the load saw its caller's cancellation: %v", err)
	}
}
