package stripehook_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripehook"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

const (
	starterMonthly = "price_tollgate_starter_monthly"
	growthMonthly  = "price_tollgate_growth_monthly"
	growthYearly   = "price_tollgate_growth_yearly"
)

// A subscription's life, delivered as Stripe sends it in each API shape:
// the price the customer pays decides the plan, whatever metadata.plan_id
// Checkout left behind, and the period is the one of that price.
func TestThePriceDecidesThePlanInEveryShape(t *testing.T) {
	eachShape(t, func(t *testing.T, f *fixture, shape string) {
		s := newScenario(f)
		ctx := context.Background()
		legacy := "price_legacy_" + s.sub
		sub := func(price, status string, sec int, years, months int) subState {
			start := s.at(sec)
			return subState{price: price, status: status, metaPlan: "starter", periodStart: start, periodEnd: start.AddDate(years, months, 0)}
		}
		sold := sub(starterMonthly, "active", 1, 0, 1)
		f.stub.set(t, s.sub, s.setSubscription("2023-10-16", sold)) // what Stripe answers at checkout

		type want struct {
			plan, status, price string
			mismatch            bool
			period              subState
		}
		updated := func(n int, st subState) []byte {
			return realEvent(t, shape, "customer.subscription.updated", evtID(s, n), s.at(n), s.setSubscription(shape, st))
		}
		growthY, starterM, unknown, growthM := sub(growthYearly, "active", 2, 1, 0), sub(starterMonthly, "active", 3, 0, 1),
			sub(legacy, "active", 4, 0, 1), sub(growthMonthly, "active", 5, 0, 1)
		pastDue := growthM
		pastDue.status = "past_due"
		steps := []struct {
			name string
			body []byte
			want want
		}{
			{"checkout of starter monthly", realEvent(t, shape, "checkout.session.completed", evtID(s, 1), s.at(1), s.setCheckout("starter")),
				want{"starter", "active", starterMonthly, false, sold}},
			{"portal switch to growth yearly", updated(2, growthY), want{"growth", "active", growthYearly, false, growthY}},
			{"and back to starter monthly", updated(3, starterM), want{"starter", "active", starterMonthly, false, starterM}},
			{"a price the plans file does not list", updated(4, unknown), want{"starter", "active", legacy, true, unknown}},
			{"growth monthly again", updated(5, growthM), want{"growth", "active", growthMonthly, false, growthM}},
			{"payment failed", realEvent(t, shape, "invoice.payment_failed", evtID(s, 6), s.at(6),
				s.setInvoice(shape, "open", 19900, s.at(6), growthM.periodStart, growthM.periodEnd)), want{"growth", "past_due", growthMonthly, false, growthM}},
			{"the subscription says past due too", updated(7, pastDue), want{"growth", "past_due", growthMonthly, false, growthM}},
		}
		mismatches := testutil.ToFloat64(billing.PlanMismatches)
		for _, stp := range steps {
			if out := f.mustDeliver(stp.body); out != "applied" {
				t.Fatalf("%s: outcome %q, want applied", stp.name, out)
			}
			st, err := f.billing.Current(ctx, s.org)
			if err != nil {
				t.Fatal(err)
			}
			w, got := stp.want, st.Subscription
			if st.Plan.ID != w.plan || got == nil || got.Status != w.status || got.PriceID != w.price || got.PlanMismatch != w.mismatch {
				t.Fatalf("after %s: plan %s, subscription %+v; want plan %s, status %s, price %s, mismatch %v",
					stp.name, st.Plan.ID, got, w.plan, w.status, w.price, w.mismatch)
			}
			if got.CurrentPeriodStart == nil || !got.CurrentPeriodStart.Equal(w.period.periodStart) || !got.CurrentPeriodEnd.Equal(w.period.periodEnd) {
				t.Fatalf("after %s: period %v – %v, want %s – %s", stp.name, got.CurrentPeriodStart, got.CurrentPeriodEnd,
					w.period.periodStart, w.period.periodEnd)
			}
		}
		if n := f.stub.readsOf(s.sub); n != 1 {
			t.Errorf("fetched the checkout's subscription %d times, want once", n)
		}
		if got := testutil.ToFloat64(billing.PlanMismatches) - mismatches; got != 1 {
			t.Errorf("plan mismatches counted %v times, want 1", got)
		}
		logs := f.logs.String()
		for _, want := range []string{`"level":"ERROR"`, `"price_id":"` + legacy + `"`, `"plan_kept":"starter"`, "plan: starter → growth", "plan: growth → starter"} {
			if !strings.Contains(logs, want) {
				t.Errorf("logs lack %s", want)
			}
		}
		var inv invoices.Invoice
		if err := f.db.Where("id = ?", s.invoice).Take(&inv).Error; err != nil {
			t.Fatal(err)
		}
		if inv.StripeSubscriptionID != s.sub || inv.PeriodStart == nil || !inv.PeriodStart.Equal(growthM.periodStart) || !inv.PeriodEnd.Equal(growthM.periodEnd) {
			t.Fatalf("invoice subscription %q period %v – %v; want %s and its line's period %s – %s",
				inv.StripeSubscriptionID, inv.PeriodStart, inv.PeriodEnd, s.sub, growthM.periodStart, growthM.periodEnd)
		}
	})
}

