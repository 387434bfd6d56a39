package outbound_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/outbound"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// TestRetriesOfADeliveryAreMergedAndLimited: retryWebhookDelivery sent 95
// POSTs for 200 aliases of one call, and any number one after another. A
// retry while the delivery is still on its way answers it pending and sends
// nothing more, and past MaxRetries attempts in RetryPeriod a retry is
// refused with RETRY_LIMITED until the period has passed.
func TestRetriesOfADeliveryAreMergedAndLimited(t *testing.T) {
	h := newHarness(t, testenv.DB(t), 3)
	release := make(chan struct{})
	held := 2 // the first retry's request is held until the retries below are made
	r := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == held {
			<-release
		}
		w.WriteHeader(http.StatusOK)
	})
	ep, _ := h.endpoint(t, r.URL, outbound.InvoicePaid)
	h.emit(t, outbound.InvoicePaid, outbound.InvoiceData{InvoiceID: "in_1"})
	r.next(t)
	h.next(t)
	d := h.deliveries(t, ep.ID)[0]
	ctx := context.Background()

	if _, err := h.svc.RetryDelivery(ctx, h.org, d.ID); err != nil {
		t.Fatal(err)
	}
	r.next(t) // the retry is being sent
	const aliases = 20
	var wg sync.WaitGroup
	errs := make(chan error, aliases)
	for range aliases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := h.svc.RetryDelivery(ctx, h.org, d.ID)
			if err == nil && got.Status != outbound.DeliveryPending {
				t.Errorf("a retry of a delivery on its way answered %s, want %s", got.Status, outbound.DeliveryPending)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a retry of a delivery on its way: %v", err)
		}
	}
	close(release)
	h.next(t)
	if n := len(h.deliveries(t, ep.ID)[0].Attempts); n != 2 {
		t.Fatalf("%d retries while one was on its way made %d attempts, want 2", aliases+1, n)
	}

	// One after another: up to MaxRetries attempts in the period.
	for attempts := 2; attempts < outbound.MaxRetries; attempts++ {
		if _, err := h.svc.RetryDelivery(ctx, h.org, d.ID); err != nil {
			t.Fatalf("retry after %d attempts: %v", attempts, err)
		}
		r.next(t)
		h.next(t)
	}
	_, err := h.svc.RetryDelivery(ctx, h.org, d.ID)
	wantUserError(t, err, outbound.CodeRetryLimited)
	if n := len(h.deliveries(t, ep.ID)[0].Attempts); n != outbound.MaxRetries {
		t.Fatalf("a refused retry: %d attempts, want %d", n, outbound.MaxRetries)
	}
	h.clock.Advance(outbound.RetryPeriod)
	if _, err := h.svc.RetryDelivery(ctx, h.org, d.ID); err != nil {
		t.Fatalf("a retry once the period passed: %v", err)
	}
	r.next(t)
	h.next(t)
}
