package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func get(t *testing.T, url string, headers map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestQueryLimits: expensive or abusive operations are refused before they
// run, with a code a client can act on.
func TestQueryLimits(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	if r := h.Query("acme", `{ invoices(first: 100) { nodes { id } } }`, nil); len(r.Errors) > 0 {
		t.Fatalf("a page of 100 invoices refused: %+v", r.Errors)
	}
	frag := `query { organization { ...A } } fragment A on Organization { id }`
	if r := h.Query("acme", frag, nil); len(r.Errors) > 0 {
		t.Fatalf("shallow fragment refused: %+v", r.Errors)
	}
	var b strings.Builder
	b.WriteString("{ ")
	for i := 0; i < 12; i++ {
		b.WriteString("i" + string(rune('a'+i)) + ": invoices(first: 100) { nodes { id number total currency status amountDue amountPaid createdAt } } ")
	}
	b.WriteString("}")
	if r := h.Query("acme", b.String(), nil); r.Code() != "COMPLEXITY_LIMIT_EXCEEDED" {
		t.Fatalf("12 pages of 100 invoices: code %q, want COMPLEXITY_LIMIT_EXCEEDED (%+v)", r.Code(), r.Errors)
	}
	// The same document priced through a variable: each request is priced
	// by its own value, whatever the one before it sent.
	b.Reset()
	b.WriteString("query Pages($n: Int) { ")
	for i := 0; i < 12; i++ {
		b.WriteString("i" + string(rune('a'+i)) + ": invoices(first: $n) { nodes { id number total currency status amountDue amountPaid createdAt } } ")
	}
	b.WriteString("}")
	for _, tc := range []struct {
		n    int
		code string
	}{{1, ""}, {100, "COMPLEXITY_LIMIT_EXCEEDED"}, {1, ""}, {100, "COMPLEXITY_LIMIT_EXCEEDED"}} {
		if r := h.Query("acme", b.String(), map[string]any{"n": tc.n}); r.Code() != tc.code {
			t.Fatalf("12 pages of $n = %d invoices: code %q, want %q (%+v)", tc.n, r.Code(), tc.code, r.Errors)
		}
	}
	huge := "{ " + strings.Repeat("organization { id } ", 5000) + "}"
	if r := h.Query("acme", huge, nil); r.Code() != "GRAPHQL_PARSE_FAILED" || !strings.Contains(r.Errors[0].Message, "token limit") {
		t.Fatalf("a 20k-token query was not stopped by the parser's token limit: %+v", r.Errors)
	}
}

// TestProductionHidesTheSchema: no introspection and no GraphiQL unless
// asked for.
func TestProductionHidesTheSchema(t *testing.T) {
	h := apptest.New(t, apptest.Options{Env: map[string]string{
		"TOLLGATE_ENV": "production", "DATABASE_URL": "postgres://unused/x", "REDIS_URL": "redis://unused:6379",
	}})
	// A client's mistake, not the server's: no INTERNAL, no ERROR log line.
	if r := h.Query("acme", `{ __schema { types { name } } }`, nil); r.Code() != "INTROSPECTION_DISABLED" || string(r.Data) != "null" {
		t.Fatalf("introspection in production: %s %+v", r.Data, r.Errors)
	}
	if r := h.Query("acme", `query Q { ...F } fragment F on Query { __type(name: "Plan") { name } }`, nil); r.Code() != "INTROSPECTION_DISABLED" {
		t.Fatalf("introspection through a fragment in production: %+v", r.Errors)
	}
	// Every "Did you mean": fields, arguments, enum values and input fields
	// in a literal. Each case is one the development server does suggest.
	mistakes := []struct{ query, suggests string }{
		{`{ organizaton { id } }`, `"organization"`},
		{`{ invoices(statuss: PAID) { nodes { id } } }`, `"status"`},
		{`{ invoices(status: PAD) { nodes { id } } }`, `"PAID"`},
		{`mutation { cancelSubscription(input: {atPeriodEn: true}) { userErrors { code } } }`, `"atPeriodEnd"`},
	}
	dev := apptest.New(t, apptest.Options{})
	for _, m := range mistakes {
		if r := dev.Query("acme", m.query, nil); len(r.Errors) == 0 || !strings.Contains(r.Errors[0].Message, m.suggests) {
			t.Fatalf("development does not suggest %s for %s: %+v", m.suggests, m.query, r.Errors)
		}
		r := h.Query("acme", m.query, nil)
		if len(r.Errors) == 0 {
			t.Fatalf("production accepted %s", m.query)
		}
		for _, e := range r.Errors {
			if strings.Contains(e.Message, "Did you mean") || strings.Contains(e.Message, m.suggests) {
				t.Fatalf("production suggests for %s: %s", m.query, e.Message)
			}
		}
	}
	// Nor does a message about a value name the schema's types: it names
	// what the client wrote (the variable, the input field).
	typed := []struct{ query, typeName, names string }{
		{`query($s: String) { invoices(status: $s) { nodes { id } } }`, "InvoiceStatus", `"$s"`},
		{`query($s: InvoiceStatu) { invoices(status: $s) { nodes { id } } }`, "InvoiceStatus", `"$s"`},
		{`mutation { createApiKey(input: {scopes: [BILLING_READ]}) { secret } }`, "CreateApiKeyInput", `"name"`},
	}
	messages := func(r apptest.Response) string {
		var all []string
		for _, e := range r.Errors {
			all = append(all, e.Message)
		}
		return strings.Join(all, "\n")
	}
	for _, m := range typed {
		if got := messages(dev.Query("acme", m.query, nil)); !strings.Contains(got, m.typeName) {
			t.Fatalf("development does not name %s for %s: %s", m.typeName, m.query, got)
		}
		got := messages(h.Query("acme", m.query, nil))
		if got == "" || strings.Contains(got, m.typeName) || !strings.Contains(got, m.names) {
			t.Fatalf("production for %s: %q, want %s named and no %s", m.query, got, m.names, m.typeName)
		}
	}
	// Production's messages are sentences, not gqlparser's with words
	// swapped in, and development keeps gqlparser's.
	sentences := []struct{ query, dev, prod string }{
		{`{ organizatio { id } }`, `Cannot query field "organizatio" on type "Query".`, `Cannot query field "organizatio": there is no such field here.`},
		{`{ invoices(status: PAYED) { nodes { id } } }`, `Value "PAYED" does not exist in "InvoiceStatus" enum.`, `Value "PAYED" is not one of the values this enum takes.`},
		{`{ usageGate { allowed } }`, `Field "usageGate" argument "meter" of type "String!" is required, but it was not provided.`, `Field "usageGate" requires argument "meter", which was not provided.`},
		{`{ organization { ... on Plan { id } } }`, `Fragment cannot be spread here as objects of type "Organization" can never be of type "Plan".`, `This inline fragment cannot be spread here: its type can never match the value it is spread on.`},
	}
	for _, m := range sentences {
		if got := messages(dev.Query("acme", m.query, nil)); !strings.HasPrefix(got, m.dev) {
			t.Errorf("development for %s: %q, want gqlparser's %q", m.query, got, m.dev)
		}
		if got := messages(h.Query("acme", m.query, nil)); !strings.HasSuffix(got, m.prod) {
			t.Errorf("production for %s: %q, want %q", m.query, got, m.prod)
		}
		// The same mistake has the same code in both.
		if d, p := dev.Query("acme", m.query, nil).Code(), h.Query("acme", m.query, nil).Code(); d != p {
			t.Errorf("%s: code %s in development, %s in production", m.query, d, p)
		}
	}
	if resp := get(t, h.Server.URL+"/", nil); resp.StatusCode == http.StatusOK {
		t.Fatal("GraphiQL served in production")
	}
	if r := dev.Query("acme", `{ __schema { queryType { name } } }`, nil); len(r.Errors) > 0 {
		t.Fatalf("introspection off in dev: %+v", r.Errors)
	}
}

// TestCookieAuthNeedsACustomHeaderOnGET: a cross-site link cannot make a
// browser run a query with the user's cookie.
func TestCookieAuthNeedsACustomHeaderOnGET(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	cookie := auth.SessionCookie + "=" + h.Token("acme")
	url := h.Server.URL + "/graphql?query=%7Borganization%7Bid%7D%7D"
	body := func(r *http.Response) string { b, _ := io.ReadAll(r.Body); return string(b) }
	if got := body(get(t, url, map[string]string{"Cookie": cookie})); !strings.Contains(got, "CSRF_HEADER_REQUIRED") {
		t.Fatalf("GET with cookie and no header: %s", got)
	}
	if got := body(get(t, url, map[string]string{"Cookie": cookie, "X-Requested-With": "dashboard"})); !strings.Contains(got, `"organization":{"id"`) {
		t.Fatalf("GET with cookie and header: %s", got)
	}
}

// TestCORSAllowList: listed origins get CORS headers (with credentials),
// others get none.
func TestCORSAllowList(t *testing.T) {
	h := apptest.New(t, apptest.Options{Env: map[string]string{"CORS_ORIGINS": "https://app.example.com"}})
	pre := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, h.Server.URL+"/graphql", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	ok := pre("https://app.example.com")
	if ok.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || ok.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("allowed origin got %v", ok.Header)
	}
	if bad := pre("https://evil.example"); bad.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("unlisted origin got CORS headers: %v", bad.Header)
	}
}

