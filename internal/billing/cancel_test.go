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
		stub, svc, ctx, org, subID, _, now := subscribedAtStub(t, db)
		stub.subscriptions[subID]["current_period_end"] = now.AddDate(1, 0, 0).Unix()

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

// subscribedAtStub is an organisation subscribed to growth, yearly, with
// its subscription (active, not set to cancel) held by a Stripe stub for
// cancel and resume to change; the test sets its current_period_end.
func subscribedAtStub(t *testing.T, db *store.DB) (stub *stripeStub, svc *billing.Service, ctx context.Context, org, subID, customer string, now time.Time) {
	t.Helper()
	stub = newStripeStub(t)
	svc = newService(db, stub.client())
	ctx, org = context.Background(), newOrg(t, db, "")
	subID, customer, now = "sub_"+store.NewID(), "cus_"+store.NewID(), nowUTC()
	stub.subscriptions[subID] = map[string]any{"id": subID, "object": "subscription", "customer": customer, "status": "active",
		"created": now.Unix(), "current_period_start": now.Unix(),
		"cancel_at_period_end": false, "items": map[string]any{"object": "list", "data": []any{map[string]any{
			"id": "si_" + subID, "object": "subscription_item", "price": map[string]any{"id": "price_tollgate_growth_yearly", "object": "price"}}}}}
	subscribe(t, db, svc, org, stripeSub(subID, customer, "price_tollgate_growth_yearly", "active"), now.Add(-time.Minute))
	return stub, svc, ctx, org, subID, customer, now
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

// A well-formed Stripe answer to cancel or resume that Tollgate cannot use
// (here, a period ending in the year 3170843) is Stripe's fault, answered
// as a Stripe outage is: UNAVAILABLE with reason
// PAYMENT_PROVIDER_UNAVAILABLE, never INTERNAL; nothing of it is stored.
func TestAnUnusableStripeAnswerToCancelOrResumeIsThePaymentProvidersFault(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		stub, svc, ctx, org, subID, customer, now := subscribedAtStub(t, db)
		stub.subscriptions[subID]["current_period_end"] = int64(99999999999999)
		before, err := svc.Current(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		for name, change := range map[string]func() error{
			"cancel at period end": func() error { _, err := svc.Cancel(ctx, org, true); return err },
			"cancel now":           func() error { _, err := svc.Cancel(ctx, org, false); return err },
		} {
			t.Run(name, func(t *testing.T) {
				wantStripeOutage(t, change())
				st, err := svc.Current(ctx, org)
				if err != nil || st.Subscription.Status != before.Subscription.Status || st.Subscription.CancelAtPeriodEnd || st.Plan.ID != before.Plan.ID {
					t.Fatalf("stored %+v (err %v), want it as before the answer", st.Subscription, err)
				}
			})
		}
		// Resume acts on a subscription set to cancel at period end.
		stub.subscriptions[subID]["cancel_at_period_end"], stub.subscriptions[subID]["status"] = true, "active"
		setToCancel := stripeSub(subID, customer, "price_tollgate_growth_yearly", "active")
		setToCancel.CancelAtPeriodEnd = true
		subscribe(t, db, svc, org, setToCancel, now)
		_, err = svc.Resume(ctx, org)
		wantStripeOutage(t, err)
		if st, _ := svc.Current(ctx, org); !st.Subscription.CancelAtPeriodEnd {
			t.Fatalf("resume stored the unusable answer: %+v", st.Subscription)
		}
	})
}
