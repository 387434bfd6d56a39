package outbound

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

const (
	// Retention is how long an event is kept, with its deliveries and
	// their attempts: long past the three days of retries, so that
	// webhookDeliveries shows a month of history.
	Retention = 30 * 24 * time.Hour

	// pruneEvery is how often the retention job runs.
	pruneEvery = time.Hour

	// pruneBatch caps the events one DELETE removes (with their deliveries
	// and attempts, by cascade), so a backlog is cleared in short
	// transactions; on SQLite each one holds the only write lock.
	pruneBatch = 1000
)

// Prune deletes the events created before `before`, with their deliveries
// and attempts, and returns how many events it deleted. An event with a
// delivery still pending (a replay of an old delivery) is kept until that
// delivery ends. Each batch is its own statement; on error, the batches
// already deleted stay deleted and are counted.
func (s *Service) Prune(ctx context.Context, before time.Time) (int64, error) {
	// Times are stored in UTC; SQLite compares them as text.
	before = before.UTC()
	q := `DELETE FROM outbound_events WHERE id IN (
		SELECT e.id FROM outbound_events e WHERE e.created_at < ?
		AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = ?)
		ORDER BY e.created_at LIMIT ?)`
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		res := s.db.WithContext(ctx).Exec(q, before, DeliveryPending, pruneBatch)
		if res.Error != nil {
			return total, fmt.Errorf("prune outbound events created before %s: %w", before.Format(time.RFC3339), res.Error)
		}
		total += res.RowsAffected
		if res.RowsAffected < pruneBatch {
			return total, nil
		}
	}
}

// SchedulePrune runs the retention job every interval (pruneEvery when
// zero or less) on River's leader. app calls it for serving replicas;
// tests choose their own interval.
func (s *Service) SchedulePrune(interval time.Duration) {
	if interval <= 0 {
		interval = pruneEvery
	}
	s.jobs.Every(interval, func() river.JobArgs { return pruneArgs{} })
}

// pruneArgs is the retention job. Two runs at once (a new leader while one
// is queued) delete each event once.
type pruneArgs struct{}

func (pruneArgs) Kind() string { return "outbound_prune" }

type pruneWorker struct {
	river.WorkerDefaults[pruneArgs]
	s *Service
}

// Work deletes what is older than Retention, as of the service's clock.
func (w *pruneWorker) Work(ctx context.Context, _ *river.Job[pruneArgs]) error {
	before := w.s.clock.Now().Add(-Retention)
	n, err := w.s.Prune(ctx, before)
	if n > 0 {
		w.s.log.InfoContext(ctx, "pruned outbound events", "deleted", n, "created_before", before.Format(time.RFC3339))
	}
	return err
}
