package billing_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func TestPortal(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		rec := stripetest.NewRecorder()
		svc := newService(db, stripetest.Client(t, rec))
		ctx := context.Background()

		t.Run("an org that never checked out has no billing history", func(t *testing.T) {
			org := newOrg(t, db, "")
			before := len(rec.Requests())
			_, err := svc.CreatePortalSession(ctx, org, "https://app.example.com/billing")
			wantFieldError(t, err, "", billing.CodeNoBillingHistory)
			if n := len(rec.Requests()) - before; n != 0 {
				t.Fatalf("made %d Stripe request(s), want none", n)
			}
		})
		t.Run("a bad return URL is refused before Stripe", func(t *testing.T) {
			org := newOrg(t, db, "")
			before := len(rec.Requests())
			_, err := svc.CreatePortalSession(ctx, org, "app.example.com/billing")
			wantFieldError(t, err, "input.returnUrl", billing.CodeInvalidURL)
			if n := len(rec.Requests()) - before; n != 0 {
				t.Fatalf("made %d Stripe request(s), want none", n)
			}
		})
		t.Run("an org with a customer gets a portal for that customer", func(t *testing.T) {
			org := newOrg(t, db, "")
			if _, err := svc.CreateCheckoutSession(ctx, org, billing.CheckoutInput{Plan: "starter", SuccessURL: okSuccess, CancelURL: okCancel}); err != nil {
				t.Fatal(err)
			}
			subscribedOnce(t, db, svc, org)
			url, err := svc.CreatePortalSession(ctx, org, "https://app.example.com/billing")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(url, "https://") {
				t.Fatalf("portal URL = %q, want Stripe's", url)
			}
			portals := rec.Matching("POST", "/v1/billing_portal/sessions")
			got := portals[len(portals)-1].Form
			if got.Get("customer") != *orgRow(t, db, org).StripeCustomerID || got.Get("return_url") != "https://app.example.com/billing" {
				t.Fatalf("portal session sent %v, want the org's customer and the return URL", got)
			}
		})
	})
}
