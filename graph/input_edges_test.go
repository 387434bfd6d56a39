package graph_test

import (
	"encoding/base64"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// cursor forges an invoices cursor around id, in the format the server
// writes, so the id part can carry what a client cannot put in JSON.
func cursor(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("v1|2026-01-01T00:00:00Z|" + id))
}

// TestInputsThatReachedTheDatabaseAreClientErrors: strings Postgres cannot
// store and dates Go writes as null were answered INTERNAL; each is now
// refused at the service's edge as the client's mistake, on both
// databases.
func TestInputsThatReachedTheDatabaseAreClientErrors(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		h := apptest.New(t, apptest.Options{DB: db})
		queries := []struct{ name, query, code string }{
			{"a cursor whose id holds NUL", `query($a: String) { invoices(after: $a) { nodes { id } } }`, "BAD_USER_INPUT"},
			{"a cursor whose id is not UTF-8", `query($b: String) { invoices(after: $b) { nodes { id } } }`, "BAD_USER_INPUT"},
			{"a period in year 1", `{ usage(period: "0001-01") { periodStart meters { meter } } }`, "BAD_USER_INPUT"},
			{"usage by endpoint in year 1", `{ usageByEndpoint(period: "0001-01") { endpoint } }`, "BAD_USER_INPUT"},
			{"a series from year 1", `{ usageSeries(meter: "api_calls", from: "0001-01-01", to: "0001-01-02") { date used } }`, "BAD_USER_INPUT"},
			{"an apiKeys cursor with NUL", `{ apiKeys(after: "k\u0000") { id } }`, "BAD_USER_INPUT"},
		}
		vars := map[string]any{"a": cursor("in_\x00x"), "b": cursor("in_\xffx")}
		for _, q := range queries {
			t.Run(q.name, func(t *testing.T) {
				r := h.Query("acme", q.query, vars)
				if r.Code() != q.code {
					t.Fatalf("code = %q, want %s (%+v)", r.Code(), q.code, r.Errors)
				}
			})
		}
		// gqlparser accepts enum values in variables without regard to
		// case; gqlgen's models do not.
		for name, q := range map[string]struct {
			query string
			vars  map[string]any
		}{
			"an enum variable in lower case": {`query($s: InvoiceStatus) { invoices(status: $s) { nodes { id } } }`, map[string]any{"s": "paid"}},
			"an enum in a list in an input":  {createKey, map[string]any{"in": map[string]any{"name": "ci", "scopes": []string{"billing_read"}}}},
		} {
			t.Run(name, func(t *testing.T) {
				if r := h.Query("acme", q.query, q.vars); r.Code() != "BAD_USER_INPUT" {
					t.Fatalf("code = %q, want BAD_USER_INPUT (%+v)", r.Code(), r.Errors)
				}
			})
		}
		for name, keyName := range map[string]string{"NUL": "ci\x00key", "a zero-width space": "ci\u200Bkey", "a right-to-left mark": "ci key\u200F"} {
			t.Run("a key name with "+name, func(t *testing.T) {
				var out createKeyResult
				h.Query("acme", createKey, map[string]any{"in": map[string]any{"name": keyName, "scopes": []string{"BILLING_READ"}}}).Decode(t, &out)
				if ue := out.CreateAPIKey.UserErrors; len(ue) != 1 || ue[0].Field != "input.name" || ue[0].Code != "INVALID" {
					t.Fatalf("userErrors = %+v, want input.name INVALID", ue)
				}
			})
		}
		t.Run("revoking an id with NUL", func(t *testing.T) {
			var out struct {
				RevokeAPIKey struct {
					UserErrors []struct{ Field, Code string }
				} `json:"revokeApiKey"`
			}
			h.Query("acme", `mutation { revokeApiKey(id: "k\u0000") { apiKey { id } userErrors { field code } } }`, nil).Decode(t, &out)
			if ue := out.RevokeAPIKey.UserErrors; len(ue) != 1 || ue[0].Field != "id" || ue[0].Code != "NOT_FOUND" {
				t.Fatalf("userErrors = %+v, want id NOT_FOUND", ue)
			}
		})
		t.Run("a signing key for an id with NUL", func(t *testing.T) {
			var out struct {
				RegisterSigningKey struct {
					UserErrors []struct{ Field, Code string }
				}
			}
			h.Query("acme", `mutation($in: RegisterSigningKeyInput!) { registerSigningKey(input: $in) { userErrors { field code } } }`,
				map[string]any{"in": map[string]any{"apiKeyId": "k\x00", "publicKey": "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="}}).Decode(t, &out)
			if ue := out.RegisterSigningKey.UserErrors; len(ue) != 1 || ue[0].Field != "input.apiKeyId" || ue[0].Code != "NOT_FOUND" {
				t.Fatalf("userErrors = %+v, want input.apiKeyId NOT_FOUND", ue)
			}
		})
	})
}
