package outbound_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/tollgate-billing/tollgate/internal/outbound"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func TestRetentionJobPrunesEventsOlderThan30Days(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		h := newHarness(t, db, 3)
		rcv := newReceiver(t, status(http.StatusNoContent))
		h.endpoint(t, rcv.URL+"/hooks", outbound.InvoicePaid)
		delivered := func() {
			t.Helper()
			if ev := h.next(t); ev.Kind != river.EventKindJobCompleted {
				t.Fatalf("delivery job %s, want completed", ev.Kind)
			}
		}
		// Two events a little over 30 days before the job runs; a replay of
		// the second's delivery is still pending. Then a recent one.
		h.emit(t, outbound.InvoicePaid, map[string]string{"invoice_id": "in_old"})
		delivered()
		h.emit(t, outbound.InvoicePaid, map[string]string{"invoice_id": "in_old_replayed"})
		delivered()
		h.clock.Advance(outbound.Retention + time.Minute)
		h.emit(t, outbound.InvoicePaid, map[string]string{"invoice_id": "in_recent"})
		delivered()
		ids := h.eventIDs(t)
		if len(ids) != 3 {
			t.Fatalf("%d events stored, want 3", len(ids))
		}
		if err := db.Table("webhook_deliveries").Where("event_id = ?", ids[1]).Update("status", outbound.DeliveryPending).Error; err != nil {
			t.Fatal(err)
		}

		h.svc.SchedulePrune(time.Hour) // runs once at once, then hourly
		for {
			ev := h.next(t)
			if ev.Job.Kind != "outbound_prune" {
				continue
			}
			if ev.Kind != river.EventKindJobCompleted {
				t.Fatalf("retention job %s: %v", ev.Kind, ev.Job.Errors)
			}
			break
		}

		if got := h.eventIDs(t); len(got) != 2 || got[0] != ids[1] || got[1] != ids[2] {
			t.Fatalf("events left %v, want the pending replay's %s and the recent %s", got, ids[1], ids[2])
		}
		var deliveries, attempts int64
		db.Table("webhook_deliveries").Where("event_id = ?", ids[0]).Count(&deliveries)
		db.Table("webhook_delivery_attempts").Where("delivery_id IN (SELECT id FROM webhook_deliveries WHERE event_id = ?)", ids[0]).Count(&attempts)
		var kept int64
		db.Table("webhook_delivery_attempts").Count(&kept)
		if deliveries != 0 || attempts != 0 || kept != 2 {
			t.Fatalf("pruned event left %d deliveries and %d attempts, want none; %d attempts in all, want the other two events' 2",
				deliveries, attempts, kept)
		}
	})
}

// eventIDs lists the organisation's stored events in sequence order.
func (h *harness) eventIDs(t *testing.T) []string {
	t.Helper()
	var ids []string
	if err := h.db.Table("outbound_events").Where("org_id = ?", h.org).Order("sequence").Pluck("id", &ids).Error; err != nil {
		t.Fatal(err)
	}
	return ids
}
