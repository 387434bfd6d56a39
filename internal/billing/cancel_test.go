package billing_test

import (
	"context"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// Cancel and resume send Stripe the change and store what Stripe answers:
// the plan and status come from the scenario's subscription, not a fixture.
func TestCancelAndResume(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		stub := newStripeStub(t)
		svc := newService(db, stub.client())
		ctx := context.Background()
		org := newOrg(t, db, "")
		subID, customer := "sub_"+store.NewID(), "cus_"+store.NewID()
		now := nowUTC()
		stub.subscriptions[subID] = map[string]any{"id": subID, "object": "subscription", "customer": customer, "status": "active",
			"created": now.Unix(), "current_period_start": now.Unix(), "current_period_end": now.AddDate(1, 0, 0).Unix(),
			"cancel_at_period_end": false, "items": map[string]any{"object": "list", "data": []any{map[string]any{
				"id": "si_" + subID, "object": "subscription_item", "price": map[string]any{"id": "price_tollgate_growth_yearly", "object": "price"}}}}}
		subscribe(t, db, svc, org, stripeSub(subID, customer, "price_tollgate_growth_yearly", "active"), now.Add(-time.Minute))

		st, err := svc.Cancel(ctx, org, true)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Subscription.CancelAtPeriodEnd || st.Plan.ID != "growth" || st.Subscription.Status != "active" {
			t.Fatalf("after cancel at period end: cancelAtPeriodEnd=%v plan=%s status=%s, want true and still growth, active",
				st.Subscription.CancelAtPeriodEnd, st.Plan.ID, st.Subscription.Status)
		}
		if _, err := svc.Cancel(ctx, org, true); err != nil {
			t.Fatal(err)
		}

		st, err = svc.Resume(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		if st.Subscription.CancelAtPeriodEnd || st.Plan.ID != "growth" {
			t.Fatalf("after resume: cancelAtPeriodEnd=%v plan=%s, want false and growth", st.Subscription.CancelAtPeriodEnd, st.Plan.ID)
		}

		st, err = svc.Cancel(ctx, org, false)
		if err != nil {
			t.Fatal(err)
		}
		if st.Plan.ID != "free" || st.Subscription.Status != "canceled" || st.Subscription.CanceledAt == nil {
			t.Fatalf("after cancel now: plan %s status %s canceledAt %v, want free, canceled, a time", st.Plan.ID, st.Subscription.Status, st.Subscription.CanceledAt)
		}
	})
}

// Cancelling at period end twice sends one request.
func TestCancellingTwiceSendsOneRequest(t *testing.T) {
	db := testenv.DB(t)
	rec := stripetest.NewRecorder()
	svc := newService(db, stripetest.Client(t, rec))
	ctx := context.Background()
	org := newOrg(t, db, "")
	subID := "sub_" + store.NewID()
	subscribe(t, db, svc, org, stripeSub(subID, "cus_"+store.NewID(), "price_tollgate_starter_monthly", "active"), nowUTC())
	subscribe(t, db, svc, org, func() *stripe.Subscription {
		s := stripeSub(subID, "", "price_tollgate_starter_monthly", "active")
		s.CancelAtPeriodEnd = true
		return s
	}(), nowUTC().Add(time.Second))
	if _, err := svc.Cancel(ctx, org, true); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Requests()); n != 0 {
		t.Fatalf("cancelling a subscription already set to cancel sent %d requests, want none", n)
	}
	if _, err := svc.Resume(ctx, org); err != nil {
		t.Fatal(err)
	}
	if updates := rec.Matching("POST", "/v1/subscriptions/"+subID); len(updates) != 1 || updates[0].Form.Get("cancel_at_period_end") != "false" {
		t.Fatalf("resume sent %+v, want one update with cancel_at_period_end=false", updates)
	}
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
