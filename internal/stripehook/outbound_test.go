package stripehook_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/jobs"
	"github.com/tollgate-billing/tollgate/internal/outbound"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/stripehook"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// roomForEndpoints lets every organisation register endpoints, whatever
// plan the scenario has it on.
type roomForEndpoints struct{}

func (roomForEndpoints) PlanOf(context.Context, string) (plans.Plan, string, error) {
	return plans.Plan{ID: "growth", Webhooks: 3}, "active", nil
}

// announced is one event the host received.
type announced struct {
	Type     string          `json:"type"`
	OrgID    string          `json:"organization_id"`
	Sequence int64           `json:"sequence"`
	Data     json.RawMessage `json:"data"`
}

// emittingFixture is a fixture whose billing and invoices announce what
// they change through the outbound service, delivered by River to a real
// local receiver.
type emittingFixture struct {
	*fixture
	webhooks *outbound.Service
	received chan announced
}

func newEmittingFixture(t *testing.T, db *store.DB) *emittingFixture {
	t.Helper()
	ctx := context.Background()
	stub, url := newSubscriptionStub(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	runner, err := jobs.New(ctx, db, jobs.Config{Logger: quiet, FetchPollInterval: 20 * time.Millisecond, TestOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	webhooks := outbound.NewService(outbound.Options{DB: db, Jobs: runner, Plans: roomForEndpoints{}, Clock: clock.Real{}, Log: quiet})
	if err := runner.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = runner.Stop(ctx)
	})
	rec := stripetest.NewRecorder()
	b := billing.NewService(db, plans.Default(), clock.Real{}, stripetest.ClientAt(url, rec, 0), quiet)
	inv := invoices.NewService(db, clock.Real{}, quiet)
	b.EmitTo(webhooks)
	inv.EmitTo(webhooks)
	h := stripehook.NewHandler(stripehook.Config{DB: db, Billing: b, Invoices: inv, Secret: secret, Clock: clock.Real{}, Log: quiet})

	f := &emittingFixture{
		fixture: &fixture{t: t, db: db, handler: h, billing: b, rec: rec, logs: &stripetest.LogBuffer{}, stub: stub,
			t0: time.Now().UTC().Truncate(time.Second).Add(-time.Hour)},
		webhooks: webhooks,
		received: make(chan announced, 100),
	}
	return f
}

// receiver registers a real local HTTP receiver for the organisation's
// subscription and invoice events.
func (f *emittingFixture) receiver(orgID string) {
	f.t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a announced
		body, _ := io.ReadAll(r.Body)
		if json.Unmarshal(body, &a) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		f.received <- a
		w.WriteHeader(http.StatusNoContent)
	}))
	f.t.Cleanup(srv.Close)
	_, _, err := f.webhooks.CreateEndpoint(context.Background(), orgID, srv.URL+"/hooks",
		[]string{outbound.SubscriptionUpdated, outbound.InvoicePaid, outbound.InvoicePaymentFailed})
	if err != nil {
		f.t.Fatal(err)
	}
}

// receive waits for n events and returns them in sequence order. The
// timeout only bounds a broken test; the receiver's channel is the
// synchronisation.
func (f *emittingFixture) receive(n int) []announced {
	f.t.Helper()
	var got []announced
	for len(got) < n {
		select {
		case a := <-f.received:
			got = append(got, a)
		case <-time.After(30 * time.Second):
			f.t.Fatalf("received %d events within 30 s, want %d: %+v", len(got), n, got)
		}
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Sequence < got[j].Sequence })
	return got
}

// stored counts the organisation's recorded events and deliveries: each is
// written in the transaction of its fact, so once a webhook is answered the
// counts are final.
func (f *emittingFixture) stored(orgID string) (events, deliveries int64) {
	f.t.Helper()
	if err := f.db.Table("outbound_events").Where("org_id = ?", orgID).Count(&events).Error; err != nil {
		f.t.Fatal(err)
	}
	if err := f.db.Table("webhook_deliveries").Where("org_id = ?", orgID).Count(&deliveries).Error; err != nil {
		f.t.Fatal(err)
	}
	return events, deliveries
}

