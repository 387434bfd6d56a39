package billing_test

import (
	"context"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// Stripe answers the creation of an organisation's customer with something
// Tollgate cannot use, or refuses it. Stripe replays that answer for a day
// under the same idempotency key, so the retry must be a new request under
// a key of its own: then the organisation's next checkout works, with the
// customer Stripe creates for it.
func TestARetryAfterAnUnusableCustomerAnswerAsksStripeAgain(t *testing.T) {
	for _, answer := range []string{"unusable", "refused"} {
		t.Run(answer, func(t *testing.T) {
			testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
				ctx := context.Background()
				stub := newStripeStub(t)
				stub.customerAnswers = []string{answer}
				svc := newService(db, stub.client())
				org := newOrg(t, db, "billing@acme.test")
				in := billing.CheckoutInput{Plan: "starter", SuccessURL: okSuccess, CancelURL: okCancel}

				if _, err := svc.CreateCheckoutSession(ctx, org, in); err == nil {
					t.Fatal("checkout succeeded on a customer Stripe would not give")
				}
				if c := orgRow(t, db, org).StripeCustomerID; c != nil {
					t.Fatalf("stored customer %q", *c)
				}
				if _, err := svc.CreateCheckoutSession(ctx, org, in); err != nil {
					t.Fatalf("retry: %v, want a session", err)
				}
				keys := stub.customerKeys
				if len(keys) != 2 || keys[0] == keys[1] {
					t.Fatalf("customer requests under keys %q, want two, the retry under a new key", keys)
				}
				want := stub.byKey[keys[1]]
				if c := orgRow(t, db, org).StripeCustomerID; c == nil || *c != want {
					t.Fatalf("stored customer %v, want %s, the one the retry created", c, want)
				}
			})
		})
	}
}

// The answer to a customer creation is lost (the caller timed out after
// Stripe created it). The retry asks under the same idempotency key, so
// Stripe answers with that customer rather than creating a second.
func TestARetryAfterALostCustomerAnswerGetsTheSameCustomer(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		stub := newStripeStub(t)
		svc := newService(db, stub.client())
		org := newOrg(t, db, "billing@acme.test")
		in := billing.CheckoutInput{Plan: "starter", SuccessURL: okSuccess, CancelURL: okCancel}

		ctx, giveUp := context.WithCancel(context.Background())
		stub.loseCustomerAnswer = giveUp
		if _, err := svc.CreateCheckoutSession(ctx, org, in); err == nil {
			t.Fatal("checkout succeeded without Stripe's answer")
		}
		if c := orgRow(t, db, org).StripeCustomerID; c != nil {
			t.Fatalf("stored customer %q without Stripe's answer", *c)
		}
		if _, err := svc.CreateCheckoutSession(context.Background(), org, in); err != nil {
			t.Fatalf("retry: %v", err)
		}
		keys := stub.customerKeys
		if len(keys) != 2 || keys[0] != keys[1] {
			t.Fatalf("customer requests under keys %q, want the retry under the first one's key", keys)
		}
		if len(stub.byKey) != 2 { // the customer and the one session
			t.Fatalf("Stripe created %v, want one customer and one session", stub.byKey)
		}
		if c := orgRow(t, db, org).StripeCustomerID; c == nil || *c != stub.byKey[keys[0]] {
			t.Fatalf("stored customer %v, want %s, the one the lost request created", c, stub.byKey[keys[0]])
		}
	})
}