// An invoice can arrive before anything links its customer: the only clue
// is the subscription metadata Tollgate set at Checkout, which basil moves
// under parent.subscription_details.
func TestAnInvoiceOfAnUnlinkedCustomerIsStoredInEveryShape(t *testing.T) {
	eachShape(t, func(t *testing.T, f *fixture, shape string) {
		s := newScenario(f)
		lineStart := s.at(1)
		lineEnd := lineStart.AddDate(0, 1, 0)
		if out := f.mustDeliver(realEvent(t, shape, "invoice.paid", evtID(s, 1), s.at(2),
			s.setInvoice(shape, "paid", 4900, s.at(2), lineStart, lineEnd))); out != "applied" {
			t.Fatalf("outcome %q, want applied", out)
		}
		var inv invoices.Invoice
		if err := f.db.Where("id = ?", s.invoice).Take(&inv).Error; err != nil {
			t.Fatalf("invoice not stored: %v", err)
		}
		if inv.OrgID != s.org || inv.StripeSubscriptionID != s.sub || inv.Status != "paid" || inv.AmountPaid != 4900 ||
			!inv.PeriodStart.Equal(lineStart) || !inv.PeriodEnd.Equal(lineEnd) {
			t.Fatalf("invoice %+v; want the org's, subscription %s, paid 4900, period %s – %s", inv, s.sub, lineStart, lineEnd)
		}
	})
}

// Each shape's subscription deleted event ends the plan.
func TestADeletedSubscriptionEndsThePlanInEveryShape(t *testing.T) {
	eachShape(t, func(t *testing.T, f *fixture, shape string) {
		s := newScenario(f)
		start := s.at(1)
		live := subState{price: growthYearly, status: "active", metaPlan: "growth", periodStart: start, periodEnd: start.AddDate(1, 0, 0)}
		ended := live
		ended.status = "canceled"
		f.mustDeliver(realEvent(t, shape, "customer.subscription.created", evtID(s, 1), s.at(1), s.setSubscription(shape, live)))
		if o := orgOf(f, s.org); o.PlanID != "growth" {
			t.Fatalf("after created: plan %s, want growth", o.PlanID)
		}
		f.mustDeliver(realEvent(t, shape, "customer.subscription.deleted", evtID(s, 2), s.at(2), s.setSubscription(shape, ended)))
		st, _ := f.billing.Current(context.Background(), s.org)
		if st.Plan.ID != "free" || st.Subscription == nil || st.Subscription.Status != "canceled" {
			t.Fatalf("after deleted: plan %s, subscription %+v; want free and canceled", st.Plan.ID, st.Subscription)
		}
	})
}

// The API version of each event is logged once and listed for /readyz.
func TestEachAPIVersionSeenIsLoggedOnce(t *testing.T) {
	f := newFixtureOnStub(t, testenv.DB(t))
	s := newScenario(f)
	for i := range 2 {
		f.mustDeliver(realEvent(t, "basil", "invoice.finalized", evtID(s, 10+i), s.at(10+i),
			s.setInvoice("basil", "open", 4900, s.at(10+i), s.at(1), s.at(1).AddDate(0, 1, 0))))
	}
	if n := strings.Count(f.logs.String(), `"api_version":"2025-03-31.basil"`); n > 1 {
		t.Errorf("the basil version was logged %d times, want at most once", n)
	}
	if !slices.Contains(stripehook.SeenAPIVersions(), "2025-03-31.basil") {
		t.Fatalf("seen versions %v lack 2025-03-31.basil", stripehook.SeenAPIVersions())
	}
}

func evtID(s scenario, n int) string { return fmt.Sprintf("evt_%s_%d", s.sub, n) }

// eachShape runs fn on both databases, once per payload shape, each on a
// fixture whose Stripe is a subscriptionStub.
func eachShape(t *testing.T, fn func(t *testing.T, f *fixture, shape string)) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		for _, shape := range shapes {
			t.Run(shape, func(t *testing.T) { fn(t, newFixtureOnStub(t, db), shape) })
		}
	})
}
