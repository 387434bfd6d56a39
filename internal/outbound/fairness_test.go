package outbound_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/outbound"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// TestOneOrganisationsSlowReceiversDoNotHoldUpAnother: an organisation whose
// twelve receivers take their time holds at most MaxInFlightPerOrg of the
// delivery workers, so another organisation's delivery goes out while those
// attempts are still waiting for an answer, not once they time out (the
// ten workers were all held by the first organisation's attempts for 5 s
// each, and with hundreds of them for minutes).
func TestOneOrganisationsSlowReceiversDoNotHoldUpAnother(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		const slowEndpoints = 12
		h := newHarness(t, db, slowEndpoints)
		ctx := context.Background()

		// The slow receiver answers only when released.
		release := make(chan struct{})
		var arrived, answering atomic.Int64
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			arrived.Add(1)
			select {
			case <-release:
				answering.Add(1)
				w.WriteHeader(http.StatusNoContent)
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(slow.Close)
		var once sync.Once
		open := func() { once.Do(func() { close(release) }) }
		t.Cleanup(open) // runs before slow.Close

		slowIDs := make([]string, slowEndpoints)
		for i := range slowIDs {
			ep, _ := h.endpoint(t, slow.URL, outbound.InvoicePaid)
			slowIDs[i] = ep.ID
		}
		h.emit(t, outbound.InvoicePaid, map[string]string{"invoice_id": "in_slow"})

		other, err := orgs.NewService(db, h.clock).Ensure(ctx, "ext-"+store.NewID(), "Other", "billing@other.test")
		if err != nil {
			t.Fatal(err)
		}
		fast := newReceiver(t, status(http.StatusNoContent))
		if _, _, err := h.svc.CreateEndpoint(ctx, other, fast.URL, []string{outbound.InvoicePaid}); err != nil {
			t.Fatal(err)
		}
		if err := h.db.Tx(ctx, func(tx *gorm.DB) error {
			return h.svc.Emit(ctx, tx, other, outbound.InvoicePaid, map[string]string{"invoice_id": "in_other"})
		}); err != nil {
			t.Fatal(err)
		}

		got := fast.next(t)
		// An attempt is recorded once it ends: none of the slow ones had.
		for _, id := range slowIDs {
			if ds := h.deliveries(t, id); len(ds) != 1 || len(ds[0].Attempts) != 0 {
				t.Fatalf("the other organisation's delivery arrived after the slow receivers' attempts had ended (timed out): %+v", ds)
			}
		}
		if b := decode(t, got.body); b.OrganizationID != other {
			t.Fatalf("the fast receiver got %+v, want the other organisation's event", b)
		}
		if n := arrived.Load(); n > outbound.MaxInFlightPerOrg {
			t.Fatalf("%d of the slow organisation's attempts were in flight at once, want at most %d", n, outbound.MaxInFlightPerOrg)
		}

		// Released, the slow organisation's deliveries all go out in turn.
		open()
		deadline := time.Now().Add(30 * time.Second)
		for answering.Load() < slowEndpoints {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d slow deliveries answered within 30 s of the release", answering.Load(), slowEndpoints)
			}
			h.next(t)
		}
	})
}
