package billing_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/jobs"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// checkoutRow records a Checkout session as billing would have, in state,
// created and last changed at the given times.
func checkoutRow(t *testing.T, db *store.DB, orgID, customer, state string, created, updated time.Time) string {
	t.Helper()
	id := store.NewID()
	err := db.Exec(`INSERT INTO checkout_sessions (id, org_id, state, plan_id, price_id, customer_id, success_url, cancel_url, created_at, updated_at)
		VALUES (?, ?, ?, 'starter', 'price_starter', ?, 'https://app.example.com/ok', 'https://app.example.com/no', ?, ?)`,
		id, orgID, state, customer, created.UTC(), updated.UTC()).Error
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func checkoutIDs(t *testing.T, db *store.DB) []string {
	t.Helper()
	var ids []string
	if err := db.Table("checkout_sessions").Order("id").Pluck("id", &ids).Error; err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestTheRetentionJobPrunesFinishedCheckoutSessions: a Checkout session's
// record is deleted once it has been finished (closed, or expired by
// Stripe a day after it opened) for longer than the retention; younger
// ones stay, and so does the newest record of each organisation and
// customer, which places that customer's late subscription events. Another
// organisation's record of the same customer id is its own.
func TestTheRetentionJobPrunesFinishedCheckoutSessions(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		const retention = 30 * 24 * time.Hour
		now := time.Now().Truncate(time.Second)
		ago := func(d time.Duration) time.Time { return now.Add(-d) }
		const day = 24 * time.Hour
		org, other := newOrg(t, db, "a@acme.test"), newOrg(t, db, "b@globex.test")

		closedLongAgo := checkoutRow(t, db, org, "cus_A", "closed", ago(41*day), ago(40*day))
		openLongAgo := checkoutRow(t, db, org, "cus_A", "open", ago(32*day), ago(32*day))
		// Opened 30.5 days ago: Stripe expired it 29.5 days ago.
		openExpiredLately := checkoutRow(t, db, org, "cus_A", "open", ago(30*day+12*time.Hour), ago(30*day+12*time.Hour))
		closedLately := checkoutRow(t, db, org, "cus_A", "closed", ago(29*day+time.Hour), ago(29*day))
		// The only record of its customer: kept, however old.
		onlyOfItsCustomer := checkoutRow(t, db, org, "cus_A2", "closed", ago(100*day), ago(100*day))
		// Another organisation's only record of cus_A, older than org's.
		othersOnly := checkoutRow(t, db, other, "cus_A", "closed", ago(45*day), ago(45*day))
		othersOld := checkoutRow(t, db, other, "cus_B", "closed", ago(50*day), ago(50*day))
		othersNewest := checkoutRow(t, db, other, "cus_B", "closed", ago(35*day), ago(35*day))

		svc := billing.NewService(db, plans.Default(), clock.NewFake(now), nil, stripetest.Discard())
		testenv.RunPeriodicJob(t, db, "checkout_sessions_prune", func(r *jobs.Runner) { svc.KeepCheckouts(r, retention, time.Hour) })

		want := []string{openExpiredLately, closedLately, onlyOfItsCustomer, othersOnly, othersNewest}
		slices.Sort(want)
		if got := checkoutIDs(t, db); !slices.Equal(got, want) {
			t.Errorf("records left %v, want %v (pruned: closed long ago %s, open long ago %s, other's old %s)",
				got, want, closedLongAgo, openLongAgo, othersOld)
		}
	})
}

// TestCheckoutPrunesRunInBatches: a backlog larger than a batch is
// deleted in several statements, all of it.
func TestCheckoutPrunesRunInBatches(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		now := time.Now()
		org := newOrg(t, db, "a@acme.test")
		for i := range 7 {
			checkoutRow(t, db, org, "cus_A", "closed", now.Add(-time.Duration(100-i)*time.Hour), now.Add(-time.Duration(100-i)*time.Hour))
		}
		n, err := billing.PruneCheckoutsInBatches(context.Background(), db, now.Add(-time.Hour), 2)
		if err != nil || n != 6 {
			t.Fatalf("pruned %d (%v), want the 6 older than the newest", n, err)
		}
		if left := checkoutIDs(t, db); len(left) != 1 {
			t.Errorf("%d records left, want the newest", len(left))
		}
	})
}
