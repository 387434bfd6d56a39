package billing_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stripe/stripe-go/v76"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

const (
	okSuccess = "https://app.example.com/billing/success?session={CHECKOUT_SESSION_ID}"
	okCancel  = "https://app.example.com/billing"
)

func TestCheckoutRejectsBadInputWithoutCallingStripe(t *testing.T) {
	long := "https://app.example.com/" + strings.Repeat("a", 2000)
	cases := []struct {
		name        string
		in          billing.CheckoutInput
		field, code string
	}{
		{"no plan", billing.CheckoutInput{SuccessURL: okSuccess, CancelURL: okCancel}, "input.plan", billing.CodeRequired},
		{"a plan that does not exist", billing.CheckoutInput{Plan: "platinum", SuccessURL: okSuccess, CancelURL: okCancel}, "input.plan", billing.CodeUnknownPlan},
		{"the free plan", billing.CheckoutInput{Plan: "free", SuccessURL: okSuccess, CancelURL: okCancel}, "input.plan", billing.CodeNotPurchasable},
		{"a contact-sales plan", billing.CheckoutInput{Plan: "enterprise", SuccessURL: okSuccess, CancelURL: okCancel}, "input.plan", billing.CodeNotPurchasable},
		{"no success URL", billing.CheckoutInput{Plan: "starter", CancelURL: okCancel}, "input.successUrl", billing.CodeRequired},
		{"a relative success URL", billing.CheckoutInput{Plan: "starter", SuccessURL: "/billing/ok", CancelURL: okCancel}, "input.successUrl", billing.CodeInvalidURL},
		{"a javascript: success URL", billing.CheckoutInput{Plan: "starter", SuccessURL: "javascript:alert(1)", CancelURL: okCancel}, "input.successUrl", billing.CodeInvalidURL},
		{"an ftp cancel URL", billing.CheckoutInput{Plan: "starter", SuccessURL: okSuccess, CancelURL: "ftp://example.com/x"}, "input.cancelUrl", billing.CodeInvalidURL},
		{"a cancel URL over 2,000 characters", billing.CheckoutInput{Plan: "starter", SuccessURL: okSuccess, CancelURL: long}, "input.cancelUrl", billing.CodeTooLong},
	}
	db := testenv.DB(t)
	rec := stripetest.NewRecorder()
	svc := newService(db, stripetest.Client(t, rec))
	org := newOrg(t, db, "billing@acme.test")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.CreateCheckoutSession(context.Background(), org, tc.in)
			wantFieldError(t, err, tc.field, tc.code)
		})
	}
	if n := len(rec.Requests()); n != 0 {
		t.Fatalf("invalid input made %d Stripe request(s), want none", n)
	}
	if o := orgRow(t, db, org); o.StripeCustomerID != nil {
		t.Fatalf("invalid input stored customer %q", *o.StripeCustomerID)
	}
}

