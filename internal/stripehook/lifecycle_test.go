package stripehook_test

import (
	"context"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripehook"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// scenario is one organisation's subscription lifecycle, as Stripe delivers
// it, one event a second from the fixture's t0, so that two scenarios of one
// fixture have the same times and can be compared.
type scenario struct {
	org, customer, sub, invoice string
	t0                          time.Time
}

type step struct {
	name string
	body []byte
	// What the organisation looks like once the step is applied.
	plan, status, invoiceStatus string
}

// newScenario starts where every subscription starts: the organisation
// asked for a Checkout session for its customer, and Tollgate recorded it
// (cs_<sub>), so that the session's completion is one Tollgate created.
func newScenario(f *fixture) scenario {
	suffix := store.NewID()[:8]
	s := scenario{
		org: f.newOrg(), customer: "cus_" + suffix, sub: "sub_" + suffix, invoice: "in_" + suffix,
		t0: f.t0,
	}
	f.openCheckoutFor(s.org, "cs_"+s.sub, s.customer, true)
	return s
}

func (s scenario) at(sec int) time.Time { return s.t0.Add(time.Duration(sec) * time.Second) }

func (s scenario) subscription(plan, status string, sec int) map[string]any {
	spec := subSpec{id: s.sub, customer: s.customer, orgID: s.org, plan: plan, status: status,
		created: s.at(1), periodStart: s.at(1)}
	if status == "canceled" {
		ended := s.at(sec)
		spec.canceledAt = &ended
	}
	return subscriptionObject(spec)
}

func (s scenario) invoiceObj(status string, sec int) map[string]any {
	return invoiceObject(invoiceSpec{id: s.invoice, customer: s.customer, subscription: s.sub, orgID: s.org,
		status: status, created: s.at(3), paidAt: s.at(sec), amount: 19900})
}

func (s scenario) steps() []step {
	return []step{
		{"checkout completed", event("evt_"+s.sub+"_1", "checkout.session.completed", s.at(1),
			checkoutObject("cs_"+s.sub, s.org, s.customer, s.sub, "starter", s.at(1))), "starter", "active", ""},
		{"upgraded to growth", event("evt_"+s.sub+"_2", "customer.subscription.updated", s.at(2),
			s.subscription("growth", "active", 2)), "growth", "active", ""},
		{"payment failed", event("evt_"+s.sub+"_3", "invoice.payment_failed", s.at(3),
			s.invoiceObj("open", 3)), "growth", "past_due", "open"},
		{"invoice paid", event("evt_"+s.sub+"_4", "invoice.paid", s.at(4),
			s.invoiceObj("paid", 4)), "growth", "past_due", "paid"},
		{"subscription active again", event("evt_"+s.sub+"_5", "customer.subscription.updated", s.at(5),
			s.subscription("growth", "active", 5)), "growth", "active", "paid"},
		{"subscription deleted", event("evt_"+s.sub+"_6", "customer.subscription.deleted", s.at(6),
			s.subscription("growth", "canceled", 6)), "free", "canceled", "paid"},
	}
}

// state is what a scenario leaves behind, without its ids, so that two
// scenarios can be compared.
type state struct {
	OrgPlan, OrgCustomerSuffix string
	Sub                        billing.Subscription
	Invoice                    invoices.Invoice
	Events                     int64
}

func (f *fixture) state(s scenario) state {
	f.t.Helper()
	var st state
	org := orgOf(f, s.org)
	st.OrgPlan = org.PlanID
	if org.StripeCustomerID != nil {
		st.OrgCustomerSuffix = (*org.StripeCustomerID)[len("cus_"):]
		if *org.StripeCustomerID == s.customer {
			st.OrgCustomerSuffix = "the scenario's customer"
		}
	}
	f.db.Where("stripe_subscription_id = ?", s.sub).Take(&st.Sub)
	f.db.Where("id = ?", s.invoice).Take(&st.Invoice)
	f.db.Model(&stripehook.WebhookEvent{}).Where("id LIKE ?", "evt_"+s.sub+"_%").Count(&st.Events)
	st.Sub.ID, st.Sub.OrgID, st.Sub.StripeSubscriptionID, st.Sub.UpdatedAt = "", "", "", time.Time{}
	if st.Sub.StripeCustomerID == s.customer {
		st.Sub.StripeCustomerID = "the scenario's customer"
	}
	st.Invoice.ID, st.Invoice.OrgID, st.Invoice.StripeSubscriptionID, st.Invoice.StripeCustomerID = "", "", "", ""
	st.Invoice.Number, st.Invoice.HostedInvoiceURL, st.Invoice.PDFURL, st.Invoice.UpdatedAt = nil, nil, nil, time.Time{}
	return st
}

func orgOf(f *fixture, id string) orgs.Organization {
	f.t.Helper()
	var o orgs.Organization
	if err := f.db.Where("id = ?", id).Take(&o).Error; err != nil {
		f.t.Fatal(err)
	}
	return o
}

func TestLifecycleFromFreeToCanceled(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixtureOnStub(t, db)
		s := newScenario(f)
		// What Stripe answers when the completed checkout's subscription is
		// fetched: the scenario's, on the price Checkout sold.
		f.stub.setObject(t, s.sub, s.subscription("starter", "active", 1))
		ctx := context.Background()
		if st, err := f.billing.Current(ctx, s.org); err != nil || st.Plan.ID != "free" || st.Subscription != nil {
			t.Fatalf("before checkout: plan %s, subscription %v, err %v; want free and none", st.Plan.ID, st.Subscription, err)
		}
		for _, stp := range s.steps() {
			if out := f.mustDeliver(stp.body); out != "applied" {
				t.Fatalf("%s: outcome %q, want applied", stp.name, out)
			}
			st, err := f.billing.Current(ctx, s.org)
			if err != nil {
				t.Fatal(err)
			}
			if st.Plan.ID != stp.plan || st.Subscription == nil || st.Subscription.Status != stp.status {
				t.Fatalf("after %s: plan %s status %v; want %s %s", stp.name, st.Plan.ID, st.Subscription, stp.plan, stp.status)
			}
			if got := orgOf(f, s.org).PlanID; got != stp.plan {
				t.Fatalf("after %s: organizations.plan_id = %s, want %s", stp.name, got, stp.plan)
			}
			if !st.HasBillingHistory() || *st.Org.StripeCustomerID != s.customer {
				t.Fatalf("after %s: org customer %v, want %s linked at checkout", stp.name, st.Org.StripeCustomerID, s.customer)
			}
			var inv invoices.Invoice
			f.db.Where("id = ?", s.invoice).Find(&inv)
			if inv.Status != stp.invoiceStatus {
				t.Fatalf("after %s: invoice status %q, want %q", stp.name, inv.Status, stp.invoiceStatus)
			}
		}
		if n := len(f.rec.Matching("GET", "/v1/subscriptions/"+s.sub)); n != 1 {
			t.Fatalf("fetched the checkout's subscription %d times, want once", n)
		}
		var inv invoices.Invoice
		f.db.Where("id = ?", s.invoice).Take(&inv)
		if inv.OrgID != s.org || inv.AmountPaid != 19900 || inv.PaidAt == nil || !inv.PaidAt.Equal(s.at(4)) {
			t.Fatalf("invoice %+v, want the org's, paid 19900 at %s", inv, s.at(4))
		}
	})
}
