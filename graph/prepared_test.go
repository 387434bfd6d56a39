package graph_test

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tollgate-billing/tollgate/client"
	"github.com/tollgate-billing/tollgate/graph/generated"
	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/observe"
	"github.com/tollgate-billing/tollgate/internal/orgs"
)

// preparedRuns is how many operations of a root field (usageGate unless
// named) the prepared path answered.
func preparedRuns(field ...string) float64 {
	f := "usageGate"
	if len(field) > 0 {
		f = field[0]
	}
	return testutil.ToFloat64(observe.PreparedOperations.WithLabelValues(f))
}

// sendBothWays sends a usageGate document whose "%s" marks the place after
// usageGate's arguments twice: as written, which the prepared path answers,
// and with @include(if: true) there, which means the same but sends it
// through gqlgen's generated execution.
func sendBothWays(t *testing.T, h *apptest.Harness, headers map[string]string, doc string, vars map[string]any) (prepared, generic apptest.Response) {
	t.Helper()
	before := preparedRuns()
	prepared = h.Do(headers, strings.Replace(doc, "%s", "", 1), vars)
	if got := preparedRuns() - before; got != 1 {
		t.Fatalf("the prepared path answered %v operations, want 1: %s", got, doc)
	}
	generic = h.Do(headers, strings.Replace(doc, "%s", " @include(if: true)", 1), vars)
	if got := preparedRuns() - before; got != 1 {
		t.Fatalf("the document with @include went to the prepared path")
	}
	return prepared, generic
}

// sameAnswer fails unless both ways answered the same bytes.
func sameAnswer(t *testing.T, h *apptest.Harness, headers map[string]string, doc string, vars map[string]any) apptest.Response {
	t.Helper()
	prepared, generic := sendBothWays(t, h, headers, doc, vars)
	if string(prepared.Body) != string(generic.Body) || prepared.Status != generic.Status {
		t.Fatalf("%s\nprepared path: %d %s\ngenerated code: %d %s", doc, prepared.Status, prepared.Body, generic.Status, generic.Body)
	}
	return prepared
}

// TestThePreparedGateAnswersAsTheGeneratedCodeDoes: usageGate queries take a
// shorter path than gqlgen's general execution; whatever they select, under
// whichever credential, their answers are the generated code's to the byte,
// errors included (message, path, locations, extensions).
func TestThePreparedGateAnswersAsTheGeneratedCodeDoes(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	bearer := func(org string, scopes ...auth.Scope) map[string]string {
		return map[string]string{"Authorization": "Bearer " + h.Token(org, scopes...)}
	}
	var rec recordResult
	h.Query("acme", recordUsage, map[string]any{"events": events("api_calls", "a", "b", "c")}).Decode(t, &rec)
	if rec.RecordUsage.Accepted != 3 {
		t.Fatalf("recorded %+v", rec)
	}
	// Every field the schema gives UsageGate, so a field added to it fails
	// here until the prepared path writes it as the generated code does.
	fields := []string{"__typename"}
	for _, f := range generated.NewExecutableSchema(generated.Config{}).Schema().Types["UsageGate"].Fields {
		fields = append(fields, f.Name)
	}
	all := `{ usageGate(meter: "api_calls")%s { ` + strings.Join(fields, " ") + ` } }`

	r := sameAnswer(t, h, bearer("acme"), all, nil)
	if want := `{"usageGate":{"__typename":"UsageGate","allowed":true,"reason":"OK","retryAfterMs":null,"used":3,"limit":1000,"remaining":997,"unlimited":false,"overage":0,"hard":true,"reset":"MONTHLY","resetAt":"` + monthEnd(h) + `","plan":"free","billingStatus":null}}`; string(r.Data) != want {
		t.Fatalf("data = %s, want %s (fields of the schema: %v)", r.Data, want, fields)
	}
	r = sameAnswer(t, h, bearer("acme"), `query Check($m: String!) { g: usageGate(meter: $m)%s { plan t: __typename ok: allowed used left: remaining } }`, map[string]any{"m": "api_calls"})
	if want := `{"g":{"plan":"free","t":"UsageGate","ok":true,"used":3,"left":997}}`; string(r.Data) != want {
		t.Fatalf("data = %s, want %s", r.Data, want)
	}

	// Fragments on UsageGate, inline and named, in the order gqlgen collects them.
	r = sameAnswer(t, h, bearer("acme"), `query { usageGate(meter: "api_calls")%s { ... on UsageGate { allowed } ...F plan } } fragment F on UsageGate { used ... { reason } }`, nil)
	if want := `{"usageGate":{"allowed":true,"used":3,"reason":"OK","plan":"free"}}`; string(r.Data) != want {
		t.Fatalf("data = %s, want %s", r.Data, want)
	}

	// The Go client's gate (what the middleware sends) takes the prepared path.
	clientGate := strings.Replace(client.UsageGate_Operation, "usageGate(meter: $meter)", "usageGate(meter: $meter)%s", 1)
	if clientGate == client.UsageGate_Operation {
		t.Fatalf("the client's gate query changed shape: %s", client.UsageGate_Operation)
	}
	r = sameAnswer(t, h, bearer("acme"), clientGate, map[string]any{"meter": "api_calls"})
	if !strings.Contains(string(r.Data), `"used":3,"limit":1000,"remaining":997,"unlimited":false,"overage":0,"hard":true,"reset":"MONTHLY","resetAt":"`+monthEnd(h)+`","plan":"free"`) {
		t.Fatalf("client gate = %s", r.Data)
	}

	// Unlimited: limit and remaining are null.
	big := orgID(t, h, "bigco")
	h.App.DB.Model(&orgs.Organization{}).Where("id = ?", big).Update("plan_id", "enterprise")
	h.App.Usage.InvalidatePlan(big)
	r = sameAnswer(t, h, bearer("bigco"), all, nil)
	if !strings.Contains(string(r.Data), `"limit":null,"remaining":null,"unlimited":true,"overage":0,"hard":false,"reset":"MONTHLY","resetAt":"`+monthEnd(h)+`","plan":"enterprise"`) {
		t.Fatalf("enterprise gate = %s", r.Data)
	}

	// A subscription in arrears: a billing status, and the gate shut.
	late := orgID(t, h, "late")
	now := h.Clock.Now()
	end := now.Add(30 * 24 * time.Hour)
	if err := h.App.DB.Create(&billing.Subscription{ID: "sub_late", OrgID: late, StripeSubscriptionID: "sub_late",
		StripeCustomerID: "cus_late", PriceID: "price_tollgate_starter_monthly", PlanID: "starter", Status: "past_due",
		CurrentPeriodStart: &now, CurrentPeriodEnd: &end}).Error; err != nil {
		t.Fatal(err)
	}
	h.App.Usage.InvalidatePlan(late)
	r = sameAnswer(t, h, bearer("late"), all, nil)
	if !strings.Contains(string(r.Data), `"billingStatus":"PAST_DUE"`) {
		t.Fatalf("past-due gate = %s", r.Data)
	}

	// Errors: an unknown meter, a credential without the scope. (One
	// without credentials is refused before any execution.)
	for name, c := range map[string]struct {
		headers map[string]string
		code    string
	}{
		"unknown meter": {bearer("acme"), "BAD_USER_INPUT"},
		"missing scope": {bearer("acme", auth.BillingWrite), "FORBIDDEN"},
	} {
		meter := "api_calls"
		if name == "unknown meter" {
			meter = "nope"
		}
		r := sameAnswer(t, h, c.headers, `{ usageGate(meter: "`+meter+`")%s { allowed used } }`, nil)
		if r.Code() != c.code || string(r.Data) != "null" || len(r.Errors[0].Path) != 1 || r.Errors[0].Path[0] != "usageGate" {
			t.Fatalf("%s: %s", name, r.Body)
		}
	}
}

