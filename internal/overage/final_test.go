package overage_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// subscriptionDeleted is Stripe's customer.subscription.deleted event for
// the organisation's subscription, which ended at end.
func (f *fixture) subscriptionDeleted(eventID string, end time.Time) []byte {
	f.t.Helper()
	start := time.Date(2026, 10, 10, 12, 0, 0, 0, time.UTC)
	b, err := json.Marshal(map[string]any{
		"id": eventID, "object": "event", "api_version": "2024-06-20", "created": end.Unix(),
		"type": "customer.subscription.deleted", "livemode": false, "pending_webhooks": 1,
		"data": map[string]any{"object": map[string]any{
			"id": f.sub, "object": "subscription", "customer": f.customer, "status": "canceled",
			"created": start.Unix(), "current_period_start": start.Unix(), "current_period_end": end.Unix(),
			"cancel_at_period_end": true, "canceled_at": start.AddDate(0, 0, 5).Unix(), "ended_at": end.Unix(),
			"livemode": false,
			"items": map[string]any{"object": "list", "has_more": false, "data": []any{map[string]any{
				"id": "si_" + f.sub, "object": "subscription_item",
				"price": map[string]any{"id": starterPriceID(f.currency), "object": "price", "currency": f.currency},
			}}},
		}},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// finalInvoices are the one-off invoices Tollgate asked Stripe to create,
// and the invoices it asked Stripe to finalize.
func (f *fixture) finalInvoices() (created, finalized []stripetest.Request) {
	for _, r := range f.rec.Matching(http.MethodPost, "/v1/invoices") {
		switch {
		case r.Path == "/v1/invoices":
			created = append(created, r)
		case strings.HasSuffix(r.Path, "/finalize"):
			finalized = append(finalized, r)
		}
	}
	return created, finalized
}

// finalInvoiceID is the invoice the organisation's charges were billed on,
// all on one.
func (f *fixture) finalInvoiceID() string {
	f.t.Helper()
	cs := f.charges()
	if len(cs) == 0 || cs[0].StripeInvoiceID == nil {
		f.t.Fatalf("no charge billed: %+v", cs)
	}
	return *cs[0].StripeInvoiceID
}

// checkOneFinalInvoice requires one final invoice, created once under a key
// naming the organisation and subscription, and finalized once.
func (f *fixture) checkOneFinalInvoice() {
	f.t.Helper()
	created, finalized := f.finalInvoices()
	if len(created) != 1 || len(finalized) != 1 {
		f.t.Fatalf("%d final invoices created, %d finalized; want one of each", len(created), len(finalized))
	}
	if k := created[0].IdempotencyKey; !strings.Contains(k, f.org) || !strings.Contains(k, f.sub) {
		f.t.Errorf("final invoice key %q does not name the organisation and subscription", k)
	}
	if form := created[0].Form; form.Get("customer") != f.customer || form.Get("currency") != f.currency {
		f.t.Errorf("final invoice asked for %v; want customer %s in %s", form, f.customer, f.currency)
	}
}

// A subscription cancelled at the period end bills, when Stripe deletes
// it, the closed month's overage and the overage of the month it ended in
// up to the end, on one final invoice, once.
func TestAnEndedSubscriptionsOverageIsBilledOnOneFinalInvoice(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db) // starter since October 10
		f.record("api_calls", 102_500)
		october := f.expect("api_calls", "2026-10", 102_500)
		f.clock.Set(time.Date(2026, 11, 5, 9, 0, 0, 0, time.UTC))
		f.record("api_calls", 101_200)
		f.record("llm_tokens", 1_000_000) // within the allowance: nothing to bill
		november := f.expect("api_calls", "2026-11", 101_200)

		end := time.Date(2026, 11, 5, 18, 0, 0, 0, time.UTC)
		f.clock.Set(end.Add(time.Minute))
		deleted := f.subscriptionDeleted("evt_"+store.NewID(), end)
		f.deliver(deleted)
		f.checkOneFinalInvoice()
		f.checkItems(f.finalInvoiceID(), october, november)

		// A redelivery, the same end announced under another event id,
		// and `stripe sync` later bill nothing more.
		f.deliver(deleted)
		f.deliver(f.subscriptionDeleted("evt_"+store.NewID(), end))
		f.clock.Set(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
		f.sync()
		f.checkOneFinalInvoice()
		f.checkItems(f.finalInvoiceID(), october, november)
	})
}

// A subscription cancelled at once through Tollgate is billed at once.
func TestASubscriptionCancelledAtOnceIsBilledOnAFinalInvoice(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.record("api_calls", 100_001)
		october := f.expect("api_calls", "2026-10", 100_001)
		f.clock.Set(time.Date(2026, 10, 20, 9, 0, 0, 0, time.UTC))
		st, err := f.billing.Cancel(context.Background(), f.org, false)
		if err != nil {
			t.Fatal(err)
		}
		if st.Subscription == nil {
			t.Fatal("no subscription after cancelling")
		}
		// stripe-mock answers with a customer of its own, which Tollgate
		// stores as Stripe's word: the bill goes to it.
		f.customer = st.Subscription.StripeCustomerID
		f.checkOneFinalInvoice()
		f.checkItems(f.finalInvoiceID(), october)
	})
}

// Nothing owed, no invoice.
func TestAnEndedSubscriptionOwingNothingGetsNoInvoice(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		f.record("api_calls", 100_000) // exactly the allowance
		end := time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)
		f.clock.Set(end)
		f.deliver(f.subscriptionDeleted("evt_"+store.NewID(), end))
		f.sync()
		if created, _ := f.finalInvoices(); len(created) != 0 || len(f.items()) != 0 {
			t.Fatalf("%d invoices and %d items created for an ended subscription owing nothing", len(created), len(f.items()))
		}
	})
}

// failFinalize answers Stripe's finalize of an invoice with a 500 until
// healed, as an outage between the items and the invoice would.
type failFinalize struct {
	mu     sync.Mutex
	healed bool
}

func (s *failFinalize) RoundTrip(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	fail := !s.healed && strings.HasSuffix(req.URL.Path, "/finalize")
	s.mu.Unlock()
	if !fail {
		return http.DefaultTransport.RoundTrip(req)
	}
	return &http.Response{StatusCode: http.StatusInternalServerError, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{"error":{"type":"api_error","message":"outage"}}`)), Request: req}, nil
}

// Stripe failing after the items are on the final invoice leaves the bill
// to `stripe sync`, which finalizes it and adds no item twice.
func TestAnInterruptedFinalBillIsFinishedBySync(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		stub := &failFinalize{}
		f := newFixtureTo(t, db, stub)
		f.record("api_calls", 100_001)
		october := f.expect("api_calls", "2026-10", 100_001)
		end := time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)
		f.clock.Set(end)
		f.deliverFailing(f.subscriptionDeleted("evt_"+store.NewID(), end))
		if _, finalized := f.finalInvoices(); len(finalized) == 0 {
			t.Fatal("the stub saw no finalize")
		}
		stub.mu.Lock()
		stub.healed = true
		stub.mu.Unlock()
		f.clock.Advance(time.Hour)
		f.sync()
		created, _ := f.finalInvoices()
		if len(created) != 1 {
			t.Fatalf("%d final invoices created, want 1", len(created))
		}
		f.checkItems(f.finalInvoiceID(), october)
	})
}
