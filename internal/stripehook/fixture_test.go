package stripehook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/client"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/stripehook"
)

const secret = "whsec_tollgate_test"

type fixture struct {
	t       *testing.T
	db      *store.DB
	handler http.Handler
	billing *billing.Service
	rec     *stripetest.Recorder
	logs    *stripetest.LogBuffer
	t0      time.Time
	// stub, on fixtures from newFixtureOnStub, is the Stripe that
	// subscriptions are fetched from.
	stub *subscriptionStub
}

// newFixtureOnStub is a fixture whose Stripe is a subscriptionStub: a
// subscription Tollgate fetches is what the test set, not stripe-mock's.
func newFixtureOnStub(t *testing.T, db *store.DB) *fixture {
	t.Helper()
	stub, url := newSubscriptionStub(t)
	rec := stripetest.NewRecorder()
	logs := &stripetest.LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	h, b := newHandlerFor(db, stripetest.ClientAt(url, rec, 0), log)
	t0 := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	return &fixture{t: t, db: db, handler: h, billing: b, rec: rec, logs: logs, t0: t0, stub: stub}
}

func newFixture(t *testing.T, db *store.DB) *fixture {
	t.Helper()
	rec := stripetest.NewRecorder()
	logs := &stripetest.LogBuffer{}
	h, b := newHandler(t, db, rec, slog.New(slog.NewJSONHandler(logs, nil)))
	t0 := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	return &fixture{t: t, db: db, handler: h, billing: b, rec: rec, logs: logs, t0: t0}
}

// newHandler is the webhook endpoint on db, with the real services behind
// it and a Stripe client for stripe-mock whose requests rec records.
func newHandler(t testing.TB, db *store.DB, rec *stripetest.Recorder, log *slog.Logger) (http.Handler, *billing.Service) {
	t.Helper()
	return newHandlerFor(db, stripetest.Client(t, rec), log)
}

func newHandlerFor(db *store.DB, sc *client.API, log *slog.Logger) (http.Handler, *billing.Service) {
	b := billing.NewService(db, plans.Default(), clock.Real{}, sc, log)
	return stripehook.NewHandler(stripehook.Config{
		DB: db, Billing: b, Invoices: invoices.NewService(db, clock.Real{}, log),
		Secret: secret, Clock: clock.Real{}, Log: log,
	}), b
}

func (f *fixture) newOrg() string {
	f.t.Helper()
	id, err := orgs.NewService(f.db, clock.Real{}).Ensure(context.Background(), "ext-"+store.NewID(), "Acme", "")
	if err != nil {
		f.t.Fatal(err)
	}
	return id
}

type response struct {
	Status  int
	Outcome string
	// Field and Reason name the value of an invalid event.
	Field, Reason string
}

// deliver signs body now with the endpoint's secret and posts it.
func (f *fixture) deliver(body []byte) response {
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now()})
	return f.post(body, signed.Header)
}

func (f *fixture) post(body []byte, sigHeader string) response {
	req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(body))
	if sigHeader != "" {
		req.Header.Set("Stripe-Signature", sigHeader)
	}
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, req)
	var out struct{ Outcome, Field, Reason string }
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return response{Status: w.Code, Outcome: out.Outcome, Field: out.Field, Reason: out.Reason}
}

// mustDeliver delivers and requires a 200.
func (f *fixture) mustDeliver(body []byte) string {
	f.t.Helper()
	r := f.deliver(body)
	if r.Status != http.StatusOK {
		f.t.Fatalf("delivery answered %d, want 200: %s", r.Status, body)
	}
	return r.Outcome
}

func (f *fixture) count(model any) int64 {
	f.t.Helper()
	var n int64
	if err := f.db.Model(model).Count(&n).Error; err != nil {
		f.t.Fatal(err)
	}
	return n
}