func TestCheckoutForNewOrgCreatesOneCustomerUnderConcurrentCalls(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		rec := stripetest.NewRecorder()
		svc := newService(db, stripetest.Client(t, rec))
		org := newOrg(t, db, "")
		const calls = 10
		var wg sync.WaitGroup
		errs := make([]error, calls)
		sessions := make([]billing.CheckoutSession, calls)
		for i := range calls {
			wg.Go(func() {
				sessions[i], errs[i] = svc.CreateCheckoutSession(context.Background(), org, billing.CheckoutInput{
					Plan: "starter", SuccessURL: okSuccess, CancelURL: okCancel, Email: "owner@acme.test",
				})
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			if sessions[i].ID == "" || !strings.HasPrefix(sessions[i].URL, "https://") {
				t.Fatalf("call %d returned session %+v, want Stripe's id and URL", i, sessions[i])
			}
		}

		customers := rec.Matching("POST", "/v1/customers")
		if len(customers) != 1 {
			t.Fatalf("created %d Stripe customers, want 1", len(customers))
		}
		c := customers[0]
		if c.Form.Get("metadata[org_id]") != org || c.Form.Get("email") != "owner@acme.test" {
			t.Errorf("customer created with %v, want metadata[org_id]=%s and the token email", c.Form, org)
		}
		if !strings.HasPrefix(c.IdempotencyKey, "tollgate-customer-"+org+"-") {
			t.Errorf("customer idempotency key = %q, want one derived from the org", c.IdempotencyKey)
		}
		stored := orgRow(t, db, org).StripeCustomerID
		if stored == nil || *stored == "" {
			t.Fatal("the customer id was not stored on the organisation")
		}

		checkouts := exactly(rec, "POST", "/v1/checkout/sessions")
		if len(checkouts) != calls {
			t.Fatalf("created %d checkout sessions, want %d", len(checkouts), calls)
		}
		// Each checkout after the first expired the one before it, so only
		// the last can be paid.
		if n := len(expiries(rec)); n != calls-1 {
			t.Errorf("expired %d earlier checkout sessions, want %d", n, calls-1)
		}
		for _, s := range checkouts {
			want := map[string]string{
				"mode": "subscription", "customer": *stored, "client_reference_id": org,
				"line_items[0][price]": "price_tollgate_starter_monthly", "line_items[0][quantity]": "1",
				"subscription_data[metadata][org_id]": org, "subscription_data[metadata][plan_id]": "starter",
				"metadata[org_id]": org, "success_url": okSuccess, "cancel_url": okCancel,
			}
			for k, v := range want {
				if got := s.Form.Get(k); got != v {
					t.Errorf("checkout session %s = %q, want %q", k, got, v)
				}
			}
		}
	})
}

func TestCheckoutPrefersTheOrgBillingEmail(t *testing.T) {
	db := testenv.DB(t)
	rec := stripetest.NewRecorder()
	svc := newService(db, stripetest.Client(t, rec))
	org := newOrg(t, db, "billing@acme.test")
	if _, err := svc.CreateCheckoutSession(context.Background(), org, billing.CheckoutInput{
		Plan: "growth", SuccessURL: okSuccess, CancelURL: okCancel, Email: "someone@acme.test",
	}); err != nil {
		t.Fatal(err)
	}
	if got := rec.Matching("POST", "/v1/customers")[0].Form.Get("email"); got != "billing@acme.test" {
		t.Fatalf("customer email = %q, want the org's billing email", got)
	}
	if got := rec.Matching("POST", "/v1/checkout/sessions")[0].Form.Get("line_items[0][price]"); got != "price_tollgate_growth_monthly" {
		t.Fatalf("checkout price = %q, want growth's", got)
	}
}

func TestCheckoutWhileSubscribedPointsToThePortal(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		rec := stripetest.NewRecorder()
		svc := newService(db, stripetest.Client(t, rec))
		for _, tc := range []struct{ name, status, plan string }{
			{"active on the same plan", "active", "starter"},
			{"active on another plan", "active", "growth"},
			{"past due", "past_due", "starter"},
			{"active at a price the plans file lacks", "active", "unknown"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				org := newOrg(t, db, "")
				price := map[string]string{"starter": "price_tollgate_starter_monthly", "growth": "price_tollgate_growth_monthly", "unknown": "price_not_in_the_plans_file"}[tc.plan]
				subscribe(t, db, svc, org, stripeSub("sub_"+store.NewID(), "cus_"+store.NewID(), price, stripe.SubscriptionStatus(tc.status)), nowUTC())
				before := len(rec.Requests())
				_, err := svc.CreateCheckoutSession(context.Background(), org, billing.CheckoutInput{Plan: "starter", SuccessURL: okSuccess, CancelURL: okCancel})
				wantFieldError(t, err, "input.plan", billing.CodeAlreadySubscribed)
				if fe, _ := apperr.AsFieldErrors(err); !strings.Contains(fe[0].Message, "portal") {
					t.Errorf("message %q does not point to the customer portal", fe[0].Message)
				} else if tc.plan == "unknown" && strings.Contains(fe[0].Message, "subscribes to") {
					// It used to say "already subscribes to Free", the plan a
					// mismatched subscription falls back to.
					t.Errorf("message %q names a plan the organisation does not pay for", fe[0].Message)
				}
				if n := len(rec.Requests()) - before; n != 0 {
					t.Fatalf("made %d Stripe request(s), want none", n)
				}
			})
		}
	})
}

