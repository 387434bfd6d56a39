package graph_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/tollgate-billing/tollgate/client"
	"github.com/tollgate-billing/tollgate/graph"
	"github.com/tollgate-billing/tollgate/graph/generated"
	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/observe"
)

// everyField selects every field of a schema type, and every field of each
// object it reaches, so a field added to the schema fails the comparisons
// below until the prepared path writes it as the generated code does.
func everyField(schema *ast.Schema, typeName string) string {
	var b strings.Builder
	b.WriteString("{ __typename")
	for _, f := range schema.Types[typeName].Fields {
		b.WriteString(" " + f.Name)
		if t := schema.Types[f.Type.Name()]; t.Kind == ast.Object {
			b.WriteString(" " + everyField(schema, t.Name))
		}
	}
	b.WriteString(" }")
	return b.String()
}

// twins sends usage writes twice, in lockstep, on two organisations with the
// same history: to one as written, which the prepared path answers, and to
// the other with @include(if: true) after the root field's arguments (the
// "%s" in the document), which means the same but runs through gqlgen's
// generated execution. Their answers name no organisation, so they must be
// the same bytes.
type twins struct {
	t     *testing.T
	h     *apptest.Harness
	field string
	orgs  [2]string
}

func newTwins(t *testing.T, h *apptest.Harness, field, name string) *twins {
	return &twins{t: t, h: h, field: field, orgs: [2]string{"prepared-" + name, "generated-" + name}}
}

// send runs doc on both organisations, each with the given scopes (all when
// none), and fails unless only the first went to the prepared path (or
// neither, when fallback) and both answered the same.
func (tw *twins) send(doc string, vars map[string]any, fallback bool, scopes ...auth.Scope) apptest.Response {
	tw.t.Helper()
	before := preparedRuns(tw.field)
	prepared := tw.h.Do(map[string]string{"Authorization": "Bearer " + tw.h.Token(tw.orgs[0], scopes...)}, strings.Replace(doc, "%s", "", 1), vars)
	want := 1.0
	if fallback {
		want = 0
	}
	if got := preparedRuns(tw.field) - before; got != want {
		tw.t.Fatalf("the prepared path answered %v operations, want %v: %s", got, want, doc)
	}
	generic := tw.h.Do(map[string]string{"Authorization": "Bearer " + tw.h.Token(tw.orgs[1], scopes...)}, strings.Replace(doc, "%s", " @include(if: true)", 1), vars)
	if got := preparedRuns(tw.field) - before; got != want {
		tw.t.Fatalf("the document with @include went to the prepared path: %s", doc)
	}
	if string(prepared.Body) != string(generic.Body) || prepared.Status != generic.Status {
		tw.t.Fatalf("%s\nprepared path: %d %s\ngenerated code: %d %s", doc, prepared.Status, prepared.Body, generic.Status, generic.Body)
	}
	return prepared
}

func eventsOf(meter string, keys ...string) []any {
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = map[string]any{"meter": meter, "quantity": 1, "idempotencyKey": k}
	}
	return out
}

