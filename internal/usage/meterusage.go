package usage

import "github.com/tollgate-billing/tollgate/internal/plans"

// MeterUsage is one meter's usage in a period beside the plan's limit on it.
type MeterUsage struct {
	Meter string
	Used  int64
	Limit plans.Limit
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

// Allowed reports whether more usage would be accepted: always under a soft
// limit or none, and below the limit under a hard one.
func (m MeterUsage) Allowed() bool { return admits(m.Limit, m.Used, 1) }

// admits reports whether an event of quantity q fits under a hard limit when
// used is already counted. Decreases always fit, so deleting a file is never
// refused, even over the limit after a downgrade.
func admits(l plans.Limit, used, q int64) bool {
	return !l.Hard || l.Unlimited || q <= 0 || used+q <= l.Limit
}