func TestCheckoutAfterCancellationIsAllowed(t *testing.T) {
	db := testenv.DB(t)
	svc := newService(db, stripetest.Client(t, nil))
	org := newOrg(t, db, "")
	subscribe(t, db, svc, org, stripeSub("sub_"+store.NewID(), "cus_"+store.NewID(), "price_tollgate_starter_monthly", "canceled"), nowUTC())
	if _, err := svc.CreateCheckoutSession(context.Background(), org, billing.CheckoutInput{Plan: "starter", SuccessURL: okSuccess, CancelURL: okCancel}); err != nil {
		t.Fatalf("checkout after cancellation: %v", err)
	}
}

// exactly returns the requests with this method and path.
func exactly(rec *stripetest.Recorder, method, path string) []stripetest.Request {
	var out []stripetest.Request
	for _, r := range rec.Matching(method, path) {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// expiries returns the paths of the checkout sessions expired.
func expiries(rec *stripetest.Recorder) []string {
	var out []string
	for _, r := range rec.Matching("POST", "/v1/checkout/sessions/") {
		if strings.HasSuffix(r.Path, "/expire") {
			out = append(out, r.Path)
		}
	}
	return out
}

// Two Checkout sessions open at once could each be paid, selling two
// subscriptions before the first webhook arrives: opening a second expires
// the first, and once a completed checkout's subscription is recorded, the
// next one has nothing to expire.
func TestASecondCheckoutExpiresTheFirst(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		rec := stripetest.NewRecorder()
		svc := newService(db, stripetest.Client(t, rec))
		org := newOrg(t, db, "billing@acme.test")
		ctx := context.Background()
		in := billing.CheckoutInput{Plan: "starter", SuccessURL: okSuccess, CancelURL: okCancel}

		first, err := svc.CreateCheckoutSession(ctx, org, in)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(expiries(rec)); n != 0 {
			t.Fatalf("the first checkout expired %d sessions; there was none to expire", n)
		}
		if got := openCheckouts(t, db, org); len(got) != 1 || got[0] != first.ID {
			t.Fatalf("open checkout sessions recorded: %v, want [%s]", got, first.ID)
		}

		second, err := svc.CreateCheckoutSession(ctx, org, in)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := expiries(rec), []string{"/v1/checkout/sessions/" + first.ID + "/expire"}; len(got) != 1 || got[0] != want[0] {
			t.Fatalf("expired %v, want %v", got, want)
		}
		if got := openCheckouts(t, db, org); len(got) != 1 || got[0] != second.ID {
			t.Fatalf("open checkout sessions recorded: %v, want [%s]", got, second.ID)
		}

		// The webhook for the second session's completion, with its
		// subscription recorded, forgets it.
		if err := db.Tx(ctx, func(tx *gorm.DB) error { return svc.CheckoutCompleted(tx, org, second.ID, "") }); err != nil {
			t.Fatal(err)
		}
		if got := openCheckouts(t, db, org); len(got) != 0 {
			t.Fatalf("open checkout sessions %v still recorded after the completion", got)
		}
		if _, err := svc.CreateCheckoutSession(ctx, org, in); err != nil {
			t.Fatal(err)
		}
		if n := len(expiries(rec)); n != 1 {
			t.Fatalf("%d expiries after a completed checkout, want still 1", n)
		}
	})
}

