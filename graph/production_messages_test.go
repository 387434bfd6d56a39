package graph_test

import (
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/tollgate-billing/tollgate/graph/generated"
	"github.com/tollgate-billing/tollgate/internal/apptest"
)

// TestProductionValueErrorsNameNoType: every kind of value a client can
// get wrong outside validation (a variable's coercion, an input object, an
// enum, the built-in and the schema's own scalars, an unknown input field,
// null or nothing where a value is required) is answered in production
// as BAD_USER_INPUT with a sentence that says where (the variable or
// argument path) and names no type, not even a built-in one: gqlgen and
// gqlparser wrote "expected an object of the input type
// ConsumeUsageInput", "is not a value of InvoiceStatus", "Int64 cannot
// represent …", "Time must be …", handing out the schema one mistake at a
// time.
func TestProductionValueErrorsNameNoType(t *testing.T) {
	h := apptest.New(t, apptest.Options{Env: map[string]string{
		"TOLLGATE_ENV": "production", "DATABASE_URL": "postgres://unused/x", "REDIS_URL": "redis://unused:6379",
	}})
	schema := generated.NewExecutableSchema(generated.Config{}).Schema()
	var names []string
	for name := range schema.Types {
		if !strings.HasPrefix(name, "__") {
			names = append(names, regexp.QuoteMeta(name))
		}
	}
	sort.Strings(names)
	namesType := regexp.MustCompile(`\b(` + strings.Join(names, "|") + `)\b`)

	const (
		consume = `mutation($in: ConsumeUsageInput!) { consumeUsage(input: $in) { allowed } }`
		record  = `mutation($in: RecordUsageInput!) { recordUsage(input: $in) { accepted } }`
		gate    = `query($q: Int64!) { usageGate(meter: "api_calls", quantity: $q) { allowed } }`
		status  = `query($s: InvoiceStatus) { invoices(status: $s) { nodes { id } } }`
		series  = `query($f: Date!) { usageSeries(meter: "api_calls", from: $f, to: "2026-01-02") { used } }`
	)
	event := func(k string, v any) map[string]any {
		e := map[string]any{"meter": "api_calls", "quantity": 1, "idempotencyKey": "k"}
		if v == nil {
			delete(e, k)
		} else {
			e[k] = v
		}
		return e
	}
	null := []any{nil}[0]
	for _, tc := range []struct {
		name  string
		query string
		vars  map[string]any
		at    string // where the message says the value is
	}{
		{"an input object sent as a string", consume, map[string]any{"in": "x"}, "variable $in:"},
		{"an input object sent as a list", consume, map[string]any{"in": []any{1}}, "variable $in:"},
		{"an input object in a list sent as a string", record, map[string]any{"in": map[string]any{"events": []any{"x"}}}, "variable $in.events[0]:"},
		{"null for a required input object", consume, map[string]any{"in": null}, "variable $in:"},
		{"no value for a required variable", consume, map[string]any{}, "variable $in:"},
		{"null for a required input field", consume, map[string]any{"in": map[string]any{"meter": null, "quantity": 1, "idempotencyKey": "k"}}, "variable $in.meter:"},
		{"a required input field left out", consume, map[string]any{"in": event("quantity", nil)}, "variable $in.quantity:"},
		{"an unknown input field", consume, map[string]any{"in": event("colour", "red")}, "variable $in.colour:"},
		{"a number for a String", consume, map[string]any{"in": event("meter", 5)}, "variable $in.meter:"},
		{"a word for an Int64", consume, map[string]any{"in": event("quantity", "abc")}, "variable $in.quantity:"},
		{"a fraction for an Int64", gate, map[string]any{"q": 1.5}, "variable $q:"},
		{"an Int64 past 64 bits", gate, map[string]any{"q": "99999999999999999999"}, "variable $q:"},
		{"an Int past 32 bits", `query($f: Int) { invoices(first: $f) { nodes { id } } }`, map[string]any{"f": 5000000000}, "variable $f:"},
		{"a word for a Time", record, map[string]any{"in": map[string]any{"events": []any{event("timestamp", "yesterday")}}}, "variable $in.events[0].timestamp:"},
		{"a Time before 2000", record, map[string]any{"in": map[string]any{"events": []any{event("timestamp", "1999-01-01T00:00:00Z")}}}, "variable $in.events[0].timestamp:"},
		{"a number for a Date", series, map[string]any{"f": 5}, "variable $f:"},
		{"a month 13 for a Date", series, map[string]any{"f": "2026-13-01"}, "variable $f:"},
		{"an unknown enum value", status, map[string]any{"s": "PAYED"}, "variable $s:"},
		{"an enum value in lower case", status, map[string]any{"s": "paid"}, "variable $s:"},
		{"a number for an enum", status, map[string]any{"s": 1}, "variable $s:"},
		{"an unknown enum value in a list", `mutation($k: [Scope!]!) { createApiKey(input: {name: "ab", scopes: $k}) { secret } }`, map[string]any{"k": []any{"NOPE"}}, "variable $k[0]:"},
		{"an unknown enum value in an input object", `mutation($i: CreateCheckoutSessionInput!) { createCheckoutSession(input: $i) { url } }`,
			map[string]any{"i": map[string]any{"plan": "pro", "interval": "WEEK", "successUrl": "https://a.example", "cancelUrl": "https://a.example"}}, "variable $i.interval:"},
		{"a string for a Boolean", `mutation($i: CancelSubscriptionInput) { cancelSubscription(input: $i) { userErrors { code } } }`, map[string]any{"i": map[string]any{"atPeriodEnd": "yes"}}, "variable $i.atPeriodEnd:"},
		{"a word for an Int64 literal", `{ usageGate(meter: "api_calls", quantity: "abc") { allowed } }`, nil, "quantity:"},
		{"an Int64 literal past 64 bits", `{ usageGate(meter: "api_calls", quantity: 99999999999999999999) { allowed } }`, nil, "quantity:"},
		{"a word for an Int64 default", `query($q: Int64 = "abc") { usageGate(meter: "api_calls", quantity: $q) { allowed } }`, nil, "$q (default):"},
		{"a word for a Date literal", `{ usageSeries(meter: "api_calls", from: "x", to: "2026-01-02") { used } }`, nil, "from:"},
		{"a word for a Time literal", `mutation { recordUsage(input: {events: [{meter: "api_calls", quantity: 1, idempotencyKey: "k", timestamp: "x"}]}) { accepted } }`, nil, "input.events[0].timestamp:"},
		{"a null literal for a required argument", `{ usageGate(meter: "api_calls", quantity: null) { allowed } }`, nil, "quantity:"},
		{"a null literal for a required input field", `mutation { recordUsage(input: {events: [{meter: null, quantity: 1, idempotencyKey: "k"}]}) { accepted } }`, nil, "input.events[0].meter:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.Query("acme", tc.query, tc.vars)
			if len(r.Errors) != 1 || r.Code() != "BAD_USER_INPUT" {
				t.Fatalf("answered %s, want one BAD_USER_INPUT", r.Body)
			}
			msg := r.Errors[0].Message
			if !strings.HasPrefix(msg, tc.at+" ") {
				t.Errorf("message %q does not start with where the value is, %q", msg, tc.at)
			}
			if m := namesType.FindString(msg); m != "" {
				t.Errorf("message %q names the type %s", msg, m)
			}
		})
	}
}
