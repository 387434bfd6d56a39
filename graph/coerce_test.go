package graph_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/clock"
)

// raw sends s as the JSON text it is, so a test controls exactly how a
// number is written (9223372036854775807, 1e3, 1.0).
func raw(s string) json.RawMessage { return json.RawMessage(s) }

// TestVariablesAreCoercedAsTheSpecificationSays: GraphQL's input coercion
// refuses a string for an Int, a number for a String, a fraction or a value
// past 32 bits for an Int; gqlparser took "50" and 5000000000, and answered
// [1.5] with "cannot use string as Int". Each refusal says what was wrong
// and where, and a whole number written as 1e3 or 1.0 is the number it is.
func TestVariablesAreCoercedAsTheSpecificationSays(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	const badInput = "BAD_USER_INPUT" // a value, however it is sent
	cases := []struct {
		name     string
		percents any
		code     string
		says     string
	}{
		{"a fraction in a list of Int", []any{raw("1.5")}, badInput, "variable $percents[0]: expected an integer, got 1.5"},
		{"an Int past 32 bits", []any{raw("5000000000")}, badInput, "5000000000 is above 2147483647, the largest integer taken here"},
		{"an Int below 32 bits", []any{raw("-5000000000")}, badInput, "-5000000000 is below -2147483648, the smallest integer taken here"},
		{"an Int past any float", []any{raw("1e400")}, badInput, "1e400 is above 2147483647, the largest integer taken here"},
		{"a string for an Int", []any{"50"}, badInput, `expected an integer, got a string, "50"`},
		{"a boolean for an Int", []any{true}, badInput, "expected an integer, got a boolean"},
		{"an Int written 5e1", []any{raw("5e1")}, "", ""},
		{"an Int written 50.0", []any{raw("50.0")}, "", ""},
		{"one Int for a list of them, a fraction", raw("2.5"), badInput, "variable $percents: expected an integer, got 2.5"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.Query("acme", setUsageAlerts, map[string]any{"meter": "api_calls", "percents": tc.percents})
			if r.Code() != tc.code {
				t.Fatalf("code = %q, want %q: %s", r.Code(), tc.code, r.Body)
			}
			if tc.code == "" {
				var out struct {
					SetUsageAlerts struct{ UsageAlerts struct{ Percents []int } }
				}
				r.Decode(t, &out)
				if got := out.SetUsageAlerts.UsageAlerts.Percents; len(got) != 1 || got[0] != 50 {
					t.Fatalf("percents stored = %v, want [50]", got)
				}
				return
			}
			if !strings.Contains(r.Errors[0].Message, tc.says) {
				t.Fatalf("message %q does not say %q", r.Errors[0].Message, tc.says)
			}
		})
	}
	t.Run("a number for a String", func(t *testing.T) {
		r := h.Query("acme", setUsageAlerts, map[string]any{"meter": 12, "percents": []int{50}})
		if r.Code() != badInput || r.Errors[0].Message != "variable $meter: expected a string, got a number, 12" {
			t.Fatalf("answered %s", r.Body)
		}
	})
	for name, tc := range map[string]struct {
		doc  string
		vars map[string]any
		says string
	}{
		"a number for an enum": {`query($s: InvoiceStatus) { invoices(status: $s) { nodes { id } } }`, map[string]any{"s": 5},
			"variable $s: expected one of the enum's values, as a string, got a number, 5"},
		"a string for a Boolean": {`query($b: Boolean!) { plans @include(if: $b) { id } }`, map[string]any{"b": "true"},
			`variable $b: expected true or false, got a string, "true"`},
		"a fraction for an ID": {`mutation($id: ID!) { revokeApiKey(id: $id) { apiKey { id } } }`, map[string]any{"id": raw("1.5")},
			"variable $id: expected a string or an integer, got a number, 1.5"},
		"a string for an input object": {`mutation($in: ConsumeUsageInput!) { consumeUsage(input: $in) { allowed } }`, map[string]any{"in": "x"},
			`variable $in: expected an object of input fields, got a string, "x"`},
		"a number deep in an input": {`mutation($in: RecordUsageInput!) { recordUsage(input: $in) { accepted } }`,
			map[string]any{"in": map[string]any{"events": []any{map[string]any{"meter": "api_calls", "quantity": 1, "idempotencyKey": 7}}}},
			"variable $in.events[0].idempotencyKey: expected a string, got a number, 7"},
	} {
		t.Run(name, func(t *testing.T) {
			r := h.Query("acme", tc.doc, tc.vars)
			if r.Code() != badInput || r.Errors[0].Message != tc.says {
				t.Fatalf("answered %s, want %q", r.Body, tc.says)
			}
		})
	}
	t.Run("a long malformed Date is not sent back", func(t *testing.T) {
		long := strings.Repeat("2026-01-01", 10_000)
		r := h.Query("acme", `query($d: Date!) { usageSeries(meter: "api_calls", from: $d, to: $d) { date } }`, map[string]any{"d": long})
		if r.Code() != "BAD_USER_INPUT" || r.Errors[0].Message != "variable $d: expected a date written like 2026-01-31, got a string" || len(r.Body) > 1024 {
			t.Fatalf("answered %.300s", r.Body)
		}
	})
	t.Run("an Int literal past 32 bits", func(t *testing.T) {
		r := h.Query("acme", `mutation { setUsageAlerts(meter: "api_calls", percents: [5000000000]) { userErrors { code } } }`, nil)
		if r.Code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "5000000000 is above 2147483647, the largest integer taken here") {
			t.Fatalf("answered %s", r.Body)
		}
	})
	// The same value, written in the document or sent as a variable, is
	// refused with the same code, before anything runs (400 under
	// graphql-response+json), and the refusal says where the value is. A
	// document that does not fit the schema is a validation failure.
	for _, tc := range []struct {
		name, literal, withVariable string
		vars                        map[string]any
		code                        string
	}{
		{"an Int past 32 bits", `mutation { setUsageAlerts(meter: "api_calls", percents: [5000000000]) { userErrors { code } } }`,
			`mutation($p: [Int!]!) { setUsageAlerts(meter: "api_calls", percents: $p) { userErrors { code } } }`, map[string]any{"p": []any{raw("5000000000")}}, badInput},
		{"a string for an Int", `{ invoices(first: "5") { nodes { id } } }`,
			`query($n: Int) { invoices(first: $n) { nodes { id } } }`, map[string]any{"n": "5"}, badInput},
		{"an enum in lower case", `{ invoices(status: paid) { nodes { id } } }`,
			`query($s: InvoiceStatus) { invoices(status: $s) { nodes { id } } }`, map[string]any{"s": "paid"}, badInput},
		{"null for a required input field", `mutation { recordUsage(input: {events: [{meter: null, quantity: 1, idempotencyKey: "k"}]}) { accepted } }`,
			`mutation($in: RecordUsageInput!) { recordUsage(input: $in) { accepted } }`, map[string]any{"in": map[string]any{"events": []any{map[string]any{"meter": nil, "quantity": 1, "idempotencyKey": "k"}}}}, badInput},
		{"an input field the type does not have", `mutation { recordUsage(input: {events: [{meter: "api_calls", quantity: 1, idempotencyKey: "k", bogus: 1}]}) { accepted } }`,
			`mutation($in: RecordUsageInput!) { recordUsage(input: $in) { accepted } }`, map[string]any{"in": map[string]any{"events": []any{map[string]any{"meter": "api_calls", "quantity": 1, "idempotencyKey": "k", "bogus": 1}}}}, badInput},
		{"an Int64 past 64 bits", `mutation { recordUsage(input: {events: [{meter: "api_calls", quantity: 9223372036854775808, idempotencyKey: "k"}]}) { accepted } }`,
			`mutation($in: RecordUsageInput!) { recordUsage(input: $in) { accepted } }`, map[string]any{"in": map[string]any{"events": []any{map[string]any{"meter": "api_calls", "quantity": raw("9223372036854775808"), "idempotencyKey": "k"}}}}, badInput},
		{"a field the type does not have (the document)", `{ invoices { nodes { idd } } }`, "", nil, "GRAPHQL_VALIDATION_FAILED"},
	} {
		t.Run(tc.name+" answers the same however it is sent", func(t *testing.T) {
			for _, sent := range []struct {
				doc  string
				vars map[string]any
			}{{tc.literal, nil}, {tc.withVariable, tc.vars}} {
				if sent.doc == "" {
					continue
				}
				body, _ := json.Marshal(map[string]any{"query": sent.doc, "variables": sent.vars})
				a := sendRaw(t, h, http.MethodPost, "/graphql", "application/json", "application/graphql-response+json", strings.NewReader(string(body)))
				if a.status != http.StatusBadRequest || a.data || len(a.errors) != 1 || a.errors[0].Extensions["code"] != tc.code {
					t.Fatalf("%s: answered %d %s, want 400 %s without data", sent.doc, a.status, a.body, tc.code)
				}
				if msg := a.errors[0].Message; sent.vars != nil && !strings.HasPrefix(msg, "variable $") {
					t.Fatalf("%s: message %q does not name the variable", sent.doc, msg)
				}
			}
		})
	}
	t.Run("an Int past 32 bits over GET", func(t *testing.T) {
		q := url.Values{"query": {`query($n: Int) { invoices(first: $n) { nodes { id } } }`}, "variables": {`{"n": 5000000000}`}}
		a := sendRaw(t, h, http.MethodGet, "/graphql?"+q.Encode(), "", "", nil)
		if len(a.errors) != 1 || a.errors[0].Extensions["code"] != badInput || !strings.Contains(a.errors[0].Message, "5000000000 is above 2147483647") {
			t.Fatalf("answered %d %s", a.status, a.body)
		}
	})
	t.Run("distinct thresholds are what is asked, not ascending ones", func(t *testing.T) {
		var out struct {
			SetUsageAlerts struct {
				UserErrors []struct{ Field, Code, Message string }
			}
		}
		h.Query("acme", setUsageAlerts, map[string]any{"meter": "api_calls", "percents": []int{90, 50, 90}}).Decode(t, &out)
		ue := out.SetUsageAlerts.UserErrors
		if len(ue) != 1 || strings.Contains(ue[0].Message, "ascending") || !strings.Contains(ue[0].Message, "90 is listed twice") {
			t.Fatalf("userErrors = %+v, want one saying 90 is listed twice", ue)
		}
	})
}

