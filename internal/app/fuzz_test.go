package app_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// The fuzzers below send what a client may put in every argument of every
// query and mutation through the real HTTP handler, on SQLite and (when it
// is reachable) Postgres. Whatever they send, the answer must be a GraphQL
// response, not a 5xx, and any error must be the client's (a code it can act
// on), never INTERNAL.

// value sends s as raw JSON when it is JSON, so numbers, booleans, lists and
// objects reach the scalar and enum coercions, and as a string otherwise.
func value(s string) any {
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	return s
}

// servers starts one Tollgate per database dialect, each with its own
// organisation, and returns a sender that posts to all of them.
func servers(f *testing.F, env map[string]string) func(t *testing.T, query string, vars map[string]any) {
	dbs := []*store.DB{testenv.OpenDB(f, store.SQLite)}
	if db := testenv.DB(f); db.Dialect == store.Postgres {
		dbs = append(dbs, db)
	}
	var posts []func(*testing.T, string, map[string]any)
	for _, db := range dbs {
		h := apptest.New(f, apptest.Options{DB: db, Env: env})
		posts = append(posts, poster(h, h.Token("fuzz")))
	}
	return func(t *testing.T, query string, vars map[string]any) {
		t.Helper()
		for _, post := range posts {
			post(t, query, vars)
		}
	}
}

const recordUsageMutation = `mutation($e: UsageEventInput!) {
  recordUsage(input: {events: [$e]}) {
    accepted duplicates rejected { index code message } usage { meter used }
    userErrors { field code message }
  }
}`

const consumeUsageMutation = `mutation($in: ConsumeUsageInput!) {
  consumeUsage(input: $in) { allowed reason retryAfterMs usage { meter used } userErrors { field code message } }
}`

// FuzzRecordUsageInput covers every field of recordUsage's and
// consumeUsage's inputs.
func FuzzRecordUsageInput(f *testing.F) {
	post := servers(f, nil)
	now := time.Now().UTC()
	f.Add("api_calls", "1", "key-1", "POST /v1/search", now.Format(time.RFC3339))
	f.Add("storage_bytes", "-512", "key-2", "", now.Format(time.RFC3339Nano))
	f.Add("llm_tokens", "9223372036854775807", "key-3", "GET /", now.Add(time.Hour).Format(time.RFC3339))
	f.Add("nope", "-9223372036854775808", "", "\x00", "yesterday")
	f.Add("api_calls", "0", " ", strings.Repeat("é", 300), "")
	f.Add("api_calls", "9007199254740992", "key\x00nul", "POST /v1/x", "1999-12-31T23:59:59Z")
	f.Add("api_calls", "1.5", "key-4", "", "2026-01-31")
	f.Add("api_calls", "1e30", "key-5", "", "1769860800")
	f.Add("api_calls", `"12"`, "key-6", "", "2026-01-31 12:00:00")
	f.Add("storage_bytes", "1", "key-7", "", "0001-01-01T00:00:01Z")
	f.Fuzz(func(t *testing.T, meter, quantity, key, endpoint, timestamp string) {
		event := map[string]any{"meter": meter, "quantity": value(quantity), "idempotencyKey": key, "endpoint": endpoint, "timestamp": timestamp}
		post(t, recordUsageMutation, map[string]any{"e": event})
		delete(event, "timestamp")
		post(t, consumeUsageMutation, map[string]any{"in": event})
	})
}

const (
	checkoutMutation = `mutation($in: CreateCheckoutSessionInput!) {
  createCheckoutSession(input: $in) { url sessionId userErrors { field code message } }
}`
	portalMutation = `mutation($url: String!) { createPortalSession(input: {returnUrl: $url}) { url userErrors { field code message } } }`
)

// FuzzCheckoutInput covers createCheckoutSession's and createPortalSession's
// inputs. An interval that is not JSON goes as a string, which the enum
// refuses like any client would be refused.
func FuzzCheckoutInput(f *testing.F) {
	// stripe-mock stands in for Stripe, so input that passes validation
	// goes all the way to a Checkout session.
	post := servers(f, map[string]string{"STRIPE_SECRET_KEY": "sk_test_123", "STRIPE_API_BASE": testenv.StripeMock(f)})
	f.Add("starter", "https://app.example.com/billing/success", "https://app.example.com/billing", "MONTH")
	f.Add("free", "http://localhost:3000/ok?session={CHECKOUT_SESSION_ID}", "http://localhost:3000/", "YEAR")
	f.Add("enterprise", "javascript:alert(1)", "ftp://example.com", "null")
	f.Add("", "", "", "null")
	f.Add("growth", "https://"+strings.Repeat("a", 2100), "https://exa mple.com/\x00", "WEEK")
	f.Add("nope", "//example.com/relative", "https://[::1]:namedport/", "1")
	f.Add("starter\x00", "https://app.example.com/\x00", "https://app.example.com/\xff", `"month"`)
	f.Fuzz(func(t *testing.T, plan, successURL, cancelURL, interval string) {
		in := map[string]any{"plan": plan, "successUrl": successURL, "cancelUrl": cancelURL, "interval": value(interval)}
		post(t, checkoutMutation, map[string]any{"in": in})
		post(t, portalMutation, map[string]any{"url": cancelURL})
	})
}

