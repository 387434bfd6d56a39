package graph_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// stripeFields is an operation of n aliased resumeSubscription fields: each
// is one call on Stripe for an organisation with a subscription, and is
// charged to the organisation's Stripe budget either way.
func stripeFields(n int) string {
	var b strings.Builder
	b.WriteString("mutation {")
	for i := range n {
		fmt.Fprintf(&b, " r%d: resumeSubscription { userErrors { code } }", i)
	}
	return b.String() + " }"
}

func withStripeBudget(t *testing.T, budget int, o apptest.Options) *apptest.Harness {
	o.Env = map[string]string{"STRIPE_SECRET_KEY": "sk_test_tollgate", "STRIPE_API_BASE": testenv.StripeMock(t),
		"STRIPE_CALLS_PER_ORGANIZATION": strconv.Itoa(budget), "API_RATE_LIMIT_PER_ORGANIZATION": "5000"}
	return apptest.New(t, o)
}

// TestAnOrganisationsStripeCallsAreBudgeted: every organisation shares one
// Stripe account and its rate limit, so each may run only so many fields
// that call Stripe a second, all its credentials together: the budget's
// worth pass, the next is refused before it runs with RATE_LIMITED and a
// retry-after, and another organisation is not affected.
func TestAnOrganisationsStripeCallsAreBudgeted(t *testing.T) {
	const budget = 3
	h := withStripeBudget(t, budget, apptest.Options{})
	if r := h.Query("acme", stripeFields(budget), nil); len(r.Errors) > 0 || r.Status != http.StatusOK {
		t.Fatalf("%d Stripe-calling fields of a budget of %d: %d %+v", budget, budget, r.Status, r.Errors)
	}
	// Through a fragment too.
	r := h.Query("acme", `mutation { ... on Mutation { x: resumeSubscription { userErrors { code } } } }`, nil)
	if r.Status != http.StatusTooManyRequests || r.Code() != "RATE_LIMITED" {
		t.Fatalf("Stripe-calling field %d of a budget of %d a second: %d %+v, want 429 RATE_LIMITED", budget+1, budget, r.Status, r.Errors)
	}
	if secs, ok := r.Errors[0].Extensions["retryAfterSeconds"].(float64); !ok || secs < 1 {
		t.Errorf("refusal extensions %+v, want retryAfterSeconds of at least 1", r.Errors[0].Extensions)
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q, want whole seconds", r.Header.Get("Retry-After"))
	}
	if len(r.Data) > 0 && string(r.Data) != "null" {
		t.Errorf("a refused operation ran: %s", r.Data)
	}
	// Other fields are not Stripe's: the organisation's other work goes on.
	if r := h.Query("acme", `{ organization { id } }`, nil); len(r.Errors) > 0 {
		t.Errorf("a query that calls no Stripe, after the Stripe budget ran out: %+v", r.Errors)
	}
	if r := h.Query("globex", stripeFields(budget), nil); len(r.Errors) > 0 {
		t.Errorf("another organisation's %d Stripe-calling fields: %+v; organisations must not share a budget", budget, r.Errors)
	}
	if r := h.Query("acme", stripeFields(budget+1), nil); r.Code() != "TOO_MUCH_WORK" {
		t.Errorf("%d Stripe-calling fields against a budget of %d: %d %+v, want TOO_MUCH_WORK", budget+1, budget, r.Status, r.Errors)
	}
}

// TestAStripeBudgetOfZeroIsOff: STRIPE_CALLS_PER_ORGANIZATION=0 counts
// nothing.
func TestAStripeBudgetOfZeroIsOff(t *testing.T) {
	h := withStripeBudget(t, 0, apptest.Options{})
	for i := range 5 {
		if r := h.Query("acme", stripeFields(4), nil); len(r.Errors) > 0 {
			t.Fatalf("operation %d of 4 Stripe-calling fields with the budget off: %d %+v", i+1, r.Status, r.Errors)
		}
	}
}

// TestTheStripeBudgetLetsThroughWhileRedisIsDown: the budget is counted in
// Redis, and a cache must never take the API down: with Redis unreachable,
// Stripe-calling fields run uncounted, as every other limit lets requests
// through.
func TestTheStripeBudgetLetsThroughWhileRedisIsDown(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redisconn.New(redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1}), testenv.RedisPrefix())
	h := withStripeBudget(t, 1, apptest.Options{RedisClient: rdb})
	tok := map[string]string{"Authorization": "Bearer " + h.Token("acme")}
	if r := h.Do(tok, stripeFields(1), nil); len(r.Errors) > 0 {
		t.Fatalf("the first Stripe-calling field: %+v", r.Errors)
	}
	if r := h.Do(tok, stripeFields(1), nil); r.Code() != "RATE_LIMITED" {
		t.Fatalf("the second Stripe-calling field of a budget of 1, Redis up: %d %+v, want RATE_LIMITED", r.Status, r.Errors)
	}
	m.Close()
	for i := range 3 {
		if r := h.Do(tok, stripeFields(1), nil); len(r.Errors) > 0 || r.Status != http.StatusOK {
			t.Fatalf("Stripe-calling field %d with Redis down: %d %+v, want it let through", i+1, r.Status, r.Errors)
		}
	}
}