// TestInt64VariablesAreExact: an Int64 sent as a JSON number is read from
// its text, never through a float64, on the prepared path and through the
// generated code alike (the twins compare their bytes): the largest and
// smallest int64 reach the service, which answers with its own per-event
// cap; one past them is refused naming the bound; a fraction names the
// fraction; 1e3 and 1000.0 count 1,000.
func TestInt64VariablesAreExact(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	doc := `mutation($input: ConsumeUsageInput!) { consumeUsage(input: $input)%s { allowed usage { used } userErrors { field code message } } }`
	tw := newTwins(t, h, "consumeUsage", "int64")
	in := func(q json.RawMessage, key string) map[string]any {
		return map[string]any{"input": map[string]any{"meter": "llm_tokens", "quantity": q, "idempotencyKey": key}}
	}
	tw.send(doc, in(raw("1"), "warm"), false)
	type answer struct {
		ConsumeUsage struct {
			Allowed    bool
			Usage      *struct{ Used int64 }
			UserErrors []struct{ Field, Code, Message string }
		}
	}
	for _, q := range []string{"9223372036854775807", "-9223372036854775808", "9.223372036854775807e18"} {
		var out answer
		tw.send(doc, in(raw(q), "max-"+q), false).Decode(t, &out)
		ue := out.ConsumeUsage.UserErrors
		if len(ue) != 1 || ue[0].Field != "input.quantity" || ue[0].Code != "INVALID_QUANTITY" {
			t.Fatalf("quantity %s: userErrors %+v, want the service's INVALID_QUANTITY (the scalar took it)", q, ue)
		}
	}
	for q, says := range map[string]string{
		"9223372036854775808":  "variable $input.quantity: 9223372036854775808 is above 9223372036854775807, the largest integer taken here",
		"-9223372036854775809": "variable $input.quantity: -9223372036854775809 is below -9223372036854775808, the smallest integer taken here",
		"1.5":                  "variable $input.quantity: expected an integer, got 1.5",
		"1e-3":                 "variable $input.quantity: expected an integer, got 1e-3",
		"true":                 "variable $input.quantity: expected an integer, got a boolean",
		`"1.5"`:                `variable $input.quantity: expected an integer; sent as a string it is digits with an optional leading minus, got a string, "1.5"`,
		`"1e3"`:                `variable $input.quantity: expected an integer; sent as a string it is digits with an optional leading minus, got a string, "1e3"`,
		`"+1"`:                 `variable $input.quantity: expected an integer; sent as a string it is digits with an optional leading minus, got a string, "+1"`,
	} {
		r := tw.send(doc, in(raw(q), "bad"), true)
		if r.Code() != "BAD_USER_INPUT" || r.Errors[0].Message != says {
			t.Errorf("quantity %s answered %s, want BAD_USER_INPUT %q", q, r.Body, says)
		}
	}
	used := int64(1)
	for _, q := range []string{"1e3", "1000.0", `"1000"`} {
		var out answer
		tw.send(doc, in(raw(q), "k-"+q), false).Decode(t, &out)
		used += 1000
		if !out.ConsumeUsage.Allowed || out.ConsumeUsage.Usage == nil || out.ConsumeUsage.Usage.Used != used {
			t.Fatalf("quantity %s: %+v, want allowed with %d used", q, out.ConsumeUsage, used)
		}
	}
}

