package usage

import (
	"context"
	"fmt"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/ratelimit"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// Reasons a gate or a consumption gives for its answer.
const (
	ReasonOK                 = "OK"
	ReasonUsageLimitExceeded = string(apperr.UsageLimitExceeded)
	ReasonRateLimited        = string(apperr.RateLimited)
	// ReasonBillingInactive is given only when the plans file sets
	// block_unpaid and the subscription is past due or unpaid.
	ReasonBillingInactive = "BILLING_INACTIVE"
)

// RateLimiter counts a request against a rate per second. ratelimit.Limiter
// implements it; the usage service asks it for the plan's rate limit, which
// is an entitlement of the host's product enforced only where the host asks:
// Gate and Consume.
type RateLimiter interface {
	Allow(ctx context.Context, key string, perSecond int) ratelimit.Decision
}

// LimitRate makes Gate and Consume hold each organisation to its plan's
// rate. Without it (tests of quotas alone) no rate is enforced.
func (s *Service) LimitRate(r RateLimiter) { s.rate = r }

// throttle counts one call of the organisation against its plan's rate.
func (s *Service) throttle(ctx context.Context, orgID string, plan plans.Plan) ratelimit.Decision {
	if s.rate == nil {
		return ratelimit.Decision{Allowed: true}
	}
	return s.rate.Allow(ctx, "plan:"+orgID, plan.RateLimitPerSecond)
}

// inactive reports whether the plans file refuses usage in this billing
// status.
func (s *Service) inactive(status string) bool {
	return s.catalog.BlocksUnpaid() && (status == "past_due" || status == "unpaid")
}

// Consumption is the answer to a Consume call.
type Consumption struct {
	Allowed bool
	// Reason is ReasonOK when allowed, else why not.
	Reason string
	// RetryAfter is when a RATE_LIMITED call may be made again.
	RetryAfter time.Duration
	// Usage is the meter's usage after the call.
	Usage MeterUsage
}

// Consume checks and records one event in one durable step: the host's
// "may this customer do this, and if so count it".
//
//   - A refused call records nothing. An allowed one is durable before
//     Consume returns: it is recorded by Record, the same write path as
//     recordUsage, so hard limits are judged under the same lock and no
//     number of concurrent callers takes usage past them.
//   - A retried idempotency key that was counted answers allowed again (and
//     counts nothing more), even when the plan's rate or billing status
//     would now refuse a new call. A refused key was never claimed, so a
//     retry is judged afresh.
//   - A key counted for another event (another meter, quantity or
//     endpoint; see keys.go) is not a retry: it is refused with
//     CodeKeyReused on input.idempotencyKey, never answered allowed.
//   - Each call counts once against the plan's rate limit.
//
// Invalid input (unknown meter, bad quantity or key) is apperr.FieldErrors.
func (s *Service) Consume(ctx context.Context, orgID string, e Event) (Consumption, error) {
	e.Timestamp = nil // now: a check is about the present
	m, ok := s.catalog.Meter(e.Meter)
	if !ok {
		var fe apperr.FieldErrors
		fe.Add("input.meter", CodeUnknownMeter, s.unknownMeterMessage(e.Meter))
		return Consumption{}, fe.Err()
	}
	plan, status, err := s.plans.PlanOf(ctx, orgID)
	if err != nil {
		return Consumption{}, fmt.Errorf("consume usage for org %s: %w", orgID, err)
	}
	var refusal Consumption
	if s.inactive(status) {
		refusal = Consumption{Reason: ReasonBillingInactive}
	} else if d := s.throttle(ctx, orgID, plan); !d.Allowed {
		refusal = Consumption{Reason: ReasonRateLimited, RetryAfter: d.RetryAfter}
	}
	if refusal.Reason != "" {
		return s.refuseUnlessCounted(ctx, orgID, e, m, plan, refusal)
	}

	res, err := s.Record(ctx, orgID, []Event{e})
	if err != nil && apperr.CodeOf(err) != apperr.UsageLimitExceeded {
		if fe, ok := apperr.AsFieldErrors(err); ok {
			return Consumption{}, fe
		}
		return Consumption{}, err
	}
	c := Consumption{Usage: meterUsage(plan, m, 0, s.clock.Now())}
	for _, u := range res.Usage {
		if u.Meter == m.Name {
			c.Usage = u
		}
	}
	for _, r := range res.Rejected {
		if r.Code == CodeUsageLimitExceeded {
			c.Reason = ReasonUsageLimitExceeded
			return c, nil
		}
		var fe apperr.FieldErrors
		fe.Add(consumeField(r.Code), r.Code, r.Message)
		return Consumption{}, fe.Err()
	}
	c.Allowed, c.Reason = true, ReasonOK
	return c, nil
}

// refuseUnlessCounted answers a call refused before it reached Record: a
// retry of a key already counted is answered as the first call was.
func (s *Service) refuseUnlessCounted(ctx context.Context, orgID string, e Event, m plans.Meter, plan plans.Plan, refusal Consumption) (Consumption, error) {
	counted, first, err := s.counted(ctx, orgID, e.IdempotencyKey)
	if err != nil {
		return Consumption{}, fmt.Errorf("consume usage for org %s: %w", orgID, err)
	}
	if counted {
		if why := reuse(&pending{meter: m.Name, quantity: e.Quantity, endpoint: e.Endpoint}, first); why != "" {
			var fe apperr.FieldErrors
			fe.Add(consumeField(CodeKeyReused), CodeKeyReused, why)
			return Consumption{}, fe.Err()
		}
		refusal = Consumption{Allowed: true, Reason: ReasonOK}
	}
	now := s.clock.Now()
	used, _, err := s.current(ctx, orgID, keyOf(m.Name, periodStart(m.Reset, now)))
	if err != nil {
		return Consumption{}, fmt.Errorf("consume usage for org %s: %w", orgID, err)
	}
	refusal.Usage = meterUsage(plan, m, used, now)
	return refusal, nil
}

// counted reports whether an event with this key was recorded inside the
// idempotency window, and what the key's row says it was, read as Record's
// group reads it (readKeyPayloads). Only keys that can be stored are looked
// up; any other was never counted.
func (s *Service) counted(ctx context.Context, orgID, key string) (bool, keyPayload, error) {
	if key == "" || !store.StorableText(key) {
		return false, keyPayload{}, nil
	}
	p := &pending{org: orgID, key: key}
	rows, err := rollups{tx: s.db.WithContext(ctx), dialect: s.db.Dialect, now: s.clock.Now()}.readKeyPayloads([]*pending{p})
	first, ok := rows[p.eventID()]
	return ok, first, err
}

// consumeField names the input field a rejection of Record is about.
func consumeField(code string) string {
	switch code {
	case CodeUnknownMeter:
		return "input.meter"
	case CodeInvalidQuantity:
		return "input.quantity"
	case CodeMissingKey, CodeKeyTooLong, CodeInvalidKey, CodeKeyReused:
		return "input.idempotencyKey"
	case CodeEndpointTooLong, CodeInvalidEndpoint:
		return "input.endpoint"
	}
	return "input"
}
