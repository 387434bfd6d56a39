package billing_test

import (
	"context"
	"net"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/store"
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

// A well-formed Stripe answer to a checkout or portal request that
// Tollgate cannot use (a customer id with a NUL byte, which Postgres
// refuses; a session URL no customer should be sent to) is Stripe's fault,
// answered as a Stripe outage is, never INTERNAL, and nothing of it is
// stored or handed to the client.
func TestAnUnusableStripeAnswerToCheckoutOrPortalIsThePaymentProvidersFault(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		stub := newStripeStub(t)
		svc := newService(db, stub.client())
		in := billing.CheckoutInput{Plan: "starter", SuccessURL: okSuccess, CancelURL: okCancel}
		t.Run("a customer id with a NUL byte", func(t *testing.T) {
			stub.answer("cus_\u0000", "", "")
			defer stub.answer("", "", "")
			org := newOrg(t, db, "")
			_, err := svc.CreateCheckoutSession(ctx, org, in)
			wantStripeOutage(t, err)
			if c := orgRow(t, db, org).StripeCustomerID; c != nil {
				t.Fatalf("stored customer %q", *c)
			}
		})
		for _, url := range []string{"javascript:alert(1)", "https://127.1/pay"} {
			t.Run("a checkout URL "+url, func(t *testing.T) {
				stub.answer("", url, "")
				defer stub.answer("", "", "")
				_, err := svc.CreateCheckoutSession(ctx, newOrg(t, db, ""), in)
				wantStripeOutage(t, err)
			})
			t.Run("a portal URL "+url, func(t *testing.T) {
				org := newOrg(t, db, "")
				if _, err := svc.CreateCheckoutSession(ctx, org, in); err != nil {
					t.Fatal(err)
				}
				subscribedOnce(t, db, svc, org)
				stub.answer("", "", url)
				defer stub.answer("", "", "")
				got, err := svc.CreatePortalSession(ctx, org, "https://app.example.com/billing")
				wantStripeOutage(t, err)
				if got != "" {
					t.Fatalf("handed the client %q", got)
				}
			})
		}
	})
}