func TestACheckoutPaidButNotYetRecordedRefusesAnother(t *testing.T) {
	sub := func(status string) *billing.Subscription { return &billing.Subscription{Status: status} }
	cases := []struct {
		name    string
		status  stripe.CheckoutSessionStatus
		sold    *billing.Subscription
		refused string // userErrors code, "" when allowed
	}{
		{"expired before payment", stripe.CheckoutSessionStatusExpired, nil, ""},
		{"paid, subscription not recorded yet", stripe.CheckoutSessionStatusComplete, nil, billing.CodeCheckoutPending},
		{"paid, subscription active", stripe.CheckoutSessionStatusComplete, sub("active"), billing.CodeAlreadySubscribed},
		{"paid, subscription trialing", stripe.CheckoutSessionStatusComplete, sub("trialing"), billing.CodeAlreadySubscribed},
		{"paid, subscription since canceled", stripe.CheckoutSessionStatusComplete, sub("canceled"), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := billing.PreviousCheckoutVerdict(c.status, c.sold)
			if c.refused == "" {
				if err != nil {
					t.Fatalf("refused with %v; a new checkout should be allowed", err)
				}
				return
			}
			wantFieldError(t, err, "input.plan", c.refused)
		})
	}
}

// failPath fails requests whose path is exactly path, as a dropped
// connection would, and sends the rest to stripe-mock.
type failPath struct{ method, path string }

func (f failPath) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == f.method && r.URL.Path == f.path {
		return nil, errors.New("connection reset by peer")
	}
	return http.DefaultTransport.RoundTrip(r)
}

// A customer Stripe created is kept even when opening the session then
// fails, so the retry reuses it instead of creating another.
func TestACustomerIsKeptWhenOpeningTheSessionFails(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := newOrg(t, db, "billing@acme.test")
		in := billing.CheckoutInput{Plan: "starter", SuccessURL: okSuccess, CancelURL: okCancel}

		broken := stripetest.NewRecorderTo(failPath{"POST", "/v1/checkout/sessions"})
		_, err := newService(db, stripetest.ClientAt(testenv.StripeMock(t), broken, 0)).CreateCheckoutSession(ctx, org, in)
		wantStripeOutage(t, err)
		if n := len(exactly(broken, "POST", "/v1/customers")); n != 1 {
			t.Fatalf("created %d customers, want 1", n)
		}
		stored := orgRow(t, db, org).StripeCustomerID
		if stored == nil || *stored == "" {
			t.Fatal("the customer Stripe created was not kept after the session failed")
		}

		rec := stripetest.NewRecorder()
		if _, err := newService(db, stripetest.Client(t, rec)).CreateCheckoutSession(ctx, org, in); err != nil {
			t.Fatal(err)
		}
		if n := len(exactly(rec, "POST", "/v1/customers")); n != 0 {
			t.Errorf("the retry created %d more customers, want none", n)
		}
		// The retry first asks again for the session that failed, under its
		// key (Stripe may have created it), then opens its own.
		failed := exactly(broken, "POST", "/v1/checkout/sessions")[0].IdempotencyKey
		got := exactly(rec, "POST", "/v1/checkout/sessions")
		if len(got) != 2 || got[0].IdempotencyKey != failed || got[1].IdempotencyKey == failed {
			t.Fatalf("the retry sent %d session requests, want the failed one again and then a new one", len(got))
		}
		for _, r := range got {
			if r.Form.Get("customer") != *stored {
				t.Errorf("the retry asked for a session of customer %q, want %s", r.Form.Get("customer"), *stored)
			}
		}
	})
}

