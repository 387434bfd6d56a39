package outbound_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/outbound"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

type body struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	OrganizationID string          `json:"organization_id"`
	ExternalID     string          `json:"organization_external_id"`
	Sequence       int64           `json:"sequence"`
	Data           json.RawMessage `json:"data"`
}

func decode(t *testing.T, b []byte) body {
	t.Helper()
	var out body
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, b)
	}
	return out
}

func TestDeliveryIsSignedForTheStandardWebhooksLibrary(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, 3)
		rcv := newReceiver(t, status(http.StatusNoContent))
		ep, secret := h.endpoint(t, rcv.URL+"/hooks", outbound.InvoicePaid)

		h.emit(t, outbound.InvoicePaid, map[string]any{"invoice_id": "in_123", "amount_paid": 4900})
		got := rcv.next(t)

		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(got.body, got.header); err != nil {
			t.Fatalf("signature does not verify with the endpoint's secret: %v", err)
		}
		other, _ := standardwebhooks.NewWebhook("whsec_" + "c2VjcmV0LW9mLWFub3RoZXItZW5kcG9pbnQtMDEyMzQ1Njc=")
		if err := other.Verify(got.body, got.header); err == nil {
			t.Fatal("signature verifies with another secret")
		}
		b := decode(t, got.body)
		if b.Type != outbound.InvoicePaid || b.OrganizationID != h.org || b.ExternalID != h.ext || b.Sequence != 1 || got.header.Get("webhook-id") != b.ID {
			t.Fatalf("body = %+v, webhook-id %q; want invoice.paid for org %s (external %s), sequence 1, id = webhook-id", b, got.header.Get("webhook-id"), h.org, h.ext)
		}
		if string(b.Data) != `{"amount_paid":4900,"invoice_id":"in_123"}` {
			t.Fatalf("data = %s", b.Data)
		}
		if ev := h.next(t); ev.Kind != river.EventKindJobCompleted {
			t.Fatalf("job outcome %s, want completed", ev.Kind)
		}
		ds := h.deliveries(t, ep.ID)
		if len(ds) != 1 || ds[0].Status != outbound.DeliverySucceeded || len(ds[0].Attempts) != 1 ||
			ds[0].Attempts[0].StatusCode != http.StatusNoContent || ds[0].EventID != b.ID || ds[0].Sequence != 1 {
			t.Fatalf("deliveries = %+v", ds)
		}
	})
}

func TestServerErrorIsRetriedThenDelivered(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, 3)
		rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
			if n == 1 {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		ep, _ := h.endpoint(t, rcv.URL, outbound.SubscriptionUpdated)
		h.emit(t, outbound.SubscriptionUpdated, map[string]string{"plan": "growth"})

		first := rcv.next(t)
		ev := h.next(t)
		if ev.Kind != river.EventKindJobFailed {
			t.Fatalf("after a 500 the job is %s, want failed (to retry)", ev.Kind)
		}
		if wait := ev.Job.ScheduledAt.Sub(*ev.Job.AttemptedAt); wait < 20*time.Second || wait > 40*time.Second {
			t.Fatalf("first retry in %s, want about 30 s", wait)
		}
		ds := h.deliveries(t, ep.ID)
		if ds[0].Status != outbound.DeliveryPending || len(ds[0].Attempts) != 1 || ds[0].Attempts[0].StatusCode != 500 ||
			ds[0].Attempts[0].Error != "the receiver answered HTTP 500" {
			t.Fatalf("after the 500: %+v", ds)
		}
		// Stand in for the 30 s wait: run the scheduled retry now.
		if err := h.runner.RunNow(context.Background(), ev.Job.ID); err != nil {
			t.Fatal(err)
		}
		second := rcv.next(t)
		if ev := h.next(t); ev.Kind != river.EventKindJobCompleted {
			t.Fatalf("after a 200 the job is %s, want completed", ev.Kind)
		}
		if first.header.Get("webhook-id") != second.header.Get("webhook-id") {
			t.Fatal("a retry changed webhook-id; receivers dedupe on it")
		}
		ds = h.deliveries(t, ep.ID)
		if ds[0].Status != outbound.DeliverySucceeded || len(ds[0].Attempts) != 2 || ds[0].Attempts[1].StatusCode != 200 || ds[0].DeliveredAt == nil {
			t.Fatalf("after the retry: %+v", ds)
		}
	})
}

