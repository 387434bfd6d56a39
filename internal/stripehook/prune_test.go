package stripehook_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/stripehook"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// seedEvents records one applied event per processed time and returns the
// ids, in order.
func seedEvents(t *testing.T, db *store.DB, prefix string, processed ...time.Time) []string {
	t.Helper()
	rows := make([]stripehook.WebhookEvent, len(processed))
	ids := make([]string, len(processed))
	for i, at := range processed {
		ids[i] = fmt.Sprintf("evt_%s_%03d", prefix, i)
		rows[i] = stripehook.WebhookEvent{ID: ids[i], Type: "invoice.paid", CreatedAt: at, ProcessedAt: at.UTC(), Outcome: "applied"}
	}
	if err := db.CreateInBatches(rows, 200).Error; err != nil {
		t.Fatal(err)
	}
	return ids
}

func storedEventIDs(t *testing.T, db *store.DB) []string {
	t.Helper()
	var ids []string
	if err := db.Model(&stripehook.WebhookEvent{}).Order("id").Pluck("id", &ids).Error; err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestPruneDeletesEventsProcessedBeforeTheCutoffInBatches(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		cutoff := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
		// 23 events older than the cutoff, some with fractions of a
		// second, down to a microsecond before it: more than four
		// batches of 5.
		var old []time.Time
		for i := range 22 {
			old = append(old, cutoff.Add(-time.Duration(i+1)*97*time.Minute-time.Duration(i)*1300*time.Microsecond))
		}
		old = append(old, cutoff.Add(-time.Microsecond))
		oldIDs := seedEvents(t, db, "old", old...)
		// At the cutoff and after it: kept.
		keptIDs := seedEvents(t, db, "kept",
			cutoff, cutoff.Add(time.Microsecond), cutoff.Add(1500*time.Millisecond), cutoff.AddDate(0, 0, 29))

		// The cutoff is given in another time zone, as a caller's might be.
		n, err := stripehook.PruneInBatches(ctx, db, cutoff.In(time.FixedZone("UTC-5", -5*3600)), 5)
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(len(oldIDs)) {
			t.Fatalf("pruned %d events, want the %d older than the cutoff", n, len(oldIDs))
		}
		if got := storedEventIDs(t, db); !slices.Equal(got, keptIDs) {
			t.Fatalf("left %q, want only the events at or after the cutoff %q", got, keptIDs)
		}

		// Nothing older is left, so pruning again deletes nothing; an exact
		// multiple of the batch size is cleared too.
		if n, err := stripehook.PruneInBatches(ctx, db, cutoff, 5); err != nil || n != 0 {
			t.Fatalf("second prune deleted %d (err %v), want 0", n, err)
		}
		more := seedEvents(t, db, "more", cutoff.Add(-time.Hour), cutoff.Add(-2*time.Hour), cutoff.Add(-3*time.Hour), cutoff.Add(-4*time.Hour))
		if n, err := stripehook.PruneInBatches(ctx, db, cutoff, 2); err != nil || n != int64(len(more)) {
			t.Fatalf("prune of two full batches deleted %d (err %v), want %d", n, err, len(more))
		}
		// The production batch size takes the rest.
		if n, err := stripehook.Prune(ctx, db, cutoff.AddDate(0, 0, 1)); err != nil || n != 3 {
			t.Fatalf("Prune deleted %d (err %v), want the 3 events of the cutoff's day", n, err)
		}
		if got := storedEventIDs(t, db); !slices.Equal(got, keptIDs[3:]) {
			t.Fatalf("left %q, want %q", got, keptIDs[3:])
		}
	})
}