const (
	invoicesQuery   = `query($first: Int, $after: String, $status: InvoiceStatus) { invoices(first: $first, after: $after, status: $status) { nodes { id } pageInfo { endCursor } } }`
	usageQuery      = `query($period: String) { usage(period: $period) { periodStart periodEnd meters { meter used } } }`
	byEndpointQuery = `query($period: String, $meter: String) { usageByEndpoint(period: $period, meter: $meter) { endpoint meter used } }`
	seriesQuery     = `query($meter: String!, $from: Date!, $to: Date!) { usageSeries(meter: $meter, from: $from, to: $to) { date used } }`
	gateQuery       = `query($meter: String!) { usageGate(meter: $meter) { allowed used limit } }`
)

// FuzzQueryArguments covers every argument of every query. The cursor is
// sent as given and also as a well-formed cursor around the fuzzed text, so
// what it carries reaches the database's comparison.
func FuzzQueryArguments(f *testing.F) {
	post := servers(f, nil)
	f.Add("20", "", "PAID", "2026-01", "api_calls", "2026-01-01", "2026-01-31")
	f.Add("0", "in_\x00", "DELETED", "0001-01", "", "0001-01-01", "9999-12-31")
	f.Add("100000000000", "in_\xff", `"PAID"`, "2026-13", "nope\x00", "2026-02-30", "2025-01-01")
	f.Add("-1", "djF8MjAyNi0wMS0wMVQwMDowMDowMFp8aW5fMQ", "null", "9999-12", "storage_bytes", "2000-01-01", "2000-12-31")
	f.Add("1.5", strings.Repeat("x", 5000), "[]", "", "llm_tokens", "1999-12-31", "2000-01-01")
	f.Add("5", "", `"paid"`, "2026-01", "api_calls", "2026-01-01", "2026-01-02")
	f.Fuzz(func(t *testing.T, first, after, status, period, meter, from, to string) {
		forged := base64.RawURLEncoding.EncodeToString([]byte("v1|2026-01-01T00:00:00Z|" + after))
		for _, a := range []string{after, forged} {
			post(t, invoicesQuery, map[string]any{"first": value(first), "after": a, "status": value(status)})
		}
		post(t, usageQuery, map[string]any{"period": period})
		post(t, byEndpointQuery, map[string]any{"period": period, "meter": meter})
		post(t, seriesQuery, map[string]any{"meter": meter, "from": from, "to": to})
		post(t, gateQuery, map[string]any{"meter": meter})
	})
}

const (
	createKeyMutation = `mutation($in: CreateApiKeyInput!) {
  createApiKey(input: $in) { secret apiKey { id name scopes } userErrors { field code message } }
}`
	revokeKeyMutation  = `mutation($id: ID!) { revokeApiKey(id: $id) { apiKey { id revokedAt } userErrors { field code } } }`
	signingKeyMutation = `mutation($in: RegisterSigningKeyInput!) {
  registerSigningKey(input: $in) { apiKey { id signingRequired } userErrors { field code message } }
}`
	cancelMutation = `mutation($in: CancelSubscriptionInput) { cancelSubscription(input: $in) { subscription { status } userErrors { code } } }`
	resumeMutation = `mutation { resumeSubscription { subscription { status } userErrors { code } } }`
)

// FuzzAccountMutations covers every argument of the API key, signing key
// and subscription mutations.
func FuzzAccountMutations(f *testing.F) {
	post := servers(f, nil)
	f.Add("ci key", "ops@example.com", `["BILLING_READ"]`, "5f0c2a4e-0000-4000-8000-000000000000", "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE", "true")
	f.Add("ci\x00key", "a\x00@example.com", `["BILLING_READ","USAGE_WRITE","BILLING_WRITE"]`, "k\x00", "-----BEGIN PUBLIC KEY-----\x00", "false")
	f.Add("", "not-an-email", `[]`, strings.Repeat("k", 300), "", "null")
	f.Add(strings.Repeat("n", 201), strings.Repeat("e", 330), `["NOPE"]`, "\xff", "AAAA", `"yes"`)
	f.Add("é\xffé", "Bob <bob@x.io>", `"BILLING_READ"`, "", strings.Repeat("A", 5000), "1")
	f.Add("ci key", "ops@example.com", `["billing_read"]`, "k", "", "true")
	f.Fuzz(func(t *testing.T, name, email, scopes, id, publicKey, atPeriodEnd string) {
		post(t, createKeyMutation, map[string]any{"in": map[string]any{"name": name, "contactEmail": email, "scopes": value(scopes)}})
		post(t, revokeKeyMutation, map[string]any{"id": id})
		post(t, signingKeyMutation, map[string]any{"in": map[string]any{"apiKeyId": id, "publicKey": publicKey}})
		post(t, cancelMutation, map[string]any{"in": map[string]any{"atPeriodEnd": value(atPeriodEnd)}})
		post(t, resumeMutation, nil)
	})
}

// poster returns a function that sends one GraphQL request with the token
// and fails the test unless the answer is a well-formed response free of
// server faults.
func poster(h *apptest.Harness, token string) func(t *testing.T, query string, vars map[string]any) {
	return func(t *testing.T, query string, vars map[string]any) {
		t.Helper()
		body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, h.Server.URL+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := h.Server.Client().Do(req)
		if err != nil {
			t.Fatalf("POST /graphql: %v", err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 500 {
			t.Fatalf("answered %d to %s: %s", resp.StatusCode, body, raw)
		}
		var out struct {
			Errors []struct {
				Message    string         `json:"message"`
				Extensions map[string]any `json:"extensions"`
			} `json:"errors"`
		}
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("answered %d with a body that is not JSON to %s: %s", resp.StatusCode, body, raw)
		}
		for _, e := range out.Errors {
			if e.Extensions["code"] == "INTERNAL" {
				t.Fatalf("INTERNAL error %q for %s", e.Message, body)
			}
		}
	}
}