// TestPreparedRecordUsageAnswersAsTheGeneratedCodeDoes: recordUsage takes a
// shorter path than gqlgen's general execution; counted, duplicate and
// rejected events, input errors, a refused quota and a missing scope answer
// the generated code's bytes, whatever the selection (aliases, fragments on
// the payload's types, the Go client's document).
func TestPreparedRecordUsageAnswersAsTheGeneratedCodeDoes(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	schema := generated.NewExecutableSchema(generated.Config{}).Schema()
	tw := newTwins(t, h, "recordUsage", "record")
	all := `mutation($input: RecordUsageInput!) { recordUsage(input: $input)%s ` + everyField(schema, "RecordUsagePayload") + ` }`
	input := func(events ...any) map[string]any {
		return map[string]any{"input": map[string]any{"events": append([]any{}, events...)}}
	}

	r := tw.send(all, input(eventsOf("api_calls", "a", "b", "c")...), false)
	if want := `{"recordUsage":{"__typename":"RecordUsagePayload","accepted":3,"duplicates":0,"rejected":[],"rejectedCount":0,"usage":[{"__typename":"MeterUsage","meter":"api_calls","used":3,"limit":1000,"remaining":997,"unlimited":false,"overage":0,"hard":true,"reset":"MONTHLY","resetAt":"` + monthEnd(h) + `"}],"userErrors":[]}}`; string(r.Data) != want {
		t.Fatalf("data = %s\nwant %s", r.Data, want)
	}

	// A duplicate, an unknown meter, a negative quantity, an endpoint and a
	// timestamp given and given as null, a second meter.
	mixed := input(
		map[string]any{"meter": "api_calls", "quantity": 1, "idempotencyKey": "a"},
		map[string]any{"meter": "nope", "quantity": 1, "idempotencyKey": "n"},
		map[string]any{"meter": "api_calls", "quantity": -2, "idempotencyKey": "neg"},
		map[string]any{"meter": "llm_tokens", "quantity": 250, "idempotencyKey": "t", "endpoint": "POST /v1/chat",
			"timestamp": h.Clock.Now().Add(-1).Format("2006-01-02T15:04:05.999999999Z07:00")},
		map[string]any{"meter": "api_calls", "quantity": 1, "idempotencyKey": "d", "endpoint": nil, "timestamp": nil},
	)
	r = tw.send(all, mixed, false)
	for _, want := range []string{`"accepted":2,"duplicates":1`, `"index":1,"code":"UNKNOWN_METER"`, `"index":2,"code":"INVALID_QUANTITY"`, `"meter":"llm_tokens","used":250`, `"meter":"api_calls","used":4`} {
		if !strings.Contains(string(r.Data), want) {
			t.Fatalf("data = %s, want %s in it", r.Data, want)
		}
	}

	// Aliases, nested aliases, fragments on the payload's own types.
	r = tw.send(`mutation Rec($input: RecordUsageInput!) { w: recordUsage(input: $input)%s { n: accepted ...P
	  usage { ... on MeterUsage { m: meter } left: remaining } } }
	  fragment P on RecordUsagePayload { duplicates userErrors { field message code } }`, input(eventsOf("api_calls", "e")...), false)
	if want := `{"w":{"n":1,"duplicates":0,"userErrors":[],"usage":[{"m":"api_calls","left":995}]}}`; string(r.Data) != want {
		t.Fatalf("data = %s, want %s", r.Data, want)
	}

	// The Go client's document (what the middleware sends).
	clientDoc := strings.Replace(client.RecordUsage_Operation, "recordUsage(input: $input)", "recordUsage(input: $input)%s", 1)
	if clientDoc == client.RecordUsage_Operation {
		t.Fatalf("the client's recordUsage changed shape: %s", client.RecordUsage_Operation)
	}
	tw.send(clientDoc, input(eventsOf("api_calls", "f")...), false)

	// An input written in the document, one event given without a list,
	// and the events as a variable inside it.
	r = tw.send(`mutation { recordUsage(input: {events: {meter: "api_calls", quantity: 2, idempotencyKey: "g", endpoint: "GET /x"}})%s { accepted usage { used } } }`, nil, false)
	if want := `{"recordUsage":{"accepted":1,"usage":[{"used":8}]}}`; string(r.Data) != want {
		t.Fatalf("data = %s, want %s", r.Data, want)
	}
	tw.send(`mutation($e: [UsageEventInput!]!) { recordUsage(input: {events: $e})%s { accepted duplicates } }`, map[string]any{"e": eventsOf("api_calls", "g", "h")}, false)

	// Input errors answered as userErrors.
	r = tw.send(all, input(), false)
	if !strings.Contains(string(r.Data), `"userErrors":[{"__typename":"UserError","field":"input.events","message":"send at least one event","code":"REQUIRED"}]`) {
		t.Fatalf("data = %s", r.Data)
	}

	// Values the generated code refuses while reading them go to it.
	for _, bad := range []map[string]any{
		{"meter": "api_calls", "quantity": 1.5, "idempotencyKey": "x"},
		{"meter": "api_calls", "quantity": "99999999999999999999", "idempotencyKey": "x"},
		{"meter": "api_calls", "quantity": 1, "idempotencyKey": "x", "timestamp": "yesterday"},
	} {
		r = tw.send(all, input(bad), true)
		if r.Code() != "BAD_USER_INPUT" {
			t.Fatalf("%v: %s", bad, r.Body)
		}
	}

	// A refused quota: every event over the hard limit is an error with
	// the payload's field null, and a credential without the scope.
	r = tw.send(all, input(map[string]any{"meter": "api_calls", "quantity": 1000, "idempotencyKey": "big"}), false)
	if r.Code() != "USAGE_LIMIT_EXCEEDED" || string(r.Data) != "null" {
		t.Fatalf("over the limit: %s", r.Body)
	}
	r = tw.send(all, input(eventsOf("api_calls", "i")...), false, auth.BillingRead)
	if r.Code() != "FORBIDDEN" || string(r.Data) != "null" {
		t.Fatalf("without usage:write: %s", r.Body)
	}
}

