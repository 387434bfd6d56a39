package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// The fuzzers below send what a client may put in the inputs of
// recordUsage and createCheckoutSession through the real HTTP handler.
// Whatever they send, the answer must be a GraphQL response, not a 5xx, and
// any error must be the client's (a code it can act on), never INTERNAL.

const recordUsageMutation = `mutation($e: UsageEventInput!) {
  recordUsage(input: {events: [$e]}) {
    accepted duplicates rejected { index code message } usage { meter used }
    userErrors { field code message }
  }
}`

// FuzzRecordUsageInput sends quantity as raw JSON when it is JSON (so
// fractions, huge numbers, strings and objects reach the Int64 scalar) and as
// a string otherwise.
func FuzzRecordUsageInput(f *testing.F) {
	h := apptest.New(f, apptest.Options{DB: testenv.FuzzDB(f)})
	post := poster(h, h.Token("fuzz-usage"))
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
	f.Fuzz(func(t *testing.T, meter, quantity, key, endpoint, timestamp string) {
		var q any = quantity
		if json.Valid([]byte(quantity)) {
			q = json.RawMessage(quantity)
		}
		event := map[string]any{"meter": meter, "quantity": q, "idempotencyKey": key, "endpoint": endpoint, "timestamp": timestamp}
		post(t, recordUsageMutation, map[string]any{"e": event})
	})
}

const checkoutMutation = `mutation($in: CreateCheckoutSessionInput!) {
  createCheckoutSession(input: $in) { url sessionId userErrors { field code message } }
}`

func FuzzCheckoutInput(f *testing.F) {
	// stripe-mock stands in for Stripe, so input that passes validation
	// goes all the way to a Checkout session.
	h := apptest.New(f, apptest.Options{DB: testenv.FuzzDB(f), Env: map[string]string{
		"STRIPE_SECRET_KEY": "sk_test_123", "STRIPE_API_BASE": testenv.StripeMock(f),
	}})
	post := poster(h, h.Token("fuzz-checkout"))
	f.Add("starter", "https://app.example.com/billing/success", "https://app.example.com/billing")
	f.Add("free", "http://localhost:3000/ok?session={CHECKOUT_SESSION_ID}", "http://localhost:3000/")
	f.Add("enterprise", "javascript:alert(1)", "ftp://example.com")
	f.Add("", "", "")
	f.Add("growth", "https://"+strings.Repeat("a", 2100), "https://exa mple.com/\x00")
	f.Add("nope", "//example.com/relative", "https://[::1]:namedport/")
	f.Fuzz(func(t *testing.T, plan, successURL, cancelURL string) {
		post(t, checkoutMutation, map[string]any{"in": map[string]any{"plan": plan, "successUrl": successURL, "cancelUrl": cancelURL}})
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