// Stripe refuses a retry that reuses an idempotency key with other
// parameters, so the customer's key changes with anything it sends.
func TestTheCustomerKeyCoversEveryParameterSent(t *testing.T) {
	db := testenv.DB(t)
	ctx := context.Background()
	org := newOrg(t, db, "")
	in := billing.CheckoutInput{Plan: "starter", SuccessURL: okSuccess, CancelURL: okCancel}
	broken := stripetest.NewRecorderTo(failPath{"POST", "/v1/customers"})
	svc := newService(db, stripetest.ClientAt(testenv.StripeMock(t), broken, 0))

	for _, email := range []string{"first@acme.test", "first@acme.test", "second@acme.test"} {
		in.Email = email
		_, err := svc.CreateCheckoutSession(ctx, org, in)
		wantStripeOutage(t, err)
	}
	reqs := exactly(broken, "POST", "/v1/customers")
	if len(reqs) != 3 {
		t.Fatalf("%d customer requests, want 3", len(reqs))
	}
	if reqs[0].IdempotencyKey != reqs[1].IdempotencyKey {
		t.Errorf("the same parameters were sent under keys %q and %q, want one", reqs[0].IdempotencyKey, reqs[1].IdempotencyKey)
	}
	if reqs[1].IdempotencyKey == reqs[2].IdempotencyKey || reqs[2].Form.Get("email") != "second@acme.test" {
		t.Errorf("another email was sent under the same key %q", reqs[2].IdempotencyKey)
	}
}

// intervalCatalog sells team monthly and yearly and solo only monthly;
// free and big (contact sales) are not sold through Checkout.
func intervalCatalog(t *testing.T) *plans.Catalog {
	t.Helper()
	catalog, err := plans.Parse([]byte(`meters: [{name: api_calls, reset: monthly}]
plans:
  - {id: free, name: Free, rate_limit_per_second: 1, limits: {api_calls: {limit: 1}}}
  - id: team
    name: Team
    prices:
      - {id: price_team_m, interval: month, amount_cents: 1000}
      - {id: price_team_y, interval: year, amount_cents: 10000}
    rate_limit_per_second: 1
    limits: {api_calls: {limit: 10}}
  - {id: solo, name: Solo, prices: [{id: price_solo_m, interval: month, amount_cents: 500}], rate_limit_per_second: 1, limits: {api_calls: {limit: 5}}}
  - {id: big, name: Big, contact_sales: true, rate_limit_per_second: 1, limits: {api_calls: {unlimited: true}}}
`), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	return catalog
}

// Checkout sells the plan's price for the interval asked, monthly by
// default; an interval the plan is not sold at is refused before Stripe is
// called.
func TestCheckoutSellsThePriceOfTheIntervalAsked(t *testing.T) {
	db := testenv.DB(t)
	rec := stripetest.NewRecorder()
	svc := billing.NewService(db, intervalCatalog(t), clock.Real{}, stripetest.Client(t, rec), stripetest.Discard())
	ctx := context.Background()
	for _, tc := range []struct{ interval, want string }{{"", "price_team_m"}, {"month", "price_team_m"}, {"year", "price_team_y"}} {
		org := newOrg(t, db, "billing@acme.test")
		if _, err := svc.CreateCheckoutSession(ctx, org, billing.CheckoutInput{Plan: "team", Interval: tc.interval, SuccessURL: okSuccess, CancelURL: okCancel}); err != nil {
			t.Fatal(err)
		}
		sent := exactly(rec, "POST", "/v1/checkout/sessions")
		if got := sent[len(sent)-1].Form.Get("line_items[0][price]"); got != tc.want {
			t.Errorf("interval %q sold %s, want %s", tc.interval, got, tc.want)
		}
	}
	before := len(rec.Requests())
	_, err := svc.CreateCheckoutSession(ctx, newOrg(t, db, ""), billing.CheckoutInput{Plan: "solo", Interval: "year", SuccessURL: okSuccess, CancelURL: okCancel})
	wantFieldError(t, err, "input.interval", billing.CodeNotPurchasable)
	if n := len(rec.Requests()) - before; n != 0 {
		t.Fatalf("a refused interval made %d Stripe requests", n)
	}
}

// A refused plan or interval says what Checkout does sell, as an unknown
// meter's refusal lists the meters: a caller who sent a plan's name
// ("Team", as a pricing page writes it) or a tier sold only by contract
// learns the ids to send, and one who asked for a yearly price learns how
// the plan is sold.
func TestACheckoutRefusalSaysWhatIsSold(t *testing.T) {
	db := testenv.DB(t)
	svc := billing.NewService(db, intervalCatalog(t), clock.Real{}, stripetest.Client(t, stripetest.NewRecorder()), stripetest.Discard())
	org := newOrg(t, db, "billing@acme.test")
	const sold = "the plans sold through Checkout are team, solo."
	for _, tc := range []struct {
		name        string
		in          billing.CheckoutInput
		field, want string
	}{
		{"a plan's name for its id", billing.CheckoutInput{Plan: "Team"}, "input.plan", `There is no plan "Team"; ` + sold},
		{"the free plan", billing.CheckoutInput{Plan: "free"}, "input.plan", "The Free plan is not sold through Checkout; " + sold},
		{"a contact-sales plan", billing.CheckoutInput{Plan: "big"}, "input.plan", "The Big plan is not sold through Checkout; " + sold},
		{"a monthly-only plan yearly", billing.CheckoutInput{Plan: "solo", Interval: plans.IntervalYear}, "input.interval", "The Solo plan is not sold yearly; it is sold monthly."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.SuccessURL, tc.in.CancelURL = okSuccess, okCancel
			_, err := svc.CreateCheckoutSession(context.Background(), org, tc.in)
			fe, _ := apperr.AsFieldErrors(err)
			if len(fe) != 1 || fe[0].Field != tc.field || fe[0].Message != tc.want {
				t.Fatalf("userErrors = %+v, want one on %s saying %q", fe, tc.field, tc.want)
			}
		})
	}
}

