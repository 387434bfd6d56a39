package usage

import (
	"context"
	"fmt"
	"time"

	"github.com/tollgate-billing/tollgate/internal/observe"
)

// Gate is the answer to "may this organisation use more of this meter?".
type Gate struct {
	Allowed bool
	// Reason is ReasonOK when allowed, else why not.
	Reason string
	// RetryAfter is when a RATE_LIMITED gate may be asked again.
	RetryAfter time.Duration
	MeterUsage
	// PlanID is the effective plan.
	PlanID string
	// BillingStatus is the Stripe subscription status, "" without one.
	BillingStatus string
}

// Gate answers from the cached plan and the Redis counter: one round trip
// when both are warm. A Redis miss or failure reads the database rollup (and
// writes it back to Redis), so the answer is right either way.
//
// The gate asks about quantity more units (1 to MaxQuantity, the bound of
// one event), and answers as Consume of that quantity would be judged
// (admission, the same decision): usage under a soft limit, or an
// unlimited one, is allowed (the overage is billed, not refused) until the
// total would pass the largest countable value (math.MaxInt64), where
// Consume refuses the increase with QUANTITY_OUT_OF_RANGE and the gate
// answers USAGE_LIMIT_EXCEEDED.
//
// Each gate counts once against the plan's rate limit (when LimitRate was
// given one); over it, the answer is not allowed, with reason RATE_LIMITED
// and when to retry. A gate already refused for quota or billing costs no
// rate.
func (s *Service) Gate(ctx context.Context, orgID, meter string, quantity int64) (Gate, error) {
	start := time.Now()
	m, ok := s.catalog.Meter(meter)
	if !ok {
		return Gate{}, s.unknownMeter(meter)
	}
	if quantity < 1 || quantity > MaxQuantity {
		return Gate{}, badInput("quantity", fmt.Sprintf("quantity must be between 1 and %d", MaxQuantity))
	}
	plan, status, err := s.plans.PlanOf(ctx, orgID)
	if err != nil {
		return Gate{}, fmt.Errorf("usage gate for org %s: %w", orgID, err)
	}
	now := s.clock.Now()
	used, from, err := s.current(ctx, orgID, keyOf(m.Name, periodStart(m.Reset, now)))
	gateLatency(from).Observe(observe.Since(start))
	if err != nil {
		return Gate{}, fmt.Errorf("usage gate for org %s: %w", orgID, err)
	}
	mu := meterUsage(plan, m, used, now)
	g := Gate{Allowed: true, Reason: ReasonOK, MeterUsage: mu, PlanID: plan.ID, BillingStatus: status}
	switch {
	case s.inactive(status):
		g.Allowed, g.Reason = false, ReasonBillingInactive
	case admission(mu.Limit, used, quantity) != "":
		g.Allowed, g.Reason = false, ReasonUsageLimitExceeded
	default:
		if d := s.throttle(ctx, orgID, plan); !d.Allowed {
			g.Allowed, g.Reason, g.RetryAfter = false, ReasonRateLimited, d.RetryAfter
		}
	}
	return g, nil
}

// current is a period rollup's usage: from this replica's lease on its
// counter or from Redis when it has it, else from the database, warming
// Redis on the way.
func (s *Service) current(ctx context.Context, orgID string, k rollupKey) (used int64, from source, err error) {
	id := counterID{orgID, k}
	if n, from, ok := s.counters.get(ctx, id); ok {
		return n, from, nil
	}
	used, err = s.counters.warms.Do(ctx, s.counters.key(id), func(ctx context.Context) (int64, error) {
		gen := s.counters.generation()
		values, err := readCounters(s.db.WithContext(ctx), orgID, []rollupKey{k})
		if err != nil {
			return 0, err
		}
		if s.counters.available() {
			// A failure is already counted and logged; the answer stands.
			_ = s.counters.refresh(ctx, orgID, values, gen)
		}
		return values[k].used, nil
	})
	return used, fromDatabase, err
}