// TestPreparedConsumeUsageAnswersAsTheGeneratedCodeDoes: the same for
// consumeUsage, allowed and refused.
func TestPreparedConsumeUsageAnswersAsTheGeneratedCodeDoes(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	schema := generated.NewExecutableSchema(generated.Config{}).Schema()
	tw := newTwins(t, h, "consumeUsage", "consume")
	all := `mutation($input: ConsumeUsageInput!) { consumeUsage(input: $input)%s ` + everyField(schema, "ConsumeUsagePayload") + ` }`
	one := func(key string, quantity any) map[string]any {
		return map[string]any{"input": map[string]any{"meter": "api_calls", "quantity": quantity, "idempotencyKey": key, "endpoint": "POST /v1/search"}}
	}
	r := tw.send(all, one("a", 999), false)
	if want := `{"consumeUsage":{"__typename":"ConsumeUsagePayload","allowed":true,"reason":"OK","retryAfterMs":null,"usage":{"__typename":"MeterUsage","meter":"api_calls","used":999,"limit":1000,"remaining":1,"unlimited":false,"overage":0,"hard":true,"reset":"MONTHLY","resetAt":"` + monthEnd(h) + `"},"userErrors":[]}}`; string(r.Data) != want {
		t.Fatalf("data = %s\nwant %s", r.Data, want)
	}
	r = tw.send(all, one("b", 2), false)
	if !strings.Contains(string(r.Data), `"allowed":false,"reason":"USAGE_LIMIT_EXCEEDED"`) {
		t.Fatalf("over the limit: %s", r.Data)
	}
	r = tw.send(all, one("", 1), false)
	if !strings.Contains(string(r.Data), `"usage":null`) || !strings.Contains(string(r.Data), `"userErrors":[{`) {
		t.Fatalf("without a key: %s", r.Data)
	}
	tw.send(`mutation { consumeUsage(input: {meter: "api_calls", quantity: 1, idempotencyKey: "a"})%s { ok: allowed usage { used } } }`, nil, false)
	clientDoc := strings.Replace(client.ConsumeUsage_Operation, "consumeUsage(input: $input)", "consumeUsage(input: $input)%s", 1)
	if clientDoc == client.ConsumeUsage_Operation {
		t.Fatalf("the client's consumeUsage changed shape: %s", client.ConsumeUsage_Operation)
	}
	tw.send(clientDoc, one("c", 1), false)
	r = tw.send(all, one("d", 2.5), true)
	if r.Code() != "BAD_USER_INPUT" {
		t.Fatalf("a fraction: %s", r.Body)
	}
	r = tw.send(all, one("e", 1), false, auth.BillingRead)
	if r.Code() != "FORBIDDEN" {
		t.Fatalf("without usage:write: %s", r.Body)
	}
}

// TestUsageWriteShapesThePreparedPathLeavesAlone: a second root field, a
// repeated key, a fragment on another type or with a directive run through
// the generated code and still answer.
func TestUsageWriteShapesThePreparedPathLeavesAlone(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	for i, doc := range []string{
		`mutation($e: [UsageEventInput!]!) { a: recordUsage(input: {events: $e}) { accepted } b: recordUsage(input: {events: $e}) { duplicates } }`,
		`mutation($e: [UsageEventInput!]!) { recordUsage(input: {events: $e}) { accepted accepted } }`,
		`mutation($e: [UsageEventInput!]!) { recordUsage(input: {events: $e}) { accepted ... @include(if: true) { duplicates } } }`,
		`mutation($e: [UsageEventInput!]!) { recordUsage(input: {events: $e}) { accepted duplicates @skip(if: false) } }`,
		`mutation($e: [UsageEventInput!]!) { __typename recordUsage(input: {events: $e}) { accepted } }`,
	} {
		before := preparedRuns("recordUsage")
		r := h.Query("acme", doc, map[string]any{"e": eventsOf("api_calls", fmt.Sprint("k", i))})
		if len(r.Errors) > 0 || !strings.Contains(string(r.Data), `"accepted":1`) {
			t.Errorf("%s\nanswered %d %s", doc, r.Status, r.Body)
		}
		if preparedRuns("recordUsage") != before {
			t.Errorf("%s went to the prepared path", doc)
		}
	}
}

func preparedVariables() float64 { return testutil.ToFloat64(observe.PreparedVariables) }

