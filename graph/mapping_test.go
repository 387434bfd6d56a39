package graph

import (
	"math"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/tollgate-billing/tollgate/internal/overage"
)

// TestUpcomingInvoiceTimesOutsideTheYearsAreNull: Stripe's preview of the
// next invoice is shown, not judged by stripein, so a period end or next
// attempt Tollgate cannot serve (past 9999, past time.Unix's room) is null
// rather than a time wrapped to some other year; a real one is served.
func TestUpcomingInvoiceTimesOutsideTheYearsAreNull(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	up := upcomingToModel(&overage.Upcoming{Stripe: &stripe.Invoice{
		PeriodStart: start.Unix(), PeriodEnd: math.MaxInt64, NextPaymentAttempt: 253402300800,
	}})
	st := up.Stripe
	if st.PeriodStart == nil || !st.PeriodStart.Equal(start) {
		t.Errorf("periodStart = %v, want %v", st.PeriodStart, start)
	}
	if st.PeriodEnd != nil || st.NextPaymentAttempt != nil {
		t.Errorf("periodEnd = %v, nextPaymentAttempt = %v, want both null", st.PeriodEnd, st.NextPaymentAttempt)
	}
}
