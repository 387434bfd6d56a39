package usage

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/plans"
)

// PlanCache remembers each organisation's plan for a short time. The gate
// and the rate limiter run on every request and must not cost a database
// query each; a plan changes rarely, and a few seconds of delay in seeing a
// change is the price.
type PlanCache struct {
	src   PlanSource
	clock clock.Clock
	ttl   time.Duration

	mu      sync.RWMutex
	entries map[string]planEntry
	// loads collapses concurrent misses for one organisation into one query.
	loads singleflight.Group
}

var _ PlanSource = (*PlanCache)(nil)

type planEntry struct {
	plan    plans.Plan
	status  string
	expires time.Time
}

// maxPlanEntries is when expired entries are swept, so the cache stays near
// the number of recently active organisations.
const maxPlanEntries = 10000

// NewPlanCache caches src for ttl.
func NewPlanCache(src PlanSource, clk clock.Clock, ttl time.Duration) *PlanCache {
	return &PlanCache{src: src, clock: clk, ttl: ttl, entries: map[string]planEntry{}}
}

// PlanOf returns the cached plan and status, loading them when absent or
// stale.
func (c *PlanCache) PlanOf(ctx context.Context, orgID string) (plans.Plan, string, error) {
	now := c.clock.Now()
	c.mu.RLock()
	e, ok := c.entries[orgID]
	c.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.plan, e.status, nil
	}
	v, err, _ := c.loads.Do(orgID, func() (any, error) {
		// Shared by every caller waiting on this org: one that gives up
		// must not fail the others.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedLoadTimeout)
		defer cancel()
		p, status, err := c.src.PlanOf(ctx, orgID)
		if err != nil {
			return nil, err
		}
		e := planEntry{plan: p, status: status, expires: c.clock.Now().Add(c.ttl)}
		c.mu.Lock()
		if len(c.entries) >= maxPlanEntries {
			for id, old := range c.entries {
				if !now.Before(old.expires) {
					delete(c.entries, id)
				}
			}
		}
		c.entries[orgID] = e
		c.mu.Unlock()
		return e, nil
	})
	if err != nil {
		return plans.Plan{}, "", err
	}
	e = v.(planEntry)
	return e.plan, e.status, nil
}

// Clear forgets every plan.
func (c *PlanCache) Clear() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}

// Invalidate forgets an organisation's plan.
func (c *PlanCache) Invalidate(orgID string) {
	c.mu.Lock()
	delete(c.entries, orgID)
	c.mu.Unlock()
}
