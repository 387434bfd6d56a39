package billing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/stripehook"
	"github.com/tollgate-billing/tollgate/internal/testenv"
	"github.com/tollgate-billing/tollgate/internal/usage"
)

const hookSecret = "whsec_billing_test"

// While Stripe takes its time over one organisation's checkout, or over a
// subscription a webhook asked for, nothing else waits for it: not another
// organisation's usage (on SQLite the call would otherwise hold the only
// connection), nor webhooks for either organisation (on Postgres it would
// hold the organisation's row).
func TestASlowStripeHoldsUpNothingElse(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		cases := []struct {
			name string
			// slowCall starts the call Stripe stalls, for org.
			slowCall func(svc *billing.Service, hook http.Handler, org string) error
		}{
			{"a checkout", func(svc *billing.Service, _ http.Handler, org string) error {
				_, err := svc.CreateCheckoutSession(ctx, org, billing.CheckoutInput{Plan: "starter", SuccessURL: okSuccess, CancelURL: okCancel})
				return err
			}},
			{"a webhook that needs the subscription from Stripe", func(_ *billing.Service, hook http.Handler, org string) error {
				// A second update in the same second as the first cannot be
				// ordered from the events: it needs Stripe's copy.
				sub, at := "sub_tie_"+store.NewID(), time.Now()
				for i := range 2 {
					if code := deliverSubscription(t, db, hook, org, sub, "customer.subscription.updated", at, i); code != http.StatusOK {
						return fmt.Errorf("update %d answered %d", i, code)
					}
				}
				return nil
			}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				stub := newStripeStub(t)
				svc := newService(db, stub.client())
				log := stripetest.Discard()
				hook := stripehook.NewHandler(stripehook.Config{DB: db, Billing: svc, Invoices: invoices.NewService(db, clock.Real{}, log),
					Secret: hookSecret, Clock: clock.Real{}, Log: log})
				use := usage.NewService(db, testenv.MiniRedis(t), plans.Default(), svc, clock.Real{}, log)
				slow, other := newOrg(t, db, "billing@slow.test"), newOrg(t, db, "billing@other.test")
				stub.stall, stub.stallFor, stub.arrived = make(chan struct{}), 2*time.Second, make(chan struct{}, 1)

				done := make(chan error, 1)
				go func() { done <- tc.slowCall(svc, hook, slow) }()
				<-stub.arrived // Stripe now holds the call

				res, err := use.Record(ctx, other, []usage.Event{{Meter: "api_calls", Quantity: 1, IdempotencyKey: "slow-stripe-1"}})
				if err != nil || res.Accepted != 1 {
					t.Fatalf("another organisation's recordUsage: %+v, %v; want 1 accepted", res, err)
				}
				for i, org := range []string{other, slow} {
					code := deliverSubscription(t, db, hook, org, "sub_other_"+store.NewID(), "customer.subscription.created", time.Now(), 0)
					if code != http.StatusOK {
						t.Fatalf("webhook for org %d answered %d", i, code)
					}
				}
				stub.mu.Lock()
				waited := stub.stalledOut
				stub.mu.Unlock()
				if waited != 0 {
					t.Fatal("usage and webhooks completed only once the stalled Stripe call gave up: they waited for it")
				}
				close(stub.stall)
				if err := <-done; err != nil {
					t.Fatalf("the slow call: %v", err)
				}
			})
		}
	})
}

// deliverSubscription posts a signed subscription event of type typ for
// the organisation, created at at, and returns the status code; n tells
// events about one subscription apart. Its customer is linked to no
// organisation, so, as in real use, Tollgate first records the checkout
// that sold it.
func deliverSubscription(t *testing.T, db *store.DB, h http.Handler, orgID, subID, typ string, at time.Time, n int) int {
	t.Helper()
	recordCheckout(t, db, orgID, "cus_"+subID)
	created := at.Unix()
	body, err := json.Marshal(map[string]any{
		"id": fmt.Sprintf("evt_%s_%d", subID, n), "object": "event", "api_version": "2023-10-16", "created": created,
		"type": typ,
		"data": map[string]any{"object": map[string]any{
			"id": subID, "object": "subscription", "customer": "cus_" + subID, "status": "active",
			"created": created, "current_period_start": created, "current_period_end": created + 30*86400,
			"metadata": map[string]any{"org_id": orgID},
			"items": map[string]any{"object": "list", "data": []any{map[string]any{
				"id": "si_" + subID, "object": "subscription_item", "price": map[string]any{"id": "price_tollgate_starter_monthly", "object": "price"},
			}}},
		}},
	})
	if err != nil {
		t.Error(err)
		return 0
	}
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: hookSecret, Timestamp: time.Now()})
	req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(body))
	req.Header.Set("Stripe-Signature", signed.Header)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code
}

