package stripehook

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/store"
)

const (
	// DefaultRetention is how long an applied event's id is kept in
	// webhook_events. The id is only needed to recognise redeliveries, and
	// Stripe retries a delivery for at most three days; 30 days leaves a
	// wide margin for clock skew, late retries and manual resends.
	DefaultRetention = 30 * 24 * time.Hour

	// pruneInterval is how often RunPruner prunes after its first run.
	pruneInterval = time.Hour

	// pruneBatch caps the rows one DELETE removes, so that a large backlog
	// is cleared in many short transactions instead of one long one that
	// holds locks (on SQLite, the only writer) for its whole length.
	pruneBatch = 5000
)

// Prune deletes the records of events processed before `before`, oldest
// first, and returns how many it deleted. Each batch is its own statement
// and transaction; on error, the batches already deleted stay deleted and
// their rows are counted.
func Prune(ctx context.Context, db *store.DB, before time.Time) (int64, error) {
	return prune(ctx, db, before, pruneBatch)
}

func prune(ctx context.Context, db *store.DB, before time.Time, batch int) (int64, error) {
	// Times are stored in UTC; on SQLite they are compared as text, so the
	// bound must be UTC too.
	before = before.UTC()
	// Neither dialect has DELETE … LIMIT, so each batch picks its ids,
	// oldest first, in a subquery that walks webhook_events_processed_idx,
	// and deletes them by primary key. On Postgres the ids go through an
	// array: `id IN (subquery)` is planned as a hash join over a sequential
	// scan of the whole table, once per batch. SKIP LOCKED lets replicas
	// pruning at the same moment take different batches instead of queueing
	// behind one another.
	q := "DELETE FROM webhook_events WHERE id IN (SELECT id FROM webhook_events WHERE processed_at < ? ORDER BY processed_at LIMIT ?)"
	if db.Dialect == store.Postgres {
		q = "DELETE FROM webhook_events WHERE id = ANY (ARRAY(SELECT id FROM webhook_events WHERE processed_at < ? ORDER BY processed_at LIMIT ? FOR UPDATE SKIP LOCKED))"
	}
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		res := db.WithContext(ctx).Exec(q, before, batch)
		if res.Error != nil {
			return total, fmt.Errorf("prune webhook events processed before %s: %w", before.Format(time.RFC3339), res.Error)
		}
		total += res.RowsAffected
		if res.RowsAffected < int64(batch) {
			return total, nil
		}
	}
}

// RunPruner keeps webhook_events to the last `retention` (DefaultRetention
// when zero or less) until ctx ends: it prunes once at start and then every
// hour, taking "now" from clk. A failed prune is logged and retried at the
// next tick. Every replica may run it; concurrent prunes delete each row
// once.
func RunPruner(ctx context.Context, db *store.DB, clk clock.Clock, retention time.Duration, log *slog.Logger) {
	runPruner(ctx, db, clk, retention, pruneInterval, pruneBatch, log)
}

func runPruner(ctx context.Context, db *store.DB, clk clock.Clock, retention, every time.Duration, batch int, log *slog.Logger) {
	if retention <= 0 {
		retention = DefaultRetention
	}
	if clk == nil {
		clk = clock.Real{}
	}
	if log == nil {
		log = slog.Default()
	}
	clock.Every(ctx, every, func(ctx context.Context) {
		before := clk.Now().Add(-retention)
		n, err := prune(ctx, db, before, batch)
		if err != nil {
			if ctx.Err() != nil {
				return // shutting down
			}
			log.ErrorContext(ctx, "prune webhook events failed; will retry at the next run",
				"error", err, "deleted", n, "retention", retention.String())
			return
		}
		if n > 0 {
			log.InfoContext(ctx, "pruned webhook events", "deleted", n,
				"processed_before", before.Format(time.RFC3339), "retention", retention.String())
		}
	})
}