func TestRedirectIsAFailedAttemptNotFollowed(t *testing.T) {
	h := newHarness(t, testenv.DB(t), 3)
	followed := newReceiver(t, status(http.StatusOK))
	a := h.oneFailedAttempt(t, func(_ int, w http.ResponseWriter) {
		w.Header().Set("Location", followed.URL)
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	if a.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("attempt = %+v", a)
	}
	select {
	case <-followed.got:
		t.Fatal("the redirect was followed")
	default:
	}
}

// TestAnAnswerWithHugeHeadersIsAFailedAttempt: a receiver's answer is read
// for its status; one that sends megabytes of headers fails the attempt,
// in words that say why, instead of having a worker read up to 10 MiB.
func TestAnAnswerWithHugeHeadersIsAFailedAttempt(t *testing.T) {
	h := newHarness(t, testenv.DB(t), 3)
	a := h.oneFailedAttempt(t, func(_ int, w http.ResponseWriter) {
		for i := range 64 {
			w.Header().Set(fmt.Sprintf("X-Pad-%d", i), strings.Repeat("a", 4<<10))
		}
		w.WriteHeader(http.StatusNoContent)
	})
	if a.Error != "the receiver's answer had more than 64 KiB of headers" {
		t.Fatalf("attempt = %+v", a)
	}
}

// oneFailedAttempt sends one event to a new endpoint at a receiver
// answering with respond, and returns the delivery's one attempt, which
// must have failed, leaving the job to retry.
func (h *harness) oneFailedAttempt(t *testing.T, respond func(int, http.ResponseWriter)) outbound.Attempt {
	t.Helper()
	rcv := newReceiver(t, respond)
	ep, _ := h.endpoint(t, rcv.URL, outbound.InvoicePaid)
	h.emit(t, outbound.InvoicePaid, map[string]string{})
	rcv.next(t)
	if ev := h.next(t); ev.Kind != river.EventKindJobFailed {
		t.Fatalf("the job is %s after the attempt, want failed (to retry)", ev.Kind)
	}
	ds := h.deliveries(t, ep.ID)
	if len(ds) != 1 || len(ds[0].Attempts) != 1 {
		t.Fatalf("deliveries = %+v, want one with one attempt", ds)
	}
	return ds[0].Attempts[0]
}

func TestSequencesIncreaseByOnePerOrganisationInCommitOrder(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, 3)
		rcv := newReceiver(t, status(http.StatusOK))
		h.endpoint(t, rcv.URL, outbound.UsageThresholdReached)
		ctx := context.Background()

		// A rolled-back fact sends nothing and uses no number.
		rollback := errors.New("the usage write failed")
		err := db.Tx(ctx, func(tx *gorm.DB) error {
			if err := h.svc.Emit(ctx, tx, h.org, outbound.UsageThresholdReached, map[string]int{"n": -1}); err != nil {
				return err
			}
			return rollback
		})
		if !errors.Is(err, rollback) {
			t.Fatal(err)
		}

		const n = 16
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				errs <- db.Tx(ctx, func(tx *gorm.DB) error {
					return h.svc.Emit(ctx, tx, h.org, outbound.UsageThresholdReached, map[string]int{"n": i})
				})
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		var seqs []int64
		seen := map[int]bool{}
		for range n {
			b := decode(t, rcv.next(t).body)
			var d struct{ N int }
			_ = json.Unmarshal(b.Data, &d)
			if d.N < 0 || seen[d.N] {
				t.Fatalf("received %s (rolled back or twice)", b.Data)
			}
			seen[d.N] = true
			seqs = append(seqs, b.Sequence)
		}
		sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
		for i, s := range seqs {
			if s != int64(i+1) {
				t.Fatalf("sequences %v: want 1..%d, each once", seqs, n)
			}
		}
	})
}