// Stripe creates the session but its answer never arrives: the session is
// not lost. The next checkout learns its id under the same idempotency key
// and expires it before opening another, so only one can be paid.
func TestASessionCreatedButNeverAnsweredIsExpiredByTheNextCheckout(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		stub := newStripeStub(t)
		stub.failAfterCreate = 1
		svc := newService(db, stub.client())
		org := newOrg(t, db, "billing@acme.test")
		in := billing.CheckoutInput{Plan: "starter", SuccessURL: okSuccess, CancelURL: okCancel}

		_, err := svc.CreateCheckoutSession(ctx, org, in)
		wantStripeOutage(t, err)
		lost := stub.createdSessions()
		if len(lost) != 1 {
			t.Fatalf("Stripe created %v, want one session", lost)
		}

		next, err := svc.CreateCheckoutSession(ctx, org, in)
		if err != nil {
			t.Fatal(err)
		}
		onlyTheNewSessionIsPayable(t, db, stub, org, lost[0], next.ID)
	})
}

// onlyTheNewSessionIsPayable requires Stripe to have created exactly two
// sessions, the earlier one expired, and the new one the only one open at
// Stripe and in Tollgate's records.
func onlyTheNewSessionIsPayable(t *testing.T, db *store.DB, stub *stripeStub, org, earlier, next string) {
	t.Helper()
	if st, _ := stub.status(earlier); st != "expired" {
		t.Fatalf("the earlier session %s is %s, want expired", earlier, st)
	}
	if got := stub.open(); len(got) != 1 || got[0] != next {
		t.Fatalf("payable sessions at Stripe: %v, want only the new %s", got, next)
	}
	if got := stub.createdSessions(); len(got) != 2 {
		t.Fatalf("Stripe created %v, want two; asking again under the same key must not create a third", got)
	}
	if got := openCheckouts(t, db, org); len(got) != 1 || got[0] != next {
		t.Fatalf("open checkout sessions recorded: %v, want [%s]", got, next)
	}
}

// `stripe sync` learns the id of a session whose creation was never
// recorded, once it is too old to be in a caller's hands.
func TestSyncRecordsASessionCreatedButNeverAnswered(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		stub := newStripeStub(t)
		stub.failAfterCreate = 1
		clk := clock.NewFake(time.Now())
		svc := billing.NewService(db, plans.Default(), clk, stub.client(), stripetest.Discard())
		org := newOrg(t, db, "billing@acme.test")

		_, err := svc.CreateCheckoutSession(ctx, org, billing.CheckoutInput{Plan: "starter", SuccessURL: okSuccess, CancelURL: okCancel})
		wantStripeOutage(t, err)
		if got := openCheckouts(t, db, org); len(got) != 1 || got[0] != "" {
			t.Fatalf("checkout sessions recorded: %q, want one pending", got)
		}
		if lines, err := svc.ResolvePendingCheckouts(ctx, org); err != nil || len(lines) != 0 {
			t.Fatalf("a fresh pending session was resolved (%q, %v); a caller may still hold it", lines, err)
		}
		clk.Advance(2 * time.Minute)
		if _, err := svc.ResolvePendingCheckouts(ctx, org); err != nil {
			t.Fatal(err)
		}
		created := stub.createdSessions()
		if got := openCheckouts(t, db, org); len(created) != 1 || len(got) != 1 || got[0] != created[0] {
			t.Fatalf("recorded %q after sync, want Stripe's %v", got, created)
		}
	})
}

