package app_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/auth"
)

// TestCredentialledAnswersAreNeverStored: no cache, shared or private, may
// keep an answer that depends on who asked (a createApiKey secret, a GET
// answered for the session cookie) or a refusal of one, whatever its
// route, method and status. Assets that are the same for everyone may say
// otherwise.
func TestCredentialledAnswersAreNeverStored(t *testing.T) {
	h := apptest.New(t, apptest.Options{Env: map[string]string{
		"STRIPE_WEBHOOK_SECRET": "whsec_test", "CORS_ORIGINS": "https://app.example.com",
		"API_RATE_LIMIT_PER_ADDRESS": "1", "PLAYGROUND": "true",
	}})
	tok := h.Token("acme")
	bearer := map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}
	gql := "/graphql?query=" + url.QueryEscape("{ organization { id } apiKeys { id name } }")
	for _, tc := range []struct {
		name, method, path, body string
		headers                  map[string]string
		status                   int
	}{
		// First: an anonymous request, which this one is, spends the
		// address's budget of 1.
		{"a token that does not verify", "POST", "/graphql", `{"query":"{ plans { id } }"}`, map[string]string{"Authorization": "Bearer x.y.z", "Content-Type": "application/json"}, 0},
		{"createApiKey's secret", "POST", "/graphql", `{"query":"mutation { createApiKey(input:{name:\"k\", scopes:[BILLING_READ]}) { secret } }"}`, bearer, 200},
		{"GET with the session cookie", "GET", gql, "", map[string]string{"Cookie": auth.SessionCookie + "=" + tok, "X-Requested-With": "t"}, 200},
		{"GET without the CSRF header", "GET", gql, "", map[string]string{"Cookie": auth.SessionCookie + "=" + tok}, 0},
		{"a document that does not parse", "POST", "/graphql", `{"query":"{"}`, bearer, 0},
		{"a scope the token lacks", "POST", "/graphql", `{"query":"mutation { createApiKey(input:{name:\"k\", scopes:[BILLING_READ]}) { secret } }"}`, map[string]string{"Authorization": "Bearer " + h.Token("acme", auth.BillingRead), "Content-Type": "application/json"}, 0},
		{"a method GraphQL does not take", "PUT", "/graphql", `{}`, bearer, http.StatusMethodNotAllowed},
		{"a body over the limit", "POST", "/graphql", `{"query":"` + strings.Repeat("x", 3<<20) + `"}`, bearer, http.StatusRequestEntityTooLarge},
		{"a content type GraphQL does not take", "POST", "/graphql", `query`, map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "text/plain"}, 0},
		{"an anonymous request over its address's budget", "POST", "/graphql", `{"query":"{ plans { id } }"}`, map[string]string{"Content-Type": "application/json"}, 0},
		{"another anonymous request over its address's budget", "POST", "/graphql", `{"query":"{ plans { id } }"}`, map[string]string{"Content-Type": "application/json"}, http.StatusTooManyRequests},
		{"a CORS preflight", "OPTIONS", "/graphql", "", map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}, http.StatusNoContent},
		{"a Stripe webhook without a valid signature", "POST", "/webhooks/stripe", `{}`, map[string]string{"Stripe-Signature": "t=1,v1=00"}, 0},
		{"readiness", "GET", "/readyz", "", nil, http.StatusOK},
		{"metrics", "GET", "/metrics", "", nil, http.StatusOK},
		{"an unknown path", "GET", "/nothing-here", "", nil, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, h.Server.URL+tc.path, strings.NewReader(tc.body))
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if tc.status != 0 && resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("%s %s answered %d with Cache-Control %q, want no-store", tc.method, tc.path, resp.StatusCode, got)
			}
			if vary := strings.Join(resp.Header.Values("Vary"), ", "); !strings.Contains(vary, "Authorization") || !strings.Contains(vary, "Cookie") {
				t.Errorf("%s %s answered %d with Vary %q, want Authorization and Cookie", tc.method, tc.path, resp.StatusCode, vary)
			}
			t.Logf("%s %s: %d", tc.method, tc.path, resp.StatusCode)
		})
	}
	// Assets that are the same for everyone keep their own caching.
	for _, path := range []string{"/favicon.ico", "/billing/assets/billing.js"} {
		resp := get(t, h.Server.URL+path, nil)
		if cc := resp.Header.Get("Cache-Control"); cc == "no-store" {
			t.Errorf("GET %s (%d): Cache-Control %q; a static asset may be cached", path, resp.StatusCode, cc)
		}
	}
}
