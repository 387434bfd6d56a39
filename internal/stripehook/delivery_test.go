package stripehook_test

import (
	"context"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripehook"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func TestSameEventDeliveredFiveTimesConcurrentlyHasOneEffect(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		s := newScenario(f)
		bodies := [][]byte{
			event("evt_"+s.sub+"_created", "customer.subscription.created", s.at(1), s.subscription("starter", "active", 1)),
			event("evt_"+s.sub+"_failed", "invoice.payment_failed", s.at(2), s.invoiceObj("open", 2)),
		}
		for _, body := range bodies {
			var wg sync.WaitGroup
			outcomes := make([]response, 5)
			for i := range outcomes {
				wg.Go(func() { outcomes[i] = f.deliver(body) })
			}
			wg.Wait()
			applied := 0
			for _, r := range outcomes {
				if r.Status != http.StatusOK {
					t.Fatalf("a delivery answered %d, want 200", r.Status)
				}
				switch r.Outcome {
				case "applied":
					applied++
				case "duplicate":
				default:
					t.Fatalf("outcome %q, want applied or duplicate", r.Outcome)
				}
			}
			if applied != 1 {
				t.Fatalf("%d deliveries applied the event, want exactly 1", applied)
			}
		}
		if n := f.count(&stripehook.WebhookEvent{}); n != 2 {
			t.Fatalf("%d events recorded, want 2", n)
		}
		if n := f.count(&billing.Subscription{}); n != 1 {
			t.Fatalf("%d subscriptions, want 1", n)
		}
		if n := f.count(&invoices.Invoice{}); n != 1 {
			t.Fatalf("%d invoices, want 1", n)
		}
		if st := f.state(s); st.Sub.Status != "past_due" || st.Invoice.Status != "open" {
			t.Fatalf("subscription %s, invoice %s; want past_due and open", st.Sub.Status, st.Invoice.Status)
		}
	})
}

func TestShuffledDeliveryEndsInTheSameState(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		inOrder := newScenario(f)
		for _, stp := range inOrder.steps() {
			f.mustDeliver(stp.body)
		}
		want := f.state(inOrder)
		if want.OrgPlan != "free" || want.Sub.Status != "canceled" || want.Invoice.Status != "paid" || want.Events != 6 {
			t.Fatalf("in-order final state %+v, want free, canceled, paid, 6 events", want)
		}
		for seed := uint64(1); seed <= 4; seed++ {
			s := newScenario(f)
			steps := s.steps()
			rand.New(rand.NewPCG(seed, seed)).Shuffle(len(steps), func(i, j int) { steps[i], steps[j] = steps[j], steps[i] })
			var order []string
			for _, stp := range steps {
				order = append(order, stp.name)
				f.mustDeliver(stp.body)
			}
			if got := f.state(s); !reflect.DeepEqual(got, want) {
				t.Fatalf("order %q ends in\n%+v\nwant\n%+v", order, got, want)
			}
		}
	})
}

func TestConcurrentEventsForOneNewSubscriptionEndInTheNewest(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		s := newScenario(f)
		plansByTime := []string{"starter", "growth", "starter", "growth", "starter", "growth"}
		var wg sync.WaitGroup
		for i, plan := range plansByTime {
			typ := "customer.subscription.updated"
			if i == 0 {
				typ = "customer.subscription.created"
			}
			body := event("evt_"+s.sub+"_"+plan+string(rune('a'+i)), typ, s.at(10+i), s.subscription(plan, "active", 10+i))
			wg.Go(func() {
				if r := f.deliver(body); r.Status != http.StatusOK {
					t.Errorf("delivery answered %d", r.Status)
				}
			})
		}
		wg.Wait()
		st := f.state(s)
		if n := f.count(&billing.Subscription{}); n != 1 {
			t.Fatalf("%d subscription rows, want 1", n)
		}
		if st.Sub.PlanID != "growth" || st.OrgPlan != "growth" || !st.Sub.LastEventAt.Equal(s.at(15)) {
			t.Fatalf("ended on plan %s (org %s) at %v, want growth from the newest event at %s",
				st.Sub.PlanID, st.OrgPlan, st.Sub.LastEventAt, s.at(15))
		}
	})
}

