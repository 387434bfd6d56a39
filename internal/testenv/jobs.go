package testenv

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/tollgate-billing/tollgate/internal/jobs"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// RunPeriodicJob starts a River runner on db with what schedule registers
// (a periodic job run on start, as KeepHistory-style functions schedule
// them), waits for the first run of the job of kind to finish and fails t
// unless it completed. The runner is stopped when t ends.
func RunPeriodicJob(t *testing.T, db *store.DB, kind string, schedule func(*jobs.Runner)) {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	runner, err := jobs.New(ctx, db, jobs.Config{Logger: quiet, FetchPollInterval: 20 * time.Millisecond, TestOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	schedule(runner)
	events, stop := runner.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled)
	t.Cleanup(func() {
		stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = runner.Stop(ctx)
	})
	if err := runner.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case ev := <-events:
			if ev.Job.Kind != kind {
				continue
			}
			if ev.Kind != river.EventKindJobCompleted {
				t.Fatalf("job %s: %s %v", kind, ev.Kind, ev.Job.Errors)
			}
			return
		case <-time.After(30 * time.Second):
			t.Fatalf("job %s did not finish within 30 s", kind)
		}
	}
}
