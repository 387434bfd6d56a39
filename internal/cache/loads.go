package cache

import (
	"context"
	"time"

	"golang.org/x/sync/singleflight"
)

// SharedLoadTimeout bounds a load that several callers wait on.
const SharedLoadTimeout = 5 * time.Second

// Loads shares one load of a key among the callers that miss it at once
// (on golang.org/x/sync/singleflight): a busy key whose entry expires, or
// every key after a restart, costs one read of its source instead of one
// per caller in flight. It is safe for concurrent use; the zero value is
// ready.
type Loads[V any] struct{ g singleflight.Group }

// Do returns load's answer for key, from a load that a concurrent caller
// may have begun. The load runs under its own SharedLoadTimeout, detached
// from ctx's cancellation: it is shared by every caller waiting on it, and
// one that gives up must not fail the others.
func (l *Loads[V]) Do(ctx context.Context, key string, load func(context.Context) (V, error)) (V, error) {
	v, err, _ := l.g.Do(key, shared(ctx, load))
	return v.(V), err
}

// Refresh starts a load of key unless one is in flight, and returns at
// once: for a value that is still good but will not be for long.
func (l *Loads[V]) Refresh(ctx context.Context, key string, load func(context.Context) (V, error)) {
	l.g.DoChan(key, shared(ctx, load))
}

// shared is load on its own context, as Do describes.
func shared[V any](ctx context.Context, load func(context.Context) (V, error)) func() (any, error) {
	return func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), SharedLoadTimeout)
		defer cancel()
		return load(ctx)
	}
}
