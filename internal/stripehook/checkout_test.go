package stripehook_test

import (
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// Once a completed checkout's subscription is recorded, its session is
// closed: the next checkout need not ask Stripe about it. A session whose
// Stripe id was never recorded is found through the record id Tollgate put
// in its metadata.
func TestACompletedCheckoutIsNoLongerOpen(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		for _, recorded := range []bool{true, false} {
			s, other := newScenario(f), newScenario(f)
			session := "cs_own_" + s.sub
			record := f.openCheckout(s.org, session, recorded)
			otherRecord := f.openCheckout(other.org, "cs_own_"+other.sub, true)
			obj := checkoutObject(session, s.org, s.customer, s.sub, "starter", s.at(1))
			obj["metadata"].(map[string]any)["tollgate_checkout_id"] = record
			f.mustDeliver(event("evt_"+s.sub+"_1", "checkout.session.completed", s.at(1), obj))
			if got := orgOf(f, s.org); got.PlanID != "starter" || f.checkoutState(record) != "closed" {
				t.Fatalf("id recorded %v: after the completion plan %s, session %s; want starter and closed",
					recorded, got.PlanID, f.checkoutState(record))
			}
			if got := f.checkoutState(otherRecord); got != "open" {
				t.Fatalf("another organisation's open checkout became %s", got)
			}
		}
	})
}

// openCheckout records a checkout session of the organisation as checkout
// does, with its Stripe id or still pending, and returns the record's id.
func (f *fixture) openCheckout(orgID, sessionID string, recorded bool) string {
	f.t.Helper()
	return f.openCheckoutFor(orgID, sessionID, "", recorded)
}

// openCheckoutFor is openCheckout for a session opened for a Stripe
// customer, as checkout opens every session.
func (f *fixture) openCheckoutFor(orgID, sessionID, customerID string, recorded bool) string {
	f.t.Helper()
	id, state := store.NewID(), "open"
	var stripeID *string
	if recorded {
		stripeID = &sessionID
	} else {
		state = "pending"
	}
	now := time.Now().UTC()
	row := map[string]any{"id": id, "org_id": orgID, "stripe_session_id": stripeID, "state": state,
		"plan_id": "starter", "price_id": "price_tollgate_starter_monthly", "customer_id": customerID,
		"success_url": "https://app.example.com/ok", "cancel_url": "https://app.example.com/", "created_at": now, "updated_at": now}
	if err := f.db.Table("checkout_sessions").Create(row).Error; err != nil {
		f.t.Fatal(err)
	}
	return id
}

func (f *fixture) checkoutState(id string) string {
	f.t.Helper()
	var states []string
	if err := f.db.Table("checkout_sessions").Where("id = ?", id).Pluck("state", &states).Error; err != nil || len(states) != 1 {
		f.t.Fatalf("checkout session %s: %v %v", id, states, err)
	}
	return states[0]
}
