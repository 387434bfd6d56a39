package billing_test

import (
	"context"
	"net"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func TestWithoutStripeKeyEveryStripeMutationSaysNotConfigured(t *testing.T) {
	db := testenv.DB(t)
	svc := newService(db, nil)
	org := newOrg(t, db, "")
	ctx := context.Background()
	calls := map[string]func() error{
		"checkout": func() error {
			_, err := svc.CreateCheckoutSession(ctx, org, billing.CheckoutInput{Plan: "starter", SuccessURL: okSuccess, CancelURL: okCancel})
			return err
		},
		"portal": func() error { _, err := svc.CreatePortalSession(ctx, org, okCancel); return err },
		"cancel": func() error { _, err := svc.Cancel(ctx, org, true); return err },
		"resume": func() error { _, err := svc.Resume(ctx, org); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) { wantCode(t, call(), apperr.StripeNotConfigured) })
	}
	if st, err := svc.Current(ctx, org); err != nil || st.Plan.ID != "free" {
		t.Fatalf("reading state without Stripe: plan %q, err %v; want free", st.Plan.ID, err)
	}
}

func TestStripeUnreachableIsUnavailableAfterRetries(t *testing.T) {
	// A port nothing listens on: every attempt fails to connect.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	l.Close()

	db := testenv.DB(t)
	rec := stripetest.NewRecorder()
	svc := newService(db, stripetest.ClientAt(base, rec, 2))
	org := newOrg(t, db, "")
	_, err = svc.CreateCheckoutSession(context.Background(), org, billing.CheckoutInput{Plan: "starter", SuccessURL: okSuccess, CancelURL: okCancel})
	wantStripeOutage(t, err)
	if n := len(rec.Matching("POST", "/v1/customers")); n != 3 {
		t.Fatalf("tried %d times, want 1 + 2 retries", n)
	}
	if o := orgRow(t, db, org); o.StripeCustomerID != nil {
		t.Fatalf("stored customer %q although Stripe never answered", *o.StripeCustomerID)
	}
}