func TestRedeliveryWithinRetentionIsStillADuplicateAfterPruning(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f := newFixture(t, db)
		s := newScenario(f)
		body := event("evt_"+s.sub+"_created", "customer.subscription.created", s.at(1), s.subscription("starter", "active", 1))
		if out := f.mustDeliver(body); out != "applied" {
			t.Fatalf("first delivery: outcome %q, want applied", out)
		}
		stale := seedEvents(t, db, "stale_"+s.sub, time.Now().Add(-stripehook.DefaultRetention-time.Hour))

		n, err := stripehook.Prune(ctx, db, time.Now().Add(-stripehook.DefaultRetention))
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("pruned %d events, want only %s", n, stale[0])
		}
		if out := f.mustDeliver(body); out != "duplicate" {
			t.Fatalf("redelivery after the prune: outcome %q, want duplicate", out)
		}
		if n := f.count(&billing.Subscription{}); n != 1 {
			t.Fatalf("%d subscriptions, want 1", n)
		}

		// What the retention protects: once an event's id is pruned, a
		// redelivery is no longer recognised as one.
		if _, err := stripehook.Prune(ctx, db, time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if out := f.mustDeliver(body); out == "duplicate" {
			t.Fatalf("redelivery of a pruned event answered duplicate; the test above proves nothing")
		}
	})
}

func TestPrunerRunsAtStartAndThenOnEachTickByTheInjectedClock(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
		fc := clock.NewFake(t0)
		ids := seedEvents(t, db, "tick",
			t0.Add(-40*24*time.Hour), // past the 30-day retention at start
			t0.Add(-10*24*time.Hour), // past it once the clock moves 25 days
			t0,                       // past it once the clock moves 56 days
		)
		logs := &stripetest.LogBuffer{}

		// With an hour between runs, only the start-up prune happens here.
		stop := startPruner(t, db, fc, time.Hour, logs)
		waitForEvents(t, db, ids[1:], "the start-up prune")
		stop()
		fc.Advance(25 * 24 * time.Hour)

		// Restarted with a short interval, the start-up prune takes the
		// second event, and a later run, reading the clock again, the third.
		stop = startPruner(t, db, fc, 10*time.Millisecond, logs)
		defer stop()
		waitForEvents(t, db, ids[2:], "the start-up prune 25 days later")
		fc.Advance(31 * 24 * time.Hour)
		waitForEvents(t, db, nil, "a run after the clock moved 31 more days")
		stop()
		// One line per prune that deleted something; the runs in between,
		// which found nothing, stay quiet.
		if got := strings.Count(logs.String(), `"msg":"pruned webhook events","deleted":1,`); got != 3 {
			t.Errorf("logged %d prunes of one event, want 3:\n%s", got, logs)
		}
	})
}

func TestPrunerLogsFailuresAndKeepsGoing(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		t0 := time.Now().UTC()
		ids := seedEvents(t, db, "fail", t0.Add(-31*24*time.Hour), t0)
		mustExec(t, db, "ALTER TABLE webhook_events RENAME TO webhook_events_away")
		logs := &stripetest.LogBuffer{}
		stop := startPruner(t, db, clock.NewFake(t0), 10*time.Millisecond, logs)
		defer stop()

		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(logs.String(), `"msg":"prune webhook events failed`) {
			if time.Now().After(deadline) {
				t.Fatalf("no failure logged while the table was away:\n%s", logs)
			}
			time.Sleep(5 * time.Millisecond)
		}
		mustExec(t, db, "ALTER TABLE webhook_events_away RENAME TO webhook_events")
		waitForEvents(t, db, ids[1:], "the first prune after the database recovered")
	})
}

// startPruner runs the pruner with the default retention and batches of 2;
// stop cancels it and waits for it to return (calling it again is a no-op).
func startPruner(t *testing.T, db *store.DB, c clock.Clock, every time.Duration, logs *stripetest.LogBuffer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		stripehook.RunPrunerEvery(ctx, db, c, 0, every, 2, slog.New(slog.NewJSONHandler(logs, nil)))
	}()
	return func() {
		cancel()
		<-done
	}
}

// waitForEvents waits until exactly want are stored (nil: none).
func waitForEvents(t *testing.T, db *store.DB, want []string, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := storedEventIDs(t, db)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, stored %q, want %q", what, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