// TestTimeNamesTheRuleItBreaks: a timestamp outside the years 2000 to 9999
// was refused as "must be an RFC 3339 string", which it may well be.
func TestTimeNamesTheRuleItBreaks(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	tw := newTwins(t, h, "recordUsage", "time")
	doc := `mutation($input: RecordUsageInput!) { recordUsage(input: $input)%s { accepted } }`
	for ts, says := range map[string]string{
		"10000-01-01T00:00:00Z":     "variable $input.events[0].timestamp: a timestamp's year must be from 2000 to 9999 (UTC), got 10000",
		"0001-01-01T00:00:00Z":      "variable $input.events[0].timestamp: a timestamp's year must be from 2000 to 9999 (UTC), got 1",
		"1999-12-31T23:59:59Z":      "variable $input.events[0].timestamp: a timestamp's year must be from 2000 to 9999 (UTC), got 1999",
		"9999-12-31T23:00:00-05:00": "variable $input.events[0].timestamp: a timestamp's year must be from 2000 to 9999 (UTC), got 10000",
		"yesterday":                 `variable $input.events[0].timestamp: expected an RFC 3339 timestamp like 2026-01-31T12:00:00Z, got a string, "yesterday"`,
	} {
		vars := map[string]any{"input": map[string]any{"events": []any{map[string]any{"meter": "api_calls", "quantity": 1, "idempotencyKey": "t", "timestamp": ts}}}}
		if r := tw.send(doc, vars, true); r.Code() != "BAD_USER_INPUT" || r.Errors[0].Message != says {
			t.Errorf("timestamp %s answered %s, want %q", ts, r.Body, says)
		}
	}
}