// TestTheRateLimitedGateAnswersAsTheGeneratedCodeDoes: retryAfterMs, the one
// Int the other test cannot make non-null. It is a time left, so it may only
// shrink between the two answers; the rest must be the same bytes.
func TestTheRateLimitedGateAnswersAsTheGeneratedCodeDoes(t *testing.T) {
	h := apptest.New(t, apptest.Options{PlanRateLimits: true})
	headers := map[string]string{"Authorization": "Bearer " + h.Token("noisy")}
	doc := `{ usageGate(meter: "api_calls")%s { allowed reason retryAfterMs } }`
	retry := regexp.MustCompile(`"retryAfterMs":([0-9]+|null)`)
	for attempt := 1; ; attempt++ {
		for range 30 { // the free plan's 10 a second, used up
			h.Do(headers, `{ usageGate(meter: "api_calls") { allowed } }`, nil)
		}
		prepared, generic := sendBothWays(t, h, headers, doc, nil)
		if (strings.Contains(string(prepared.Data), `"allowed":true`) || strings.Contains(string(generic.Data), `"allowed":true`)) && attempt < 10 {
			continue // a request came free before one of the two (a slow machine)
		}
		if !regexp.MustCompile(`^\{"usageGate":\{"allowed":false,"reason":"RATE_LIMITED","retryAfterMs":[1-9][0-9]*\}\}$`).Match(prepared.Data) {
			t.Fatalf("data = %s", prepared.Data)
		}
		p, _ := strconv.Atoi(retry.FindStringSubmatch(string(prepared.Body))[1])
		g, _ := strconv.Atoi(retry.FindStringSubmatch(string(generic.Body))[1])
		mask := func(b []byte) string { return retry.ReplaceAllString(string(b), `"retryAfterMs":N`) }
		if mask(prepared.Body) != mask(generic.Body) || p < g || p > 1000 {
			t.Fatalf("prepared path: %s\ngenerated code, after it: %s", prepared.Body, generic.Body)
		}
		return
	}
}

// TestGateShapesThePreparedPathLeavesAlone: directives, a response key used
// twice, a fragment on another type and a second root field all run through
// the generated code, and still answer. Fragments on UsageGate itself take
// the prepared path.
func TestGateShapesThePreparedPathLeavesAlone(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	for doc, want := range map[string]string{
		`{ usageGate(meter: "api_calls") { ... on UsageGate @include(if: true) { allowed } } }`:    `{"usageGate":{"allowed":true}}`,
		`{ usageGate(meter: "api_calls") { allowed allowed } }`:                                    `{"usageGate":{"allowed":true}}`,
		`{ usageGate(meter: "api_calls") { allowed used @skip(if: true) } }`:                       `{"usageGate":{"allowed":true}}`,
		`{ a: usageGate(meter: "api_calls") { used } b: usageGate(meter: "llm_tokens") { used } }`: `{"a":{"used":0},"b":{"used":0}}`,
		`{ __typename usageGate(meter: "api_calls") { used } }`:                                    `{"__typename":"Query","usageGate":{"used":0}}`,
	} {
		before := preparedRuns()
		r := h.Query("acme", doc, nil)
		if string(r.Data) != want || len(r.Errors) > 0 || r.Status != http.StatusOK {
			t.Errorf("%s\nanswered %d %s, want %s", doc, r.Status, r.Body, want)
		}
		if preparedRuns() != before {
			t.Errorf("%s went to the prepared path", doc)
		}
	}
}
