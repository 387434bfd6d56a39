package stripehook_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// shapes are the API-version shapes the fixtures come in.
var shapes = []string{"2023-10-16", "basil"}

// realEvent loads the fixture of an event type in a shape, gives it id and
// created time, and lets edit set what the scenario varies on its object.
func realEvent(t *testing.T, shape, typ, id string, created time.Time, edit func(obj map[string]any)) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "events", shape, typ+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	ev["id"], ev["created"] = id, created.Unix()
	edit(ev["data"].(map[string]any)["object"].(map[string]any))
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// subState is a subscription as a scenario describes it.
type subState struct {
	price, status string
	// metaPlan is metadata.plan_id: what Checkout sold, which the portal
	// never updates.
	metaPlan    string
	periodStart time.Time
	periodEnd   time.Time
}

// setSubscription makes a fixture subscription object the scenario's.
func (s scenario) setSubscription(shape string, st subState) func(map[string]any) {
	return func(o map[string]any) {
		o["id"], o["customer"], o["status"] = s.sub, s.customer, st.status
		o["created"], o["start_date"], o["billing_cycle_anchor"] = s.at(1).Unix(), s.at(1).Unix(), st.periodStart.Unix()
		o["metadata"] = map[string]any{"org_id": s.org, "plan_id": st.metaPlan}
		if st.status == "canceled" {
			o["canceled_at"], o["ended_at"] = st.periodStart.Unix(), st.periodStart.Unix()
		}
		items := o["items"].(map[string]any)["data"].([]any)
		item := items[0].(map[string]any)
		item["id"], item["subscription"] = "si_"+s.sub, s.sub
		price := item["price"].(map[string]any)
		price["id"] = st.price
		if shape == "basil" {
			item["current_period_start"], item["current_period_end"] = st.periodStart.Unix(), st.periodEnd.Unix()
		} else {
			o["current_period_start"], o["current_period_end"] = st.periodStart.Unix(), st.periodEnd.Unix()
		}
	}
}

// setInvoice makes a fixture invoice object the scenario's: status, amount
// and the period of its subscription line. The top-level period is the
// creation instant, as on a subscription's first invoice.
func (s scenario) setInvoice(shape, status string, amount int64, created, lineStart, lineEnd time.Time) func(map[string]any) {
	return func(o map[string]any) {
		o["id"], o["customer"], o["status"] = s.invoice, s.customer, status
		o["created"], o["period_start"], o["period_end"], o["effective_at"] = created.Unix(), created.Unix(), created.Unix(), created.Unix()
		paid := int64(0)
		var paidAt any
		if status == "paid" {
			paid, paidAt = amount, created.Unix()
		}
		o["amount_due"], o["total"], o["subtotal"], o["amount_paid"], o["amount_remaining"] = amount, amount, amount, paid, amount-paid
		o["status_transitions"] = map[string]any{"finalized_at": created.Unix(), "paid_at": paidAt, "voided_at": nil, "marked_uncollectible_at": nil}
		meta := map[string]any{"org_id": s.org}
		line := o["lines"].(map[string]any)["data"].([]any)[0].(map[string]any)
		line["amount"], line["period"] = amount, map[string]any{"start": lineStart.Unix(), "end": lineEnd.Unix()}
		if shape == "basil" {
			o["parent"].(map[string]any)["subscription_details"] = map[string]any{"subscription": s.sub, "metadata": meta}
			line["parent"].(map[string]any)["subscription_item_details"].(map[string]any)["subscription"] = s.sub
		} else {
			o["subscription"], o["subscription_details"] = s.sub, map[string]any{"metadata": meta}
			o["paid"] = status == "paid"
			line["subscription"] = s.sub
		}
	}
}

// setCheckout makes a fixture checkout session the scenario's.
func (s scenario) setCheckout(plan string) func(map[string]any) {
	return func(o map[string]any) {
		o["id"], o["customer"], o["subscription"], o["client_reference_id"] = "cs_"+s.sub, s.customer, s.sub, s.org
		o["created"] = s.at(1).Unix()
		o["metadata"] = map[string]any{"org_id": s.org, "plan_id": plan}
	}
}

// subscriptionStub answers GET /v1/subscriptions/:id with what the test
// says the subscription is at Stripe now, in the pinned API version's
// shape, so a subscription Tollgate fetches is the scenario's rather than
// stripe-mock's fixture. Other requests get 404.
type subscriptionStub struct {
	mu    sync.Mutex
	subs  map[string][]byte
	reads map[string]int
}

func newSubscriptionStub(t *testing.T) (*subscriptionStub, string) {
	st := &subscriptionStub{subs: map[string][]byte{}, reads: map[string]int{}}
	srv := httptest.NewServer(st)
	t.Cleanup(srv.Close)
	return st, srv.URL
}

// set makes the subscription's fixture, edited by the scenario, what Stripe
// answers.
func (st *subscriptionStub) set(t *testing.T, id string, edit func(map[string]any)) {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(realEvent(t, "2023-10-16", "customer.subscription.updated", "evt_unused", time.Now(), edit), &ev); err != nil {
		t.Fatal(err)
	}
	st.setObject(t, id, ev["data"].(map[string]any)["object"].(map[string]any))
}

// setObject makes obj what Stripe answers for the subscription.
func (st *subscriptionStub) setObject(t *testing.T, id string, obj map[string]any) {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	st.subs[id] = b
	st.mu.Unlock()
}

func (st *subscriptionStub) readsOf(id string) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.reads[id]
}

func (st *subscriptionStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/v1/subscriptions/")
	st.mu.Lock()
	body, found := st.subs[id]
	if ok && found && r.Method == http.MethodGet {
		st.reads[id]++
	}
	st.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !ok || !found || r.Method != http.MethodGet {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"No such subscription"}}`))
		return
	}
	_, _ = w.Write(body)
}
