package billing_test

import (
	"context"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func TestCancelAndResume(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		rec := stripetest.NewRecorder()
		svc := newService(db, stripetest.Client(t, rec))
		ctx := context.Background()
		org := newOrg(t, db, "")
		subID := "sub_" + store.NewID()
		subscribe(t, db, svc, org, stripeSub(subID, "cus_"+store.NewID(), "price_tollgate_starter_monthly", "active"), nowUTC())

		st, err := svc.Cancel(ctx, org, true)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Subscription.CancelAtPeriodEnd || st.Plan.ID != "starter" {
			t.Fatalf("after cancel at period end: cancelAtPeriodEnd=%v plan=%s, want true and still starter",
				st.Subscription.CancelAtPeriodEnd, st.Plan.ID)
		}
		updates := rec.Matching("POST", "/v1/subscriptions/"+subID)
		if len(updates) != 1 || updates[0].Form.Get("cancel_at_period_end") != "true" {
			t.Fatalf("cancel sent %+v, want one update with cancel_at_period_end=true", updates)
		}

		if _, err := svc.Cancel(ctx, org, true); err != nil {
			t.Fatal(err)
		}
		if n := len(rec.Matching("POST", "/v1/subscriptions/"+subID)); n != 1 {
			t.Fatalf("cancelling twice sent %d updates, want the second to be a no-op", n)
		}

		st, err = svc.Resume(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		if st.Subscription.CancelAtPeriodEnd || st.Plan.ID != "starter" {
			t.Fatalf("after resume: cancelAtPeriodEnd=%v plan=%s, want false and starter", st.Subscription.CancelAtPeriodEnd, st.Plan.ID)
		}
		updates = rec.Matching("POST", "/v1/subscriptions/"+subID)
		if len(updates) != 2 || updates[1].Form.Get("cancel_at_period_end") != "false" {
			t.Fatalf("resume sent %+v, want an update with cancel_at_period_end=false", updates)
		}

		// stripe-mock answers a cancellation with its fixture (still
		// active), so only the request itself can be checked here; the
		// canceled state arrives through customer.subscription.deleted,
		// tested in stripehook.
		if _, err := svc.Cancel(ctx, org, false); err != nil {
			t.Fatal(err)
		}
		if n := len(rec.Matching("DELETE", "/v1/subscriptions/"+subID)); n != 1 {
			t.Fatalf("cancel now sent %d DELETEs, want 1", n)
		}
	})
}

func TestCancelOrResumeWithoutSubscription(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		rec := stripetest.NewRecorder()
		svc := newService(db, stripetest.Client(t, rec))
		ctx := context.Background()
		never := newOrg(t, db, "")
		ended := newOrg(t, db, "")
		subscribe(t, db, svc, ended, stripeSub("sub_"+store.NewID(), "cus_"+store.NewID(), "price_tollgate_starter_monthly", "canceled"), nowUTC())
		for name, org := range map[string]string{"never subscribed": never, "subscription already canceled": ended} {
			t.Run(name, func(t *testing.T) {
				_, err := svc.Cancel(ctx, org, true)
				wantFieldError(t, err, "", billing.CodeNoSubscription)
				_, err = svc.Resume(ctx, org)
				wantFieldError(t, err, "", billing.CodeNoSubscription)
			})
		}
		if n := len(rec.Requests()); n != 0 {
			t.Fatalf("made %d Stripe request(s), want none", n)
		}
	})
}