func TestReceiverDownForThreeDaysDisablesTheEndpoint(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, 3)
		// A receiver that is down: it hangs up on every connection. (A
		// closed test server would free its port for the next server a
		// test starts, which then answers in its place.)
		down := newReceiver(t, hangUp)
		watcher := newReceiver(t, status(http.StatusOK))
		dead, _ := h.endpoint(t, down.URL, outbound.InvoicePaymentFailed)
		h.endpoint(t, watcher.URL, outbound.EndpointDisabled)
		start := h.clock.Now()

		h.emit(t, outbound.InvoicePaymentFailed, map[string]string{"invoice_id": "in_1"})
		attempts := 0
		var deadJob int64 // the delivery to the dead receiver: the first job to finish
		for {
			ev := h.next(t)
			if deadJob == 0 {
				deadJob = ev.Job.ID
			}
			if ev.Job.ID != deadJob {
				// The watcher's delivery of endpoint.disabled, enqueued when
				// the dead job gives up; it can finish before River reports
				// the dead job cancelled. It is checked at the watcher below.
				continue
			}
			if ev.Kind == river.EventKindJobCancelled {
				break
			}
			if ev.Kind != river.EventKindJobFailed {
				t.Fatalf("job %s while the receiver is down", ev.Kind)
			}
			attempts++
			if attempts > 40 {
				t.Fatal("still retrying after 40 attempts")
			}
			// Simulate waiting out River's backoff: move the clock by it
			// and run the retry now.
			h.clock.Advance(ev.Job.ScheduledAt.Sub(*ev.Job.AttemptedAt))
			if err := h.runner.RunNow(context.Background(), ev.Job.ID); err != nil {
				t.Fatal(err)
			}
		}
		elapsed := h.clock.Now().Sub(start)
		if elapsed < outbound.RetryWindow || elapsed > outbound.RetryWindow+8*time.Hour {
			t.Fatalf("gave up after %s of simulated time, want 3 days (plus at most one backoff)", elapsed)
		}
		if attempts < 10 {
			t.Fatalf("only %d retries in 3 days: backoff is not exponential from seconds", attempts)
		}
		eps, err := h.svc.Endpoints(context.Background(), h.org)
		if err != nil {
			t.Fatal(err)
		}
		for _, ep := range eps {
			if ep.ID == dead.ID && (ep.Status != outbound.StatusDisabled || ep.DisabledAt == nil ||
				ep.DisabledReason != "failed for 3 days; last error: the receiver closed the connection before answering") {
				t.Fatalf("endpoint after 3 days down: %+v", ep)
			}
		}
		ds := h.deliveries(t, dead.ID)
		if ds[0].Status != outbound.DeliveryFailed || len(ds[0].Attempts) != attempts+1 || ds[0].Attempts[0].StatusCode != 0 ||
			ds[0].Attempts[0].Error != "the receiver closed the connection before answering" {
			t.Fatalf("delivery: status %s, %d attempts (want failed, %d)", ds[0].Status, len(ds[0].Attempts), attempts+1)
		}
		final := decode(t, watcher.next(t).body)
		var data struct {
			EndpointID string `json:"endpoint_id"`
		}
		_ = json.Unmarshal(final.Data, &data)
		if final.Type != outbound.EndpointDisabled || data.EndpointID != dead.ID || final.Sequence != 2 {
			t.Fatalf("final event = %+v %s", final, final.Data)
		}
		if _, err := h.svc.RetryDelivery(context.Background(), h.org, ds[0].ID); err == nil {
			t.Fatal("a disabled endpoint's delivery was replayed")
		} else {
			wantUserError(t, err, outbound.CodeEndpointDisable)
		}
	})
}

func TestEachEndpointGetsOnlyTheEventsItSubscribedTo(t *testing.T) {
	h := newHarness(t, testenv.DB(t), 3)
	invoices := newReceiver(t, status(http.StatusOK))
	limits := newReceiver(t, status(http.StatusOK))
	a, _ := h.endpoint(t, invoices.URL, outbound.InvoicePaid)
	b, _ := h.endpoint(t, limits.URL, outbound.UsageLimitReached)

	h.emit(t, outbound.InvoicePaid, outbound.InvoiceData{InvoiceID: "in_1"})
	h.emit(t, outbound.UsageLimitReached, outbound.UsageThresholdData{Meter: "api_calls", Percent: 100})

	if got := decode(t, invoices.next(t).body); got.Type != outbound.InvoicePaid || got.Sequence != 1 {
		t.Fatalf("invoice endpoint got %+v", got)
	}
	if got := decode(t, limits.next(t).body); got.Type != outbound.UsageLimitReached || got.Sequence != 2 {
		t.Fatalf("limit endpoint got %+v", got)
	}
	for _, ep := range []outbound.Endpoint{a, b} {
		if ds := h.deliveries(t, ep.ID); len(ds) != 1 {
			t.Fatalf("endpoint %s has %d deliveries, want 1", ep.URL, len(ds))
		}
	}
}