func TestEventsThatCreateOrPlaceTheSubscription(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		ctx := context.Background()

		t.Run("updated before created still creates the right row", func(t *testing.T) {
			s := newScenario(f)
			if out := f.mustDeliver(event("evt_"+s.sub+"_u", "customer.subscription.updated", s.at(5), s.subscription("growth", "active", 5))); out != "applied" {
				t.Fatalf("updated: %s", out)
			}
			if out := f.mustDeliver(event("evt_"+s.sub+"_c", "customer.subscription.created", s.at(1), s.subscription("starter", "incomplete", 1))); out != "stale" {
				t.Fatalf("late created: outcome %s, want stale", out)
			}
			st, _ := f.billing.Current(ctx, s.org)
			if st.Plan.ID != "growth" || st.Subscription.Status != "active" || st.Subscription.PriceID != "price_tollgate_growth_monthly" {
				t.Fatalf("plan %s status %s, want growth active", st.Plan.ID, st.Subscription.Status)
			}
		})
		t.Run("created and activated in the same second end active, in either order", func(t *testing.T) {
			for _, activatedFirst := range []bool{true, false} {
				s := newScenario(f)
				created := event("evt_"+s.sub+"_c", "customer.subscription.created", s.at(1), s.subscription("growth", "incomplete", 1))
				activated := event("evt_"+s.sub+"_u", "customer.subscription.updated", s.at(1), s.subscription("growth", "active", 1))
				order := [][]byte{created, activated}
				if activatedFirst {
					order = [][]byte{activated, created}
				}
				for _, body := range order {
					f.mustDeliver(body)
				}
				st, _ := f.billing.Current(ctx, s.org)
				if st.Plan.ID != "growth" || st.Subscription.Status != "active" {
					t.Fatalf("activated first %v: plan %s status %s, want growth active", activatedFirst, st.Plan.ID, st.Subscription.Status)
				}
			}
		})
		t.Run("a checkout for a linked customer stays with that customer's organisation", func(t *testing.T) {
			victim, owner := newScenario(f), newScenario(f)
			f.mustDeliver(event("evt_"+owner.sub+"_1", "checkout.session.completed", owner.at(1),
				checkoutObject("cs_"+owner.sub, owner.org, owner.customer, owner.sub, "starter", owner.at(1))))
			// The owner's customer pays through a link that names the victim.
			f.mustDeliver(event("evt_"+owner.sub+"_2", "checkout.session.completed", owner.at(2),
				checkoutObject("cs2_"+owner.sub, victim.org, owner.customer, owner.sub+"x", "growth", owner.at(2))))
			if o := orgOf(f, victim.org); o.StripeCustomerID != nil || o.PlanID != "free" {
				t.Fatalf("the named organisation got customer %v and plan %s", o.StripeCustomerID, o.PlanID)
			}
			if o := orgOf(f, owner.org); o.StripeCustomerID == nil || *o.StripeCustomerID != owner.customer {
				t.Fatalf("the customer's organisation lost its customer: %v", o.StripeCustomerID)
			}
		})
		t.Run("a checkout Tollgate did not create links nobody, whatever its client_reference_id", func(t *testing.T) {
			victim, payer := newScenario(f), newScenario(f)
			before := testutil.ToFloat64(billing.UntrustedCheckouts)
			// A Payment Link session: no metadata, a new customer, and a
			// client_reference_id the payer chose.
			obj := checkoutObject("cs_"+payer.sub, victim.org, payer.customer, payer.sub, "growth", payer.at(1))
			obj["metadata"] = map[string]any{}
			if out := f.mustDeliver(event("evt_"+payer.sub+"_pl", "checkout.session.completed", payer.at(1), obj)); out != "ignored" {
				t.Fatalf("outcome %q, want ignored", out)
			}
			if o := orgOf(f, victim.org); o.StripeCustomerID != nil || o.PlanID != "free" {
				t.Fatalf("the organisation named by client_reference_id got customer %v and plan %s", o.StripeCustomerID, o.PlanID)
			}
			var subs []billing.Subscription
			f.db.Where("org_id = ?", victim.org).Find(&subs)
			if len(subs) != 0 {
				t.Fatalf("stored a subscription for the named organisation: %+v", subs)
			}
			if got := testutil.ToFloat64(billing.UntrustedCheckouts) - before; got != 1 {
				t.Errorf("untrusted checkouts counted %v times, want 1", got)
			}
			if !strings.Contains(f.logs.String(), `"checkout_session_id":"cs_`+payer.sub+`"`) {
				t.Errorf("no log line names the ignored session:\n%s", f.logs.String())
			}
		})
		t.Run("an unlinked customer is found by metadata.org_id and linked", func(t *testing.T) {
			s := newScenario(f)
			f.mustDeliver(event("evt_"+s.sub+"_c", "customer.subscription.created", s.at(1), s.subscription("starter", "active", 1)))
			if o := orgOf(f, s.org); o.StripeCustomerID == nil || *o.StripeCustomerID != s.customer || o.PlanID != "starter" {
				t.Fatalf("org customer %v plan %s, want %s and starter", o.StripeCustomerID, o.PlanID, s.customer)
			}
		})
		t.Run("an invoice whose only clue is the subscription metadata finds its org", func(t *testing.T) {
			s := newScenario(f)
			f.mustDeliver(event("evt_"+s.invoice, "invoice.finalized", s.at(1), s.invoiceObj("open", 1)))
			var inv invoices.Invoice
			if err := f.db.Where("id = ?", s.invoice).Take(&inv).Error; err != nil || inv.OrgID != s.org {
				t.Fatalf("invoice org %q (err %v), want %s", inv.OrgID, err, s.org)
			}
		})
	})
}