// expectedAnnouncements is what the host should hear, in order, from the
// scenario's steps: a subscription.updated whenever the plan or status a
// step leaves differs from the one before, the failed payment before the
// past_due it causes, and the paid invoice.
func expectedAnnouncements(s scenario) []announced {
	var want []announced
	data := func(v any) json.RawMessage {
		b, _ := json.Marshal(v)
		return b
	}
	invoice := func(status string, sec int) outbound.InvoiceData {
		obj := s.invoiceObj(status, sec)
		return outbound.InvoiceData{InvoiceID: s.invoice, Number: outbound.Optional(obj["number"].(string)), Status: status,
			AmountDue: obj["amount_due"].(int64), AmountPaid: obj["amount_paid"].(int64), Currency: "usd",
			HostedInvoiceURL: outbound.Optional(obj["hosted_invoice_url"].(string))}
	}
	plan, status := "free", ""
	// A status of none is null, not "": there was no subscription before
	// the first one.
	orNull := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	for i, stp := range s.steps() {
		switch stp.name {
		case "payment failed":
			want = append(want, announced{Type: outbound.InvoicePaymentFailed, Data: data(invoice("open", i+1))})
		case "invoice paid":
			want = append(want, announced{Type: outbound.InvoicePaid, Data: data(invoice("paid", i+1))})
		}
		if stp.plan != plan || stp.status != status {
			want = append(want, announced{Type: outbound.SubscriptionUpdated, Data: data(map[string]any{
				"plan": stp.plan, "status": orNull(stp.status), "previous_plan": plan, "previous_status": orNull(status)})})
			plan, status = stp.plan, stp.status
		}
	}
	return want
}

func TestStripeEventsAreAnnouncedOncePerFact(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newEmittingFixture(t, db)
		s := newScenario(f.fixture)
		f.stub.setObject(t, s.sub, s.subscription("starter", "active", 1))
		f.receiver(s.org)

		steps := s.steps()
		for _, stp := range steps {
			if out := f.mustDeliver(stp.body); out != "applied" {
				t.Fatalf("%s: outcome %q, want applied", stp.name, out)
			}
		}
		want := expectedAnnouncements(s)
		got := f.receive(len(want))
		for i, w := range want {
			g := got[i]
			if g.Sequence != int64(i+1) || g.OrgID != s.org || g.Type != w.Type {
				t.Fatalf("event %d: %s sequence %d for org %s; want %s sequence %d for %s (all: %+v)",
					i, g.Type, g.Sequence, g.OrgID, w.Type, i+1, s.org, got)
			}
			if !sameFields(t, w.Data, g.Data) {
				t.Fatalf("event %d (%s): data %s, want at least %s", i, g.Type, g.Data, w.Data)
			}
		}
		events, deliveries := f.stored(s.org)
		if events != int64(len(want)) || deliveries != int64(len(want)) {
			t.Fatalf("stored %d events and %d deliveries, want %d each", events, deliveries, len(want))
		}

		// Stripe redelivers every event, then sends a later invoice event
		// for the paid invoice and an older one it held back: nothing new
		// happened, so nothing more is announced.
		for _, stp := range steps {
			if out := f.mustDeliver(stp.body); out != "duplicate" {
				t.Fatalf("redelivered %s: outcome %q, want duplicate", stp.name, out)
			}
		}
		late := []struct {
			body    []byte
			outcome string
		}{
			{event("evt_"+s.sub+"_7", "invoice.payment_succeeded", s.at(7), s.invoiceObj("paid", 4)), "applied"},
			{event("evt_"+s.sub+"_8", "invoice.finalized", s.at(3), s.invoiceObj("open", 3)), "stale"},
		}
		for _, l := range late {
			if out := f.mustDeliver(l.body); out != l.outcome {
				t.Fatalf("late invoice event: outcome %q, want %q", out, l.outcome)
			}
		}
		if e, d := f.stored(s.org); e != events || d != deliveries {
			t.Fatalf("after redeliveries: %d events and %d deliveries, want still %d and %d", e, d, events, deliveries)
		}
		select {
		case a := <-f.received:
			t.Fatalf("received %+v after the redeliveries", a)
		default:
		}
	})
}

// sameFields reports whether every field of want has the same value in got.
func sameFields(t *testing.T, want, got json.RawMessage) bool {
	t.Helper()
	var w, g map[string]any
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	for k, v := range w {
		if gv, ok := g[k]; !ok || gv != v {
			return false
		}
	}
	return true
}
