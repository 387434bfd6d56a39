package stripehook_test

import (
	"testing"

	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// Once a completed checkout's subscription is recorded, the organisation has
// no open checkout left: the next one need not ask Stripe about it.
func TestACompletedCheckoutIsNoLongerOpen(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		s := newScenario(f)
		session := "cs_" + s.sub
		other := newScenario(f)
		for org, id := range map[string]string{s.org: session, other.org: "cs_" + other.sub} {
			if err := db.Model(&store.Organization{}).Where("id = ?", org).Update("open_checkout_session_id", id).Error; err != nil {
				t.Fatal(err)
			}
		}
		f.mustDeliver(event("evt_"+s.sub+"_1", "checkout.session.completed", s.at(1),
			checkoutObject(session, s.org, s.customer, s.sub, "starter", s.at(1))))
		if got := orgOf(f, s.org); got.OpenCheckoutSessionID != nil || got.PlanID != "starter" {
			t.Fatalf("after the completion: plan %s, open checkout %v; want starter and none", got.PlanID, got.OpenCheckoutSessionID)
		}
		if got := orgOf(f, other.org).OpenCheckoutSessionID; got == nil || *got != "cs_"+other.sub {
			t.Fatalf("another organisation's open checkout became %v", got)
		}
	})
}