func TestWellSignedEventsNobodyCanUseAreAcknowledged(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		now := time.Now().UTC()
		cases := []struct {
			name, outcome string
			body          []byte
		}{
			{"an event type Tollgate does not handle", "ignored",
				event("evt_unknown_type_"+store.NewID(), "customer.created", now, map[string]any{"id": "cus_x", "object": "customer"})},
			{"a subscription of a customer no organisation has", "unknown_org",
				event("evt_unknown_org_"+store.NewID(), "customer.subscription.updated", now,
					subscriptionObject(subSpec{id: "sub_nobody", customer: "cus_nobody", orgID: "no-such-org", plan: "starter", status: "active", created: now, periodStart: now}))},
			{"an invoice of a customer no organisation has", "unknown_org",
				event("evt_unknown_inv_"+store.NewID(), "invoice.paid", now,
					invoiceObject(invoiceSpec{id: "in_nobody", customer: "cus_nobody", status: "paid", created: now, paidAt: now, amount: 100}))},
			{"a payment-mode checkout", "ignored",
				event("evt_payment_checkout_"+store.NewID(), "checkout.session.completed", now, map[string]any{
					"id": "cs_pay", "object": "checkout.session", "mode": "payment", "customer": "cus_x"})},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				if out := f.mustDeliver(tc.body); out != tc.outcome {
					t.Fatalf("outcome %q, want %q", out, tc.outcome)
				}
			})
		}
		if n := f.count(&billing.Subscription{}) + f.count(&invoices.Invoice{}); n != 0 {
			t.Fatalf("stored %d rows for events nobody owns", n)
		}
		logs := f.logs.String()
		for _, want := range []string{`"event_id":"evt_unknown_type_`, `"type":"customer.created"`, `"outcome":"ignored"`, `"outcome":"unknown_org"`} {
			if !strings.Contains(logs, want) {
				t.Errorf("log lacks %s:\n%s", want, logs)
			}
		}
	})
}