// TestOperationalEndpoints: request ids are echoed, metrics are served, and
// an oversized body is refused.
func TestOperationalEndpoints(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	resp := get(t, h.Server.URL+"/healthz", map[string]string{"X-Request-Id": "trace-123"})
	if resp.Header.Get("X-Request-Id") != "trace-123" {
		t.Fatalf("request id not echoed: %v", resp.Header)
	}
	if id := get(t, h.Server.URL+"/healthz", nil).Header.Get("X-Request-Id"); len(id) != 32 {
		t.Fatalf("generated request id %q", id)
	}
	// A browser showing any of these asks for /favicon.ico; a 404 there is
	// an error in its console.
	if icon := get(t, h.Server.URL+"/favicon.ico", nil); icon.StatusCode != http.StatusNoContent {
		t.Fatalf("GET /favicon.ico answered %d, want 204", icon.StatusCode)
	}
	h.Query("acme", `query Dashboard { plans { id } }`, nil)
	m := get(t, h.Server.URL+"/metrics", nil)
	b, _ := io.ReadAll(m.Body)
	for _, want := range []string{`tollgate_http_requests_total{code="200",route="POST /graphql"}`, `tollgate_graphql_operation_duration_seconds_count{operation="plans",outcome="ok"}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	big := strings.NewReader(`{"query":"{ plans { id } }","variables":{"x":"` + strings.Repeat("x", 3<<20) + `"}}`)
	req, _ := http.NewRequest(http.MethodPost, h.Server.URL+"/graphql", big)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+h.Token("acme"))
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("3 MiB body answered %d", r.StatusCode)
	}
}

// TestInternalErrorsDoNotLeak: when the database fails, the client gets
// INTERNAL and a request id, never the driver's text.
func TestInternalErrorsDoNotLeak(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	tok := h.Token("acme")
	h.Do(map[string]string{"Authorization": "Bearer " + tok}, `{ organization { id } }`, nil)
	h.App.DB.Exec("DROP TABLE api_keys")
	r := h.Do(map[string]string{"Authorization": "Bearer " + tok, "X-Request-Id": "leak-check"}, `{ apiKeys { id } }`, nil)
	if r.Code() != "INTERNAL" || r.Errors[0].Extensions["requestId"] != "leak-check" {
		t.Fatalf("errors = %+v", r.Errors)
	}
	msg := strings.ToLower(r.Errors[0].Message)
	for _, leak := range []string{"api_keys", "sql", "relation", "table", "select"} {
		if strings.Contains(msg, leak) {
			t.Fatalf("message leaks %q: %s", leak, r.Errors[0].Message)
		}
	}
}

// TestReadinessNeedsTheLatestSchema: with TOLLGATE_MIGRATE=false a replica
// can start on a database nobody migrated, or one a migration behind; every
// request would then fail, so /readyz answers 503 until the schema is at
// the binary's latest migration.
func TestReadinessNeedsTheLatestSchema(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := db.MigrateReset(ctx); err != nil {
			t.Fatal(err)
		}
		h := apptest.New(t, apptest.Options{DB: db, Env: map[string]string{"TOLLGATE_MIGRATE": "false"}})
		ready := func() (int, string) {
			r := get(t, h.Server.URL+"/readyz", nil)
			var body struct{ Checks map[string]string }
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			return r.StatusCode, body.Checks["schema"]
		}
		if code, schema := ready(); code != http.StatusServiceUnavailable || schema != "migrations pending" {
			t.Fatalf("unmigrated database: readyz %d, schema %q; want 503, migrations pending", code, schema)
		}
		if err := db.MigrateUp(ctx); err != nil {
			t.Fatal(err)
		}
		if code, schema := ready(); code != http.StatusOK || schema != "ok" {
			t.Fatalf("migrated database: readyz %d, schema %q; want 200, ok", code, schema)
		}
		if err := db.MigrateDown(ctx); err != nil {
			t.Fatal(err)
		}
		if code, schema := ready(); code != http.StatusServiceUnavailable || schema != "migrations pending" {
			t.Fatalf("one migration behind: readyz %d, schema %q; want 503, migrations pending", code, schema)
		}
	})
}

// TestGraphiQLNeedsNoInternet: the development GraphiQL page and what it
// loads come from Tollgate itself; it used to load React and GraphiQL from
// a CDN, and offline the page stayed on "Loading…".
func TestGraphiQLNeedsNoInternet(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	resp := get(t, h.Server.URL+"/", nil)
	page, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d", resp.StatusCode)
	}
	if strings.Contains(string(page), "http://") || strings.Contains(string(page), "https://") {
		t.Fatalf("the GraphiQL page names another host:\n%s", page)
	}
	if js := get(t, h.Server.URL+"/graphiql/graphiql.min.js", nil); js.StatusCode != http.StatusOK || !strings.Contains(string(page), `src="/graphiql/graphiql.min.js"`) {
		t.Fatalf("GraphiQL's script is not served by Tollgate: %d", js.StatusCode)
	}
}