// TestPreparedVariablesAnswerAsGqlgensCheckDoes: recordUsage and
// consumeUsage variables sent over POST are checked by the handler instead
// of gqlparser's VariableValues when that would take them unchanged; for
// every other value VariableValues decides. Either way the answer is the
// generated code's, byte for byte: valid and invalid variables, values
// VariableValues coerces, and the limits that read the variables (more
// events than the complexity limit allows).
func TestPreparedVariablesAnswerAsGqlgensCheckDoes(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	schema := generated.NewExecutableSchema(generated.Config{}).Schema()
	tw := newTwins(t, h, "recordUsage", "vars")
	all := `mutation($input: RecordUsageInput!) { recordUsage(input: $input)%s ` + everyField(schema, "RecordUsagePayload") + ` }`
	input := func(events any) map[string]any { return map[string]any{"input": map[string]any{"events": events}} }
	event := func(key string, fields ...any) map[string]any {
		e := map[string]any{"meter": "api_calls", "quantity": 1, "idempotencyKey": key}
		for i := 0; i+1 < len(fields); i += 2 {
			if fields[i+1] == "-" {
				delete(e, fields[i].(string))
				continue
			}
			e[fields[i].(string)] = fields[i+1]
		}
		return e
	}
	// The document is parsed and cached by its first request, which
	// therefore always goes through VariableValues.
	tw.send(all, input([]any{event("warm")}), false)

	many := make([]any, graph.MaxComplexity+1)
	for i := range many {
		many[i] = event(fmt.Sprint("many", i))
	}
	for _, tc := range []struct {
		name     string
		vars     map[string]any
		checked  bool // by the handler, not VariableValues
		fallback bool // not run by the prepared path
		code     string
	}{
		{"one event", input([]any{event("a")}), true, false, ""},
		{"optional fields null, __typename keys", map[string]any{"input": map[string]any{"__typename": "RecordUsageInput",
			"events": []any{event("b", "endpoint", nil, "timestamp", nil, "__typename", "UsageEventInput")}}}, true, false, ""},
		{"a number as a String", input([]any{event("c", "meter", 5)}), false, true, "BAD_USER_INPUT"},
		{"a variable the operation does not declare", map[string]any{"input": map[string]any{"events": []any{event("d")}}, "other": 1}, true, false, ""},
		{"a fraction, left to the Int64 reader", input([]any{event("e", "quantity", 1.5)}), true, true, "BAD_USER_INPUT"},
		{"more events than the complexity limit", input(many), true, true, "COMPLEXITY_LIMIT_EXCEEDED"},
		{"an event without a list", input(event("f")), false, false, ""},
		{"an unknown field", input([]any{event("g", "meters", "x")}), false, true, "BAD_USER_INPUT"},
		{"a required field missing", input([]any{event("h", "idempotencyKey", "-")}), false, true, "BAD_USER_INPUT"},
		{"a required field null", input([]any{event("i", "meter", nil)}), false, true, "BAD_USER_INPUT"},
		{"a boolean as a String", input([]any{event("j", "meter", true)}), false, true, "BAD_USER_INPUT"},
		{"a null event", input([]any{event("k"), nil}), false, true, "BAD_USER_INPUT"},
		{"events null", input(nil), false, true, "BAD_USER_INPUT"},
		{"input null", map[string]any{"input": nil}, false, true, "BAD_USER_INPUT"},
		{"input missing", map[string]any{}, false, true, "BAD_USER_INPUT"},
		{"input a list", map[string]any{"input": []any{}}, false, true, "BAD_USER_INPUT"},
	} {
		before := preparedVariables()
		r := tw.send(all, tc.vars, tc.fallback)
		if got := preparedVariables() - before; got != map[bool]float64{true: 1}[tc.checked] {
			t.Errorf("%s: the handler checked the variables of %v requests, want checked=%v", tc.name, got, tc.checked)
		}
		if r.Code() != tc.code {
			t.Errorf("%s: code %q, want %q: %s", tc.name, r.Code(), tc.code, r.Body)
		}
	}

	// consumeUsage alike.
	tw = newTwins(t, h, "consumeUsage", "consume-vars")
	doc := `mutation($input: ConsumeUsageInput!) { consumeUsage(input: $input)%s ` + everyField(schema, "ConsumeUsagePayload") + ` }`
	tw.send(doc, map[string]any{"input": event("warm")}, false)
	before := preparedVariables()
	tw.send(doc, map[string]any{"input": event("a", "endpoint", "POST /v1/search")}, false)
	if r := tw.send(doc, map[string]any{"input": event("b", "timestamp", nil)}, true); r.Code() != "BAD_USER_INPUT" {
		t.Errorf("consumeUsage with a field it does not have: %s", r.Body)
	}
	if got := preparedVariables() - before; got != 1 {
		t.Errorf("the handler checked %v consumeUsage requests' variables, want 1", got)
	}
}
