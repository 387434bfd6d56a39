package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/tollgate-billing/tollgate/internal/jobs"
	"github.com/tollgate-billing/tollgate/internal/store"
)

const (
	// checkoutPruneEvery is how often the retention job runs.
	checkoutPruneEvery = time.Hour
	// checkoutPruneBatch caps the rows one DELETE removes, so a backlog is
	// cleared in short transactions; on SQLite each one holds the only
	// write lock.
	checkoutPruneBatch = 1000
)

// PruneCheckouts deletes the records of Checkout sessions that finished
// before `before`, oldest first, and returns how many it deleted. A
// session finished when its record was closed (expired, completed, refused
// or never sent: updated_at), or, still open or pending, when Stripe
// expired it, checkoutLifetime after it was recorded.
//
// The newest record of each organisation and customer is kept, whatever
// its age: it is what places a late subscription or invoice event of a
// customer not linked to the organisation otherwise (checkoutOpened), so
// what is kept grows with customers, not with checkouts.
//
// Each batch is its own statement; on error, the batches already deleted
// stay deleted and are counted.
func (s *Service) PruneCheckouts(ctx context.Context, before time.Time) (int64, error) {
	return pruneCheckouts(ctx, s.db, before, checkoutPruneBatch)
}

func pruneCheckouts(ctx context.Context, db *store.DB, before time.Time, batch int) (int64, error) {
	// Times are stored in UTC; SQLite compares them as text.
	before = before.UTC()
	// An open or pending record's updated_at is when it was recorded or
	// opened, moments apart, so both ranges walk
	// checkout_sessions_state_updated_idx.
	pick := `SELECT c.id FROM checkout_sessions c
		WHERE ((c.state = ? AND c.updated_at < ?) OR (c.state IN (?, ?) AND c.updated_at < ?))
		AND EXISTS (SELECT 1 FROM checkout_sessions n WHERE n.org_id = c.org_id AND n.customer_id = c.customer_id AND n.created_at > c.created_at)
		ORDER BY c.updated_at LIMIT ?`
	n, err := db.DeleteInBatches(ctx, "checkout_sessions", pick, batch,
		checkoutClosed, before, checkoutOpen, checkoutPending, before.Add(-checkoutLifetime))
	if err != nil {
		return n, fmt.Errorf("prune checkout sessions finished before %s: %w", before.Format(time.RFC3339), err)
	}
	return n, nil
}

// KeepCheckouts registers the retention job on runner and runs it every
// interval (hourly when zero or less) on River's leader, deleting what
// finished more than retention ago as of the service's clock. Call it
// before the runner starts.
func (s *Service) KeepCheckouts(runner *jobs.Runner, retention, interval time.Duration) {
	if interval <= 0 {
		interval = checkoutPruneEvery
	}
	jobs.Register(runner, &checkoutPruneWorker{s: s, retention: retention})
	runner.Every(interval, func() river.JobArgs { return checkoutPruneArgs{} })
}

// checkoutPruneArgs is the retention job. Two runs at once delete each
// record once.
type checkoutPruneArgs struct{}

func (checkoutPruneArgs) Kind() string { return "checkout_sessions_prune" }

type checkoutPruneWorker struct {
	river.WorkerDefaults[checkoutPruneArgs]
	s         *Service
	retention time.Duration
}

func (w *checkoutPruneWorker) Work(ctx context.Context, _ *river.Job[checkoutPruneArgs]) error {
	before := w.s.clock.Now().Add(-w.retention)
	n, err := w.s.PruneCheckouts(ctx, before)
	if n > 0 {
		w.s.log.InfoContext(ctx, "pruned checkout sessions", "deleted", n, "finished_before", before.Format(time.RFC3339))
	}
	return err
}