// Every Stripe object Tollgate creates for an organisation carries its
// external id beside Tollgate's org_id, so an operator can find the
// organisation from the Stripe dashboard: the customer, the Checkout
// session and the subscription it sells. A session asked for again under
// its idempotency key sends the same metadata as the first request.
func TestStripeObjectsCarryTheOrgsExternalID(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		org := newOrg(t, db, "billing@acme.test")
		ext := orgRow(t, db, org).ExternalID
		in := billing.CheckoutInput{Plan: "starter", SuccessURL: okSuccess, CancelURL: okCancel}

		broken := stripetest.NewRecorderTo(failPath{"POST", "/v1/checkout/sessions"})
		_, err := newService(db, stripetest.ClientAt(testenv.StripeMock(t), broken, 0)).CreateCheckoutSession(ctx, org, in)
		wantStripeOutage(t, err)
		rec := stripetest.NewRecorder()
		if _, err := newService(db, stripetest.Client(t, rec)).CreateCheckoutSession(ctx, org, in); err != nil {
			t.Fatal(err)
		}

		customers := exactly(broken, "POST", "/v1/customers")
		if len(customers) != 1 {
			t.Fatalf("%d customer requests, want 1", len(customers))
		}
		if got := customers[0].Form.Get("metadata[org_external_id]"); got != ext {
			t.Errorf("customer metadata.org_external_id = %q, want %q", got, ext)
		}
		sessions := append(exactly(broken, "POST", "/v1/checkout/sessions"), exactly(rec, "POST", "/v1/checkout/sessions")...)
		if len(sessions) != 3 {
			t.Fatalf("%d session requests, want the failed one, its retry and a new one", len(sessions))
		}
		for i, r := range sessions {
			for _, field := range []string{"metadata[org_external_id]", "subscription_data[metadata][org_external_id]"} {
				if got := r.Form.Get(field); got != ext {
					t.Errorf("session request %d: %s = %q, want %q", i, field, got, ext)
				}
			}
			if got := r.Form.Get("metadata[org_id]"); got != org {
				t.Errorf("session request %d: metadata[org_id] = %q, want %q", i, got, org)
			}
		}
	})
}