// TestLiteralsAreJudgedAsVariablesAre: a value of Int64, Time or Date
// written in the document is refused in the words, and with the code, that
// the same value sent as a variable gets. A number past int64 or float64
// written for one of them made gqlgen panic while reading the arguments
// (INTERNAL), and an Int64 written with a tiny fraction was rounded and
// counted.
func TestLiteralsAreJudgedAsVariablesAre(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	keys := 0
	consume := func(q string) string {
		keys++
		return `mutation { consumeUsage(input: {meter: "llm_tokens", quantity: ` + q + `, idempotencyKey: "lit-` + strconv.Itoa(keys) + `"}) { allowed usage { used } } }`
	}
	series := func(to string) string {
		return `{ usageSeries(meter: "storage_bytes", from: "2026-11-01", to: ` + to + `) { used } }`
	}
	for doc, says := range map[string]string{
		consume("1.0000000000000001"):            "input.quantity: expected an integer, got 1.0000000000000001",
		consume("5000.0000000000001"):            "input.quantity: expected an integer, got 5000.0000000000001",
		consume("0.1e-400"):                      "input.quantity: expected an integer, got 0.1e-400",
		consume("9223372036854775808"):           "input.quantity: 9223372036854775808 is above 9223372036854775807, the largest integer taken here",
		consume("-9223372036854775809"):          "input.quantity: -9223372036854775809 is below -9223372036854775808, the smallest integer taken here",
		consume("1e400"):                         "input.quantity: 1e400 is above 9223372036854775807, the largest integer taken here",
		series("999999999999999999999999999999"): "to: expected a date written like 2026-01-31, got a number, 999999999999999999999999999999",
		series("1e400"):                          "to: expected a date written like 2026-01-31, got a number, 1e400",
		series("-1e400"):                         "to: expected a date written like 2026-01-31, got a number, -1e400",
		`query($t: Date = 1e400) { usageSeries(meter: "storage_bytes", from: "2026-11-01", to: $t) { used } }`:                                                                       "$t (default): expected a date written like 2026-01-31, got a number, 1e400",
		`mutation { recordUsage(input: {events: [{meter: "api_calls", quantity: 1, idempotencyKey: "a"}, {meter: "api_calls", quantity: 1.5, idempotencyKey: "b"}]}) { accepted } }`: "input.events[1].quantity: expected an integer, got 1.5",
		`mutation { recordUsage(input: {events: [{meter: "api_calls", quantity: 1, idempotencyKey: "a", timestamp: 1e400}]}) { accepted } }`:                                         "input.events[0].timestamp: expected an RFC 3339 timestamp like 2026-01-31T12:00:00Z, got a number, 1e400",
	} {
		r := h.Query("acme", doc, nil)
		if r.Code() != "BAD_USER_INPUT" || len(r.Errors) != 1 || r.Errors[0].Message != says {
			t.Errorf("%s\nanswered %s\nwant BAD_USER_INPUT %q", doc, r.Body, says)
		}
	}
	// Whole numbers however written count exactly what they are.
	var out struct {
		ConsumeUsage struct {
			Allowed bool
			Usage   struct{ Used int64 }
		}
	}
	used := int64(0)
	for _, q := range []string{"1e3", "1000.0", "1000", `"1000"`} {
		h.Query("acme", consume(q), nil).Decode(t, &out)
		used += 1000
		if !out.ConsumeUsage.Allowed || out.ConsumeUsage.Usage.Used != used {
			t.Fatalf("quantity %s: %+v, want allowed with %d used", q, out.ConsumeUsage, used)
		}
	}
}

