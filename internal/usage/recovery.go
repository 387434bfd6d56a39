package usage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tollgate-billing/tollgate/internal/clock"
)

// resyncInterval is how often Run retries writing dirty counters back.
const resyncInterval = time.Second

// Run keeps the Redis mirror honest until ctx ends: whenever counters are
// dirty (a write to Redis failed) it writes their database values back, so a
// Redis that comes back after an outage serves exact counts again, and it
// retries a rebuild after a restart that RedisRestarted could not finish.
// It also keeps this replica's gate leases (leases.go) for as long as it
// runs, and gives them back when ctx ends. Start it once per process.
func (s *Service) Run(ctx context.Context) {
	go s.counters.leases.listen(ctx)
	clock.Every(ctx, s.resyncEvery, func(ctx context.Context) {
		if s.counters.stale.Load() {
			s.rebuildStale(ctx)
		}
		if s.counters.anyDirty.Load() {
			if err := s.ResyncCounters(ctx); err != nil && ctx.Err() == nil {
				s.log.DebugContext(ctx, "usage counters still dirty", "err", err)
			}
		}
	})
}

// ResyncCounters writes every dirty counter back to Redis from the database.
// It tries Redis even while failures have it skipped, since it is how the
// service finds out Redis is back.
func (s *Service) ResyncCounters(ctx context.Context) error {
	var errs []error
	for org, keys := range s.counters.dirtyByOrg() {
		if err := s.refreshCounters(ctx, org, keys); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RedisRestarted is told that Redis restarted, failed over or lost data:
// its counters may be older than the database (a snapshot) or gone. The gate
// reads the database until every counter has been rebuilt from the rollups,
// here and now, or by Run if this attempt fails.
func (s *Service) RedisRestarted(ctx context.Context) {
	s.counters.stale.Store(true)
	s.rebuildStale(ctx)
}

func (s *Service) rebuildStale(ctx context.Context) {
	if err := s.RebuildAllCounters(ctx); err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "usage counters not rebuilt after a Redis restart; the gate reads the database until they are", "err", err)
		}
		return
	}
	s.counters.stale.Store(false)
	s.log.InfoContext(ctx, "usage counters rebuilt from the rollups after a Redis restart")
}

// RebuildCounters rewrites the organisation's current-period counters in
// Redis from the database rollups, e.g. after Redis lost its data.
func (s *Service) RebuildCounters(ctx context.Context, orgID string) error {
	now := s.clock.Now()
	keys := make([]rollupKey, 0, len(s.catalog.Meters()))
	for _, m := range s.catalog.Meters() {
		keys = append(keys, keyOf(m.Name, periodStart(m.Reset, now)))
	}
	return s.refreshCounters(ctx, orgID, keys)
}

// RebuildAllCounters rebuilds the counters of every organisation with usage
// in the current month or on a meter that never resets.
func (s *Service) RebuildAllCounters(ctx context.Context) error {
	var orgs []string
	err := s.db.WithContext(ctx).Raw("SELECT DISTINCT org_id FROM usage_rollups WHERE period_start IN (?, ?)",
		clock.MonthStart(s.clock.Now()), allTime).Scan(&orgs).Error
	if err != nil {
		return fmt.Errorf("list organisations with usage: %w", err)
	}
	var errs []error
	for _, org := range orgs {
		if err := s.RebuildCounters(ctx, org); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Service) refreshCounters(ctx context.Context, orgID string, keys []rollupKey) error {
	gen := s.counters.generation()
	values, err := readCounters(s.db.WithContext(ctx), orgID, keys)
	if err != nil {
		return fmt.Errorf("rebuild usage counters of org %s: %w", orgID, err)
	}
	if err := s.counters.refresh(ctx, orgID, values, gen); err != nil {
		return fmt.Errorf("rebuild usage counters of org %s: %w", orgID, err)
	}
	return nil
}
