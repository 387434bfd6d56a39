package usage

import (
	"time"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/plans"
)

// MeterUsage is one meter's usage in a period beside the plan's limit on it.
type MeterUsage struct {
	Meter string
	Used  int64
	Limit plans.Limit
	// ResetAt is the end of the period, when a monthly meter starts again
	// from 0; zero for a meter that never resets.
	ResetAt time.Time
}

// meterUsage is m's usage in the period holding at, under plan's limit.
func meterUsage(plan plans.Plan, m plans.Meter, used int64, at time.Time) MeterUsage {
	mu := MeterUsage{Meter: m.Name, Used: used, Limit: limitOf(plan, m)}
	if m.Reset != plans.Never {
		mu.ResetAt = clock.MonthEnd(at)
	}
	return mu
}

// LimitValue is the limit, nil when the meter is unlimited.
func (m MeterUsage) LimitValue() *int64 {
	if m.Limit.Unlimited {
		return nil
	}
	v := m.Limit.Limit
	return &v
}

// Remaining is what is left before the limit, never below 0; nil when the
// meter is unlimited.
func (m MeterUsage) Remaining() *int64 {
	if m.Limit.Unlimited {
		return nil
	}
	v := max(m.Limit.Limit-m.Used, 0)
	return &v
}

// Overage is usage past a soft limit (billed, not refused); 0 within it and
// for hard or unlimited meters.
func (m MeterUsage) Overage() int64 {
	if m.Limit.Unlimited || m.Limit.Hard {
		return 0
	}
	return max(m.Used-m.Limit.Limit, 0)
}

// admission is what counting an event of quantity q would meet when used is
// already counted: "" when it fits, CodeQuantityOutOfRange when the total
// would pass the int64 range, CodeUsageLimitExceeded when it would pass a
// hard limit. It is the one decision of the gate (Gate, for its quantity) and of every
// write (judge, for recordUsage and consumeUsage), so the gate cannot
// answer allowed where consume would refuse. Decreases always fit under a
// limit, so deleting a file is never refused, even over the limit after a
// downgrade.
func admission(l plans.Limit, used, q int64) string {
	after, ok := checkedAdd(used, q)
	switch {
	case !ok:
		return CodeQuantityOutOfRange
	case l.Hard && !l.Unlimited && q > 0 && after > l.Limit:
		return CodeUsageLimitExceeded
	}
	return ""
}
