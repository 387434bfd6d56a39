package outbound_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/jobs"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/outbound"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// fixedPlan is a PlanSource giving every organisation one plan.
type fixedPlan struct{ plan plans.Plan }

func (f fixedPlan) PlanOf(context.Context, string) (plans.Plan, string, error) {
	return f.plan, "active", nil
}

type harness struct {
	db     *store.DB
	clock  *clock.Fake
	runner *jobs.Runner
	svc    *outbound.Service
	org    string
	ext    string // org's external id, the `org` claim
	events <-chan *river.Event
}

// newHarness builds the service in development mode on db, with room for
// `webhooks` endpoints, and starts its jobs.
func newHarness(t *testing.T, db *store.DB, webhooks int) *harness {
	t.Helper()
	return newHarnessWith(t, db, webhooks, func(*outbound.Options) {})
}

// newHarnessWith is newHarness with the service's options changed by set.
func newHarnessWith(t *testing.T, db *store.DB, webhooks int, set func(*outbound.Options)) *harness {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := &harness{db: db, clock: clock.NewFake(time.Now())}
	var err error
	h.runner, err = jobs.New(ctx, db, jobs.Config{Logger: quiet, FetchPollInterval: 20 * time.Millisecond, TestOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	opts := outbound.Options{
		DB: db, Jobs: h.runner, Clock: h.clock, Log: quiet,
		Plans: fixedPlan{plans.Plan{ID: "growth", Name: "Growth", Webhooks: webhooks}},
	}
	set(&opts)
	h.svc = outbound.NewService(opts)
	var stop func()
	h.events, stop = h.runner.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled)
	if err := h.runner.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = h.runner.Stop(ctx)
	})
	h.ext = "ext-" + store.NewID()
	h.org, err = orgs.NewService(db, h.clock).Ensure(ctx, h.ext, "Acme", "billing@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) endpoint(t *testing.T, url string, events ...string) (outbound.Endpoint, string) {
	t.Helper()
	ep, secret, err := h.svc.CreateEndpoint(context.Background(), h.org, url, events)
	if err != nil {
		t.Fatalf("create endpoint %s: %v", url, err)
	}
	return ep, secret
}

func (h *harness) emit(t *testing.T, eventType string, data any) {
	t.Helper()
	err := h.db.Tx(context.Background(), func(tx *gorm.DB) error {
		return h.svc.Emit(context.Background(), tx, h.org, eventType, data)
	})
	if err != nil {
		t.Fatalf("emit %s: %v", eventType, err)
	}
}

// next waits for River's next job outcome in this process. The timeout only
// bounds a broken test; the event itself is the synchronisation.
func (h *harness) next(t *testing.T) *river.Event {
	t.Helper()
	select {
	case ev := <-h.events:
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no job finished within 30 s")
		return nil
	}
}

func (h *harness) deliveries(t *testing.T, endpointID string) []outbound.Delivery {
	t.Helper()
	ds, err := h.svc.Deliveries(context.Background(), h.org, endpointID, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// request is what a receiver got.
type request struct {
	header http.Header
	body   []byte
	path   string
}

// receiver is a real local HTTP server answering with respond(n) to its
// n-th request (from 1) and passing every request to got.
type receiver struct {
	*httptest.Server
	got chan request
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter)) *receiver {
	t.Helper()
	r := &receiver{got: make(chan request, 100)}
	var n atomic.Int64
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.got <- request{header: req.Header.Clone(), body: body, path: req.URL.Path}
		respond(int(n.Add(1)), w)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) next(t *testing.T) request {
	t.Helper()
	select {
	case got := <-r.got:
		return got
	case <-time.After(30 * time.Second):
		t.Fatal("receiver got nothing within 30 s")
		return request{}
	}
}

// hangUp closes the connection without an answer, as a receiver that is
// down or crashing does.
func hangUp(_ int, w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func status(code int) func(int, http.ResponseWriter) {
	return func(_ int, w http.ResponseWriter) { w.WriteHeader(code) }
}

func wantUserError(t *testing.T, err error, code string) {
	t.Helper()
	fe, ok := apperr.AsFieldErrors(err)
	if !ok {
		t.Fatalf("want userError %s, got %v", code, err)
	}
	for _, f := range fe {
		if f.Code == code {
			return
		}
	}
	t.Fatalf("want userError %s, got %v", code, fe)
}
