package graph_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/apptest"
)

// TestGraphQLOverHTTPStatusCodes: the GraphQL over HTTP specification's
// SHOULDs, which graphql-http's serverAudits check. Under application/json
// a well-formed request answers 200 whatever went wrong with the document;
// under application/graphql-response+json a request that fails before
// execution answers 400 and carries no data entry.
func TestGraphQLOverHTTPStatusCodes(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	token := h.Token("acme")
	const (
		jsonMedia     = "application/json"
		responseMedia = "application/graphql-response+json"
		good          = `{ plans { id } }`
	)
	cases := []struct {
		name    string
		accept  string
		query   string
		vars    map[string]any
		status  int
		hasData bool
	}{
		{"parse failure as JSON", jsonMedia, `{`, nil, 200, true},
		{"validation failure as JSON", jsonMedia, `{ nosuchfield }`, nil, 200, true},
		{"variable coercion failure as JSON", jsonMedia, `query($n: Int) { invoices(first: $n) { nodes { id } } }`, map[string]any{"n": "twenty"}, 200, true},
		{"parse failure as graphql-response", responseMedia, `{`, nil, 400, false},
		{"validation failure as graphql-response", responseMedia, `{ nosuchfield }`, nil, 400, false},
		{"variable coercion failure as graphql-response", responseMedia, `query($n: Int) { invoices(first: $n) { nodes { id } } }`, map[string]any{"n": "twenty"}, 400, false},
		{"a good query as graphql-response", responseMedia, good, nil, 200, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"query": tc.query, "variables": tc.vars})
			req, _ := http.NewRequest(http.MethodPost, h.Server.URL+"/graphql", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", tc.accept)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := h.Server.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			var out map[string]json.RawMessage
			if err := json.Unmarshal(raw, &out); err != nil {
				t.Fatalf("not JSON: %s", raw)
			}
			if resp.StatusCode != tc.status {
				t.Errorf("status = %d, want %d (%s)", resp.StatusCode, tc.status, raw)
			}
			if got := resp.Header.Get("Content-Type"); got != tc.accept {
				t.Errorf("Content-Type = %q, want %q", got, tc.accept)
			}
			if _, ok := out["data"]; ok != tc.hasData {
				t.Errorf("data entry present = %v, want %v (%s)", ok, tc.hasData, raw)
			}
			if failed := tc.query != good; failed != (len(out["errors"]) > 0) {
				t.Errorf("errors present = %v, want %v (%s)", !failed, failed, raw)
			}
		})
	}
}
