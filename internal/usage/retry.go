package usage

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/tollgate-billing/tollgate/internal/store"
)

// conflictAttempts is how often a transaction that Postgres aborted to break
// a deadlock or a serialization conflict is tried.
const conflictAttempts = 5

// retryConflicts runs fn again when the database aborted it for a conflict
// with a concurrent transaction (store.IsConflict). Lock ordering makes them rare,
// but a plan change between two concurrent batches can still cross them, and
// the aborted transaction wrote nothing.
func retryConflicts(ctx context.Context, fn func() error) error {
	var err error
	for attempt := range conflictAttempts {
		if err = fn(); err == nil || !store.IsConflict(err) {
			return err
		}
		backoff := time.Duration(attempt+1) * time.Duration(1+rand.IntN(5)) * time.Millisecond
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(backoff):
		}
	}
	return err
}
