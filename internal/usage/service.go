// Package usage meters what organisations consume and holds them to their
// plan's quotas.
//
// What it offers:
//   - Record appends usage events once per idempotency key within the
//     idempotency window (at least 35 days, keys.go) and, in the same
//     transaction, updates the rollups per period, per endpoint and per day;
//     hard limits are checked under a row lock, so no interleaving of clients
//     can take usage past them, and running totals are checked against int64
//     overflow. Calls arriving while a commit is in flight are
//     written together by the next one (groupcommit.go).
//   - Usage, ByEndpoint and Series report from the rollups only, so their cost
//     does not grow with the number of events.
//   - Alerts fire once per meter, period and threshold, in the transaction
//     that counted the usage crossing the threshold (alerts.go).
//   - Gate answers "may this organisation use more?" from a Redis counter and
//     an in-process plan cache, falling back to the database when Redis misses
//     or fails. The database is always the truth; Redis only mirrors it.
//   - MaintainHistory, a River periodic job (KeepHistory), keeps raw events
//     in monthly partitions made ahead and drops those past their retention;
//     rollups are kept forever (history.go).
//
// Storage statements live in rollups.go, the Redis mirror in counters.go.
package usage

import (
	"context"
	"log/slog"
	"time"

	"github.com/tollgate-billing/tollgate/internal/cache"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// Limits on what one call may carry.
const (
	// MaxBatch is the most events one Record call takes.
	MaxBatch = 1000
	// MaxKeyLength and MaxEndpointLength are in characters.
	MaxKeyLength      = 255
	MaxEndpointLength = 255
	// MaxQuantity bounds one event's quantity (either sign): 8.8 trillion
	// (8 TiB of storage in one event), far above any real event. A batch
	// then sums to at most 2^53, which JavaScript clients read exactly, and
	// a counter needs a million maximal events to overflow int64.
	MaxQuantity = 1 << 43
	// FutureSkew is how far ahead of the server's clock an event's timestamp
	// may be, to tolerate clients whose clocks run fast.
	FutureSkew = 5 * time.Minute
	// MaxSeriesDays is the longest range Series answers.
	MaxSeriesDays = 366
	// MaxEndpointPage caps one page of ByEndpoint; DefaultEndpointPage is
	// a page when the caller names none.
	MaxEndpointPage     = 100
	DefaultEndpointPage = 20
	// PlanCacheTTL is how long the gate and Record trust a cached plan; a
	// plan change is seen within it, or at once after InvalidatePlan.
	PlanCacheTTL = 3 * time.Second
)

// PlanSource tells an organisation's effective plan and its Stripe
// subscription status ("" when it has none). Billing implements it.
type PlanSource interface {
	PlanOf(ctx context.Context, orgID string) (plans.Plan, string, error)
}

// Service records and reports usage.
type Service struct {
	db      *store.DB
	catalog *plans.Catalog
	plans   *PlanCache
	// history, when the PlanSource keeps one, judges back-dated events
	// (backdated.go).
	history  PlanHistory
	counters *counters
	clock    clock.Clock
	log      *slog.Logger
	// rate holds organisations to their plan's rate in Gate and Consume;
	// nil enforces none (see LimitRate).
	rate  RateLimiter
	group *groupCommitter
	// nearLimit holds the period totals lately found too close to a hard
	// limit for a group to be written by one statement (see writeGroup).
	nearLimit *cache.Cache[counterID, struct{}]
	// resyncEvery is how often Run looks for dirty counters.
	resyncEvery time.Duration

	// OnAlert, when set, hears of each usage alert in the transaction that
	// fires it (see alerts.go). Set it before the service records usage.
	OnAlert AlertHook
}

// NewService returns the usage service. rdb may be down at any time; the
// service then works from the database alone.
func NewService(db *store.DB, rdb *redisconn.Client, catalog *plans.Catalog, plansrc PlanSource, clk clock.Clock, log *slog.Logger) *Service {
	s := &Service{
		db:          db,
		catalog:     catalog,
		plans:       NewPlanCache(plansrc, clk, PlanCacheTTL),
		counters:    newCounters(rdb, clk, log),
		clock:       clk,
		log:         log,
		resyncEvery: resyncInterval,
		nearLimit:   cache.New[counterID, struct{}](nearLimitTotals, nearLimitTTL, clk),
	}
	s.history, _ = plansrc.(PlanHistory)
	s.group = &groupCommitter{commit: s.writeGroup, publish: s.publishGroup, slots: commitSlots(db.Dialect), overlap: overlapEvents}
	return s
}

// A total found too close to a hard limit for one statement is written by
// the transaction for nearLimitTTL; the service remembers up to nearLimitTotals.
const (
	nearLimitTTL    = time.Minute
	nearLimitTotals = 10_000
)

// commitSlots is how many groups commit at once. SQLite has one writer, so
// a second group would only wait for the connection. On Postgres a second
// group's statement waits in the pipe behind the first's (groupcommit.go);
// more would only split the calls into smaller groups.
func commitSlots(d store.Dialect) int {
	if d == store.Postgres {
		return 2
	}
	return 1
}

// LeaseGates sets how long a gate lease lasts (DefaultGateLease unless
// told; 0 turns leases off, so every gate reads Redis). Call it before Run.
func (s *Service) LeaseGates(ttl time.Duration) { s.counters.leases.ttl = ttl }

// PlanOf returns the organisation's plan through the service's short-lived
// cache. It satisfies PlanSource, so the rate limiter can share the cache.
func (s *Service) PlanOf(ctx context.Context, orgID string) (plans.Plan, string, error) {
	return s.plans.PlanOf(ctx, orgID)
}

// InvalidatePlan makes the next gate or Record read the organisation's plan
// afresh; billing calls it when a plan changes.
func (s *Service) InvalidatePlan(orgID string) { s.plans.Invalidate(orgID) }

// InvalidateAllPlans makes every organisation's plan be read afresh, when
// changes cannot be told apart (another replica announced too many, or Redis
// lost the announcements).
func (s *Service) InvalidateAllPlans() { s.plans.Clear() }

// RedisFaults counts failed Redis calls since start, for metrics.
func (s *Service) RedisFaults() uint64 { return s.counters.backoff.Faults() }

// limitOf is the plan's limit on a meter. A plan that does not name the meter
// (a catalogue changed under a running process) allows none of it, so a gap
// in configuration never grants unlimited usage.
func limitOf(p plans.Plan, m plans.Meter) plans.Limit {
	if l, ok := p.LimitFor(m.Name); ok {
		return l
	}
	return plans.Limit{Meter: m.Name, Hard: true, Reset: m.Reset}
}
