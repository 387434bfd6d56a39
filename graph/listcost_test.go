package graph_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tollgate-billing/tollgate/graph"
	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/outbound"
	"github.com/tollgate-billing/tollgate/internal/usage"
)

// TestListsArePricedByTheRowsTheyCanReturn: a list field costs what its
// page can hold, nested lists per item of their parent, so aliases cannot
// multiply rows past the complexity limit (16 aliases of usageByEndpoint
// once returned 126 MB), while small pages of the same fields pass.
func TestListsArePricedByTheRowsTheyCanReturn(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	aliased := func(n int, field string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, " a%d: %s", i, field)
		}
		return b.String() + " }"
	}
	byEndpoint := func(first int) string {
		return fmt.Sprintf(`usageByEndpoint(first: %d) { endpoint meter used cursor }`, first)
	}
	deliveries := func(first int) string {
		return fmt.Sprintf(`webhookDeliveries(endpointId: "x", first: %d) { id attempts { statusCode } }`, first)
	}
	cases := []struct {
		name   string
		field  func(int) string
		perRow int // the price of one row: its fields, nested lists by their size
	}{
		{"usageByEndpoint", byEndpoint, 4},
		{"webhookDeliveries with attempts", deliveries, 1 + 1 + outbound.MaxAttemptsShown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			full := map[string]int{"usageByEndpoint": usage.MaxEndpointPage, "webhookDeliveries with attempts": outbound.MaxDeliveries}[tc.name]
			over := graph.MaxComplexity/(1+full*tc.perRow) + 1
			if r := h.Query("acme", aliased(over, tc.field(full)), nil); r.Code() != "COMPLEXITY_LIMIT_EXCEEDED" {
				t.Errorf("%d aliases of full pages: %d %+v, want COMPLEXITY_LIMIT_EXCEEDED", over, r.Status, r.Errors)
			}
			if r := h.Query("acme", aliased(over, tc.field(1)), nil); r.Code() == "COMPLEXITY_LIMIT_EXCEEDED" {
				t.Errorf("%d aliases of one-row pages were refused: %+v", over, r.Errors)
			}
		})
	}
}

// TestStripeCallsPerOperationAreBounded: aliases of a field that calls
// Stripe once made one request open 200 Checkout sessions (200 calls on the
// Stripe account every organisation shares, and 200 rows), and 400 aliased
// upcomingInvoice fields ran 400 previews at once. Each such field now costs
// graph.StripeCallCost: graph.MaxStripeCalls of them run, one more is
// refused before anything runs, through fragments too.
func TestStripeCallsPerOperationAreBounded(t *testing.T) {
	h := withStripe(t)
	checkouts := func(n int, viaFragment bool) string {
		var b strings.Builder
		b.WriteString("mutation {")
		for i := range n {
			field := fmt.Sprintf(`a%d: createCheckoutSession(input: {plan: "starter", successUrl: "https://app.example.com/ok", cancelUrl: "https://app.example.com/no"}) { sessionId userErrors { code } }`, i)
			if viaFragment {
				field = "... on Mutation { " + field + " }"
			}
			b.WriteString(" " + field)
		}
		return b.String() + " }"
	}
	opened := func() int64 {
		var n int64
		if err := h.App.DB.Raw("SELECT COUNT(*) FROM checkout_sessions").Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, viaFragment := range []bool{false, true} {
		before := opened()
		if r := h.Query("acme", checkouts(graph.MaxStripeCalls+1, viaFragment), nil); r.Code() != "COMPLEXITY_LIMIT_EXCEEDED" {
			t.Fatalf("%d aliased checkouts (fragment %v): %d %+v, want COMPLEXITY_LIMIT_EXCEEDED", graph.MaxStripeCalls+1, viaFragment, r.Status, r.Errors)
		}
		if got := opened(); got != before {
			t.Fatalf("a refused operation opened %d Checkout sessions", got-before)
		}
	}
	before := opened()
	if r := h.Query("acme", checkouts(graph.MaxStripeCalls, false), nil); len(r.Errors) > 0 {
		t.Fatalf("%d aliased checkouts: %+v", graph.MaxStripeCalls, r.Errors)
	}
	if got := opened() - before; got != graph.MaxStripeCalls {
		t.Fatalf("%d aliased checkouts opened %d sessions", graph.MaxStripeCalls, got)
	}

	// Every other field of graph.StripeFields (the Stripe budget's list),
	// so a field added there and not priced here fails.
	others := map[string]string{
		"upcomingInvoice":     `upcomingInvoice { overageSoFarCents }`,
		"createPortalSession": `mutation { %s }|createPortalSession(input: {returnUrl: "https://app.example.com/"}) { url }`,
		"cancelSubscription":  `mutation { %s }|cancelSubscription(input: {atPeriodEnd: true}) { userErrors { code } }`,
		"resumeSubscription":  `mutation { %s }|resumeSubscription { userErrors { code } }`,
	}
	for _, name := range graph.StripeFields {
		if name == "createCheckoutSession" {
			continue // above
		}
		field, ok := others[name]
		if !ok {
			t.Errorf("no operation here for %s, one of graph.StripeFields", name)
			continue
		}
		op, f, isMutation := strings.Cut(field, "|")
		if !isMutation {
			op, f = "{ %s }", field
		}
		var b strings.Builder
		for i := range graph.MaxStripeCalls + 1 {
			fmt.Fprintf(&b, " a%d: %s", i, f)
		}
		if r := h.Query("acme", fmt.Sprintf(op, b.String()), nil); r.Code() != "COMPLEXITY_LIMIT_EXCEEDED" {
			t.Errorf("%d aliases of %s: %d %+v, want COMPLEXITY_LIMIT_EXCEEDED", graph.MaxStripeCalls+1, f, r.Status, r.Errors)
		}
	}
}
