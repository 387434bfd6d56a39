package auth

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/tollgate-billing/tollgate/internal/jobs"
)

const (
	// revokedPruneEvery is how often the retention job runs.
	revokedPruneEvery = time.Hour
	// revokedPruneBatch caps the rows one DELETE removes, so a backlog is
	// cleared in short transactions; on SQLite each one holds the only
	// write lock.
	revokedPruneBatch = 1000
)

// PruneRevoked deletes the API keys revoked before `before`, oldest first,
// and returns how many it deleted. Until then a revoked key stays listed
// (apiKeys) and is refused as revoked (API_KEY_REVOKED); once deleted, its
// secret or id is refused as any unknown key's is (API_KEY_INVALID), and
// revoking it again answers NOT_FOUND. Keys that are not revoked are never
// deleted. Each batch is its own statement; on error, the batches already
// deleted stay deleted and are counted.
func (k *Keys) PruneRevoked(ctx context.Context, before time.Time) (int64, error) {
	// Times are stored in UTC; SQLite compares them as text.
	before = before.UTC()
	// Walks api_keys_revoked_idx.
	n, err := k.db.DeleteInBatches(ctx, "api_keys",
		"SELECT id FROM api_keys WHERE revoked_at IS NOT NULL AND revoked_at < ? ORDER BY revoked_at LIMIT ?", revokedPruneBatch, before)
	if err != nil {
		return n, fmt.Errorf("prune api keys revoked before %s: %w", before.Format(time.RFC3339), err)
	}
	return n, nil
}

// KeepRevoked registers the retention job on runner and runs it every
// interval (hourly when zero or less) on River's leader, deleting the keys
// revoked more than retention ago as of the service's clock. Call it
// before the runner starts.
func (k *Keys) KeepRevoked(runner *jobs.Runner, retention, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		interval = revokedPruneEvery
	}
	if log == nil {
		log = slog.Default()
	}
	jobs.Register(runner, &revokedPruneWorker{k: k, retention: retention, log: log})
	runner.Every(interval, func() river.JobArgs { return revokedPruneArgs{} })
}

// revokedPruneArgs is the retention job. Two runs at once delete each key
// once.
type revokedPruneArgs struct{}

func (revokedPruneArgs) Kind() string { return "api_keys_prune" }

type revokedPruneWorker struct {
	river.WorkerDefaults[revokedPruneArgs]
	k         *Keys
	retention time.Duration
	log       *slog.Logger
}

func (w *revokedPruneWorker) Work(ctx context.Context, _ *river.Job[revokedPruneArgs]) error {
	before := w.k.clock.Now().Add(-w.retention)
	n, err := w.k.PruneRevoked(ctx, before)
	if n > 0 {
		w.log.InfoContext(ctx, "pruned revoked api keys", "deleted", n, "revoked_before", before.Format(time.RFC3339))
	}
	return err
}
