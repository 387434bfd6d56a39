package billing_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/jobs"
	"github.com/tollgate-billing/tollgate/internal/outbound"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// TestSubscriptionUpdatedIsEmittedWithTheChange: the event is written in the
// transaction that changes the plan or status, and only then.
func TestSubscriptionUpdatedIsEmittedWithTheChange(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		// Deliveries are not worked here: the events table is what was
		// emitted.
		runner, err := jobs.New(ctx, db, jobs.Config{Logger: stripetest.Discard()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = runner.Stop(ctx) })
		svc := newService(db, nil)
		svc.EmitTo(outbound.NewService(outbound.Options{DB: db, Jobs: runner, Plans: svc, Clock: clock.Real{}, Log: stripetest.Discard()}))
		org := newOrg(t, db, "")
		growth, _ := plans.Default().ByID("growth")
		t0 := nowUTC().Add(-time.Hour)

		type emitted struct {
			Type string                           `json:"type"`
			Data outbound.SubscriptionUpdatedData `json:"data"`
		}
		events := func() []emitted {
			var rows []struct{ Payload string }
			if err := db.Table("outbound_events").Where("org_id = ?", org).Order("sequence").Find(&rows).Error; err != nil {
				t.Fatal(err)
			}
			out := make([]emitted, len(rows))
			for i, r := range rows {
				if err := json.Unmarshal([]byte(r.Payload), &out[i]); err != nil {
					t.Fatal(err)
				}
			}
			return out
		}
		apply := func(sub *stripe.Subscription, at time.Time, fail bool) {
			t.Helper()
			rollback := errors.New("the webhook failed after applying")
			err := db.Tx(ctx, func(tx *gorm.DB) error {
				if _, err := svc.ApplySubscription(ctx, tx, billing.SubscriptionUpdate{Sub: sub, At: at, OrgID: org}); err != nil {
					return err
				}
				if fail {
					return rollback
				}
				return nil
			})
			if fail && !errors.Is(err, rollback) || !fail && err != nil {
				t.Fatalf("apply: %v", err)
			}
		}

		sub := stripeSub("sub_announce", "cus_announce", growth.StripePriceID, stripe.SubscriptionStatusActive)
		apply(sub, t0, true)
		if got := events(); len(got) != 0 || orgRow(t, db, org).PlanID != "free" {
			t.Fatalf("after a rolled-back change: events %+v, plan %s; want none and free", got, orgRow(t, db, org).PlanID)
		}
		apply(sub, t0, false)
		sub.CancelAtPeriodEnd = true // neither plan nor status
		apply(sub, t0.Add(time.Second), false)
		sub.Status = stripe.SubscriptionStatusCanceled
		apply(sub, t0.Add(2*time.Second), false)
		apply(sub, t0.Add(3*time.Second), false) // the same again

		got := events()
		want := []outbound.SubscriptionUpdatedData{
			{Plan: "growth", Status: "active", PreviousPlan: "free", PreviousStatus: ""},
			{Plan: "free", Status: "canceled", PreviousPlan: "growth", PreviousStatus: "active"},
		}
		if len(got) != len(want) {
			t.Fatalf("emitted %+v, want %d subscription.updated", got, len(want))
		}
		for i, w := range want {
			g := got[i]
			if g.Type != outbound.SubscriptionUpdated || g.Data.Plan != w.Plan || g.Data.Status != w.Status ||
				g.Data.PreviousPlan != w.PreviousPlan || g.Data.PreviousStatus != w.PreviousStatus || g.Data.CurrentPeriodEnd == nil ||
				!g.Data.CurrentPeriodEnd.Equal(time.Unix(sub.CurrentPeriodEnd, 0)) {
				t.Fatalf("event %d = %+v, want subscription.updated %+v ending %s", i, g, w, time.Unix(sub.CurrentPeriodEnd, 0))
			}
		}
	})
}
