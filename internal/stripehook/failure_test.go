package stripehook_test

import (
	"net/http"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripehook"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// The database fails in the middle of applying an event: the event id is
// already inserted when the subscriptions table turns out to be missing
// (renamed away here, which both dialects can undo). The whole transaction
// must roll back, so that Stripe's retry applies the event instead of
// finding it recorded as done.
func TestDatabaseFailureAnswers500AndTheRetrySucceeds(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		s := newScenario(f)
		body := event("evt_"+s.sub+"_retry", "customer.subscription.created", s.at(1), s.subscription("growth", "active", 1))

		if err := db.Exec("ALTER TABLE subscriptions RENAME TO subscriptions_away").Error; err != nil {
			t.Fatal(err)
		}
		if r := f.deliver(body); r.Status != http.StatusInternalServerError {
			t.Fatalf("answered %d with the table gone, want 500", r.Status)
		}
		if n := f.count(&stripehook.WebhookEvent{}); n != 0 {
			t.Fatalf("%d events recorded by the failed delivery, want 0 (rolled back)", n)
		}
		if o := orgOf(f, s.org); o.StripeCustomerID != nil || o.PlanID != "free" {
			t.Fatalf("failed delivery left the org half-changed: customer %v plan %s", o.StripeCustomerID, o.PlanID)
		}
		if err := db.Exec("ALTER TABLE subscriptions_away RENAME TO subscriptions").Error; err != nil {
			t.Fatal(err)
		}

		if out := f.mustDeliver(body); out != "applied" {
			t.Fatalf("retry outcome %q, want applied", out)
		}
		if st := f.state(s); st.OrgPlan != "growth" || st.Sub.Status != "active" || st.Events != 1 {
			t.Fatalf("after retry: %+v, want growth, active, one event", st)
		}
	})
}
