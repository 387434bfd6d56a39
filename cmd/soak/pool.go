package main

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// forEach runs fn for 0 ≤ i < n on at most workers goroutines at once, and
// stops handing out work at the first error, which it returns.
func forEach(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return fn(gctx, i) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Wait cancels gctx even on success; only the caller's ctx says whether
	// the work was cut short.
	return ctx.Err()
}
