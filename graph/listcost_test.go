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
