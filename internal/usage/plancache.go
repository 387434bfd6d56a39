package usage

import (
	"context"
	"time"

	"github.com/tollgate-billing/tollgate/internal/cache"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/plans"
)

// PlanCache remembers each organisation's plan for a short time. The gate
// and the rate limiter run on every request and must not cost a database
// query each; a plan changes rarely, and a few seconds of delay in seeing a
// change is the price.
//
// An entry past half its TTL is read again in the background while it is
// still served, so under steady traffic no request waits for the database:
// before, every organisation's gates all waited on one plan query every TTL,
// which showed in their tail latency.
type PlanCache struct {
	src     PlanSource
	clock   clock.Clock
	ttl     time.Duration
	entries *cache.Cache[string, planEntry]
	// loads collapses concurrent loads for one organisation into one query.
	loads cache.Loads[planEntry]
}

var _ PlanSource = (*PlanCache)(nil)

type planEntry struct {
	plan   plans.Plan
	status string
	loaded time.Time
}

// maxPlanEntries bounds the cache near the number of recently active
// organisations.
const maxPlanEntries = 10000

// NewPlanCache caches src for ttl.
func NewPlanCache(src PlanSource, clk clock.Clock, ttl time.Duration) *PlanCache {
	return &PlanCache{src: src, clock: clk, ttl: ttl, entries: cache.New[string, planEntry](maxPlanEntries, ttl, clk)}
}

// PlanOf returns the cached plan and status, loading them when absent or
// stale.
func (c *PlanCache) PlanOf(ctx context.Context, orgID string) (plans.Plan, string, error) {
	if e, ok := c.entries.Get(orgID); ok {
		if c.clock.Now().Sub(e.loaded) >= c.ttl/2 {
			c.loads.Refresh(ctx, orgID, c.loader(orgID)) // refresh ahead; nobody waits
		}
		return e.plan, e.status, nil
	}
	e, err := c.loads.Do(ctx, orgID, c.loader(orgID))
	if err != nil {
		return plans.Plan{}, "", err
	}
	return e.plan, e.status, nil
}

// loader reads an organisation's plan into the cache.
func (c *PlanCache) loader(orgID string) func(context.Context) (planEntry, error) {
	return func(ctx context.Context) (planEntry, error) {
		// A change invalidated while this read runs may not be in it.
		gen := c.entries.Generation()
		loaded := c.clock.Now()
		p, status, err := c.src.PlanOf(ctx, orgID)
		if err != nil {
			return planEntry{}, err
		}
		e := planEntry{plan: p, status: status, loaded: loaded}
		c.entries.PutIfUnchanged(orgID, e, gen)
		return e, nil
	}
}

// Clear forgets every plan.
func (c *PlanCache) Clear() { c.entries.Clear() }

// Invalidate forgets an organisation's plan.
func (c *PlanCache) Invalidate(orgID string) { c.entries.Remove(orgID) }