// A session paid at Stripe whose subscription has not arrived yet blocks a
// new checkout (CHECKOUT_PENDING) and stays on record to be judged again;
// once that subscription has ended, the next checkout goes ahead.
func TestAPaidSessionWhoseSubscriptionIsStillToComeBlocksTheNext(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		stub := newStripeStub(t)
		svc := newService(db, stub.client())
		org := newOrg(t, db, "billing@acme.test")
		in := billing.CheckoutInput{Plan: "starter", SuccessURL: okSuccess, CancelURL: okCancel}

		first, err := svc.CreateCheckoutSession(ctx, org, in)
		if err != nil {
			t.Fatal(err)
		}
		subID := "sub_" + store.NewID()
		stub.pay(first.ID, subID)

		_, err = svc.CreateCheckoutSession(ctx, org, in)
		wantFieldError(t, err, "input.plan", billing.CodeCheckoutPending)
		if got := openCheckouts(t, db, org); len(got) != 1 || got[0] != first.ID {
			t.Fatalf("open checkout sessions recorded: %v, want only the paid %s", got, first.ID)
		}
		if n := len(stub.createdSessions()); n != 1 {
			t.Fatalf("Stripe created %d sessions, want only the first", n)
		}

		// The subscription it sold arrives, and later ends.
		subscribe(t, db, svc, org, stripeSub(subID, "cus_"+store.NewID(), "price_tollgate_starter_monthly", "canceled"), nowUTC())
		next, err := svc.CreateCheckoutSession(ctx, org, in)
		if err != nil {
			t.Fatalf("checkout after the sold subscription ended: %v", err)
		}
		if got := openCheckouts(t, db, org); len(got) != 1 || got[0] != next.ID {
			t.Fatalf("open checkout sessions recorded: %v, want only the new %s", got, next.ID)
		}
	})
}

// Stripe answers a checkout with a session Tollgate may not use. The
// caller gets UNAVAILABLE, and trying again works: the retry is a new
// attempt under its own idempotency key (Stripe would replay the unusable
// answer under the old one), and the unusable session, which Stripe did
// create, is expired first, so only the new one can be paid.
func TestARetryAfterAnUnusableCheckoutAnswerAsksStripeAgain(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		stub := newStripeStub(t)
		stub.unusableNext = 1
		svc := newService(db, stub.client())
		org := newOrg(t, db, "billing@acme.test")
		in := billing.CheckoutInput{Plan: "starter", SuccessURL: okSuccess, CancelURL: okCancel}

		_, err := svc.CreateCheckoutSession(ctx, org, in)
		wantStripeOutage(t, err)
		bad := stub.createdSessions()
		if len(bad) != 1 {
			t.Fatalf("Stripe created %v, want one session", bad)
		}

		next, err := svc.CreateCheckoutSession(ctx, org, in)
		if err != nil {
			t.Fatalf("retry after an unusable answer: %v, want a session", err)
		}
		if next.ID == bad[0] || next.URL != "https://checkout.stripe.com/c/pay/"+next.ID {
			t.Fatalf("retry answered %+v, want a new session with its own URL", next)
		}
		onlyTheNewSessionIsPayable(t, db, stub, org, bad[0], next.ID)
	})
}

// The same unusable answer, learnt by `stripe sync` for an attempt whose
// first answer was lost, is settled too rather than left pending.
func TestSyncSettlesAPendingCheckoutWhoseAnswerIsUnusable(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		stub := newStripeStub(t)
		stub.failAfterCreate, stub.unusableNext = 1, 1
		c := clock.NewFake(time.Now().UTC())
		svc := billing.NewService(db, plans.Default(), c, stub.client(), stripetest.Discard())
		org := newOrg(t, db, "billing@acme.test")
		in := billing.CheckoutInput{Plan: "starter", SuccessURL: okSuccess, CancelURL: okCancel}
		_, err := svc.CreateCheckoutSession(ctx, org, in)
		wantStripeOutage(t, err)
		c.Advance(2 * time.Minute)

		if _, err := svc.ResolvePendingCheckouts(ctx, org); err != nil {
			t.Fatalf("sync: %v", err)
		}
		bad := stub.createdSessions()
		if got := openCheckouts(t, db, org); len(got) != 1 || got[0] != bad[0] {
			t.Fatalf("checkout sessions not closed after sync: %v, want [%s] recorded for the next checkout to expire", got, bad[0])
		}
		if _, err := svc.CreateCheckoutSession(ctx, org, in); err != nil {
			t.Fatalf("checkout after sync: %v", err)
		}
		if st, _ := stub.status(bad[0]); st != "expired" {
			t.Fatalf("the unusable session %s is %s, want expired", bad[0], st)
		}
	})
}
