package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/outbound"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// Paging with `after` walks every delivery once, newest first, so a list
// longer than one page can be read to its end.
func TestDeliveriesPageWithAfter(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, 3)
		rcv := newReceiver(t, status(http.StatusNoContent))
		ep, _ := h.endpoint(t, rcv.URL+"/hooks", outbound.InvoicePaid)
		const n = 5
		for i := range n {
			h.emit(t, outbound.InvoicePaid, map[string]any{"i": i})
			h.clock.Advance(time.Second)
		}
		ctx := context.Background()
		var seqs []int64
		after := ""
		for range n {
			page, err := h.svc.Deliveries(ctx, h.org, ep.ID, 2, after)
			if err != nil {
				t.Fatalf("page after %q: %v", after, err)
			}
			if len(page) == 0 {
				break
			}
			for _, d := range page {
				seqs = append(seqs, d.Sequence)
			}
			after = page[len(page)-1].ID
		}
		if len(seqs) != n {
			t.Fatalf("pages hold sequences %v, want %d deliveries", seqs, n)
		}
		for i, s := range seqs {
			if s != int64(n-i) {
				t.Fatalf("pages hold sequences %v, want %d down to 1", seqs, n)
			}
		}
		for _, bad := range []string{"nope", store.NewID()} {
			_, err := h.svc.Deliveries(ctx, h.org, ep.ID, 2, bad)
			var ae *apperr.Error
			if !errors.As(err, &ae) || ae.Code != apperr.BadInput {
				t.Errorf("after %q: %v, want BAD_USER_INPUT", bad, err)
			}
		}
	})
}

// An endpoint subscribed to "*" receives every event type.
func TestAnEndpointOfAllEventsReceivesEveryType(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, 3)
		rcv := newReceiver(t, status(http.StatusNoContent))
		ep, _ := h.endpoint(t, rcv.URL+"/hooks", outbound.AllEvents)
		for _, typ := range outbound.EventTypes {
			h.emit(t, typ, map[string]any{})
			h.clock.Advance(time.Second)
		}
		ds, err := h.svc.Deliveries(context.Background(), h.org, ep.ID, 100, "")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range ds {
			got = append([]string{d.EventType}, got...)
		}
		if strings.Join(got, " ") != strings.Join(outbound.EventTypes, " ") {
			t.Fatalf("deliveries of %v, want one of each of %v", got, outbound.EventTypes)
		}
	})
}

// A status filter lists only the deliveries in the statuses asked for,
// newest first, and pages with `after` within them, so a dashboard can
// read the failing ones without walking every success.
func TestDeliveriesFilterByStatus(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, 3)
		// Every second request fails: deliveries 1 and 3 succeed, 2 waits
		// for a retry.
		rcv := newReceiver(t, func(n int, w http.ResponseWriter) {
			if n%2 == 0 {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
		ep, _ := h.endpoint(t, rcv.URL+"/hooks", outbound.InvoicePaid)
		for i := range 3 {
			h.emit(t, outbound.InvoicePaid, map[string]any{"i": i})
			rcv.next(t)
			h.next(t)
			h.clock.Advance(time.Second)
		}
		ctx := context.Background()
		seqs := func(statuses ...string) []int64 {
			t.Helper()
			var out []int64
			after := ""
			for range 5 {
				page, err := h.svc.Deliveries(ctx, h.org, ep.ID, 1, after, statuses...)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) == 0 {
					break
				}
				out = append(out, page[0].Sequence)
				after = page[0].ID
			}
			return out
		}
		for _, tc := range []struct {
			statuses []string
			want     string
		}{
			{[]string{outbound.DeliverySucceeded}, "[3 1]"},
			{[]string{outbound.DeliveryPending}, "[2]"},
			{[]string{outbound.DeliveryFailed}, "[]"},
			{[]string{outbound.DeliveryPending, outbound.DeliverySucceeded}, "[3 2 1]"},
			{nil, "[3 2 1]"},
		} {
			if got := fmt.Sprint(seqs(tc.statuses...)); got != tc.want {
				t.Errorf("status %v lists sequences %s, want %s", tc.statuses, got, tc.want)
			}
		}
	})
}