// TestLongValuesAreNotWrittenBack: a message about a bad value quotes at
// most its start and still says what was wrong; a 5,000-character period,
// plan or enum value came back whole, or (the enum) cut so short that the
// explanation was gone.
func TestLongValuesAreNotWrittenBack(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	long := strings.Repeat("x", 5000)
	for _, tc := range []struct {
		name, doc string
		vars      map[string]any
		says      string
	}{
		{"a period", `query($p: String) { usage(period: $p) { meters { meter } } }`, map[string]any{"p": long}, "must be a month written YYYY-MM"},
		{"a period of usageByEndpoint", `query($p: String) { usageByEndpoint(period: $p) { endpoint } }`, map[string]any{"p": long}, "must be a month written YYYY-MM"},
		{"an enum value", `query($s: InvoiceStatus) { invoices(status: $s) { nodes { id } } }`, map[string]any{"s": long}, "is not one of the values this enum takes"},
		{"a plan", checkout, map[string]any{"in": map[string]any{"plan": long, "successUrl": "https://app.example.com/ok", "cancelUrl": "https://app.example.com/no"}}, "There is no plan"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.Query("acme", tc.doc, tc.vars)
			if len(r.Body) > 1024 || strings.Count(string(r.Body), "x") > 100 {
				t.Fatalf("answer of %d bytes writes the value back: %.400s", len(r.Body), r.Body)
			}
			if !strings.Contains(string(r.Body), tc.says) {
				t.Fatalf("answer does not say %q: %s", tc.says, r.Body)
			}
		})
	}
}

// TestTimeReadsRFC3339: RFC 3339 allows "t" and "z" in lower case, which
// Go's parser refused, and writes offsets from -23:59 to +23:59, where Go
// took +24:00 and +23:60 (a day or an hour off from what was meant).
func TestTimeReadsRFC3339(t *testing.T) {
	h := apptest.New(t, apptest.Options{Clock: clock.NewFake(time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC))})
	record := func(key, ts string) apptest.Response {
		return h.Query("acme", recordUsage, map[string]any{"events": []any{map[string]any{
			"meter": "storage_bytes", "quantity": 5, "idempotencyKey": key, "timestamp": ts}}})
	}
	// storage_bytes never resets: the day an event lands on is the day its
	// timestamp names, so a misread instant shows in the series.
	for key, ts := range map[string]string{"lower": "2026-06-10t23:30:00z", "offset": "2026-06-12T01:30:00+23:59"} {
		var out recordResult
		record(key, ts).Decode(t, &out)
		if out.RecordUsage.Accepted != 1 {
			t.Fatalf("%s: %+v, want accepted", ts, out.RecordUsage)
		}
	}
	var series struct {
		UsageSeries []struct {
			Date string
			Used int64
		}
	}
	h.Query("acme", `{ usageSeries(meter: "storage_bytes", from: "2026-06-09", to: "2026-06-11") { date used } }`, nil).Decode(t, &series)
	want := []int64{0, 5, 10} // the 10th's 23:30 UTC, then the 11th's 01:31 UTC
	for i, p := range series.UsageSeries {
		if i >= len(want) || p.Used != want[i] {
			t.Fatalf("series %+v, want used %v from the 9th", series.UsageSeries, want)
		}
	}
	for _, ts := range []string{"2026-06-12T01:30:00+24:00", "2026-06-12T01:30:00-23:60", "2026-06-12T01:30:00+2400"} {
		if r := record("bad-"+ts, ts); r.Code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "RFC 3339") {
			t.Errorf("%s answered %s, want BAD_USER_INPUT", ts, r.Body)
		}
	}
}
