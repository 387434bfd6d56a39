package graph_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/jsontext"
)

// rawAnswer is what came back for a request sent as is.
type rawAnswer struct {
	status int
	header http.Header
	body   []byte
	errors []apptest.GQLError
	data   bool
}

// sendRaw sends method url with body under contentType ("" for none) as
// acme, and reads the answer as a GraphQL response.
func sendRaw(t *testing.T, h *apptest.Harness, method, target, contentType, accept string, body io.Reader) rawAnswer {
	t.Helper()
	req, err := http.NewRequest(method, h.Server.URL+target, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	req.Header.Set("Authorization", "Bearer "+h.Token("acme"))
	resp, err := h.Server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := rawAnswer{status: resp.StatusCode, header: resp.Header, body: raw}
	if method == http.MethodHead {
		return a
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("answer is not JSON (%d, %s): %.300s", resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	_, a.data = out["data"]
	if err := json.Unmarshal(out["errors"], &a.errors); err != nil && len(out["errors"]) > 0 {
		t.Fatalf("errors are not a list: %.300s", raw)
	}
	return a
}

// goText is what Go's own error text looks like; no answer may carry it.
var goText = []string{"json:", "cannot unmarshal", "RawParams", "graphql.", "map[string]", "transport not supported", "unexpected EOF", "invalid character"}

// TestTransportRefusalsAreGraphQLErrors: every request the transport
// cannot run (another method or content type, a body that is not one JSON
// object with a string query, variables that are not an object) answers a
// JSON GraphQL error with an extensions.code, a status that says what to
// change, a message in words, and never the body it was sent: gqlgen
// answered "transport not supported" as text/plain, Go's decoder text
// with the whole body echoed back (1.5 MB for a 1.5 MB body), and 406 for
// a mutation over GET.
func TestTransportRefusalsAreGraphQLErrors(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	const js = "application/json"
	get := func(params url.Values) string { return "/graphql?" + params.Encode() }
	huge := `{"query": "{ plans { id } }", "variables": {"x": "` + strings.Repeat("y", 1_500_000) + `"` // never closed
	// Valid JSON nested past what encoding/json reads: the answer says so.
	lists := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	deep := fmt.Sprintf("holds JSON nested more than %d levels deep", jsontext.MaxDepth)
	cases := []struct {
		name, method, target, contentType, body string
		status                                  int
		code, says, allow                       string
	}{
		{"a text/plain POST", "POST", "/graphql", "text/plain", `{"query":"{ plans { id } }"}`, 415, "UNSUPPORTED_MEDIA_TYPE", "application/json", ""},
		{"a POST without a content type", "POST", "/graphql", "", `{"query":"{ plans { id } }"}`, 415, "UNSUPPORTED_MEDIA_TYPE", "application/json", ""},
		{"a form-encoded POST", "POST", "/graphql", "application/x-www-form-urlencoded", `query=%7Bplans%7Bid%7D%7D`, 415, "UNSUPPORTED_MEDIA_TYPE", "application/json", ""},
		{"a multipart upload", "POST", "/graphql", "multipart/form-data; boundary=x", "--x--", 415, "UNSUPPORTED_MEDIA_TYPE", "multipart", ""},
		{"a GraphQL document as the body", "POST", "/graphql", "application/graphql", `{ plans { id } }`, 415, "UNSUPPORTED_MEDIA_TYPE", "application/json", ""},
		{"a mutation over GET", "GET", get(url.Values{"query": {`mutation { setUsageAlerts(meter: "api_calls", percents: [50]) { userErrors { code } } }`}}), "", "", 405, "METHOD_NOT_ALLOWED", "POST", "POST"},
		{"GET variables that are not JSON", "GET", get(url.Values{"query": {`{ plans { id } }`}, "variables": {"{nope"}}), "", "", 400, "BAD_REQUEST", "variables must be a JSON object", ""},
		{"GET variables that are a list", "GET", get(url.Values{"query": {`{ plans { id } }`}, "variables": {"[1]"}}), "", "", 400, "BAD_REQUEST", "variables must be a JSON object", ""},
		{"GET extensions that are a number", "GET", get(url.Values{"query": {`{ plans { id } }`}, "extensions": {"5"}}), "", "", 400, "BAD_REQUEST", "extensions must be a JSON object", ""},
		{"GET without a query", "GET", "/graphql", "", "", 400, "BAD_REQUEST", "query parameter", ""},
		{"a body that is not JSON", "POST", "/graphql", js, `{"query": "{ plans { id } }"`, 400, "BAD_REQUEST", "not valid JSON", ""},
		{"a 1.5 MB body that is not JSON", "POST", "/graphql", js, huge, 400, "BAD_REQUEST", "not valid JSON", ""},
		{"a body nested a million deep", "POST", "/graphql", js, `{"a": ` + lists(1_000_000) + `}`, 400, "BAD_REQUEST", "the request body " + deep, ""},
		{"variables nested one past the limit", "POST", "/graphql", js, `{"query": "{ plans { id } }", "variables": {"x": ` + lists(jsontext.MaxDepth) + `}}`, 400, "BAD_REQUEST", "variables in the request body " + deep, ""},
		{"extensions nested one past the limit", "POST", "/graphql", js, `{"query": "{ plans { id } }", "extensions": {"x": ` + lists(jsontext.MaxDepth) + `}}`, 400, "BAD_REQUEST", "extensions in the request body " + deep, ""},
		{"GET variables nested one past the limit", "GET", get(url.Values{"query": {`{ plans { id } }`}, "variables": {`{"x": ` + lists(jsontext.MaxDepth) + `}`}}), "", "", 400, "BAD_REQUEST", "variables " + deep, ""},
		{"GET extensions nested one past the limit", "GET", get(url.Values{"query": {`{ plans { id } }`}, "extensions": {`{"x": ` + lists(jsontext.MaxDepth) + `}`}}), "", "", 400, "BAD_REQUEST", "extensions " + deep, ""},
		{"a batch", "POST", "/graphql", js, `[{"query":"{ plans { id } }"},{"query":"{ organization { id } }"}]`, 400, "BAD_REQUEST", "batched requests are not supported", ""},
		{"a JSON string as the body", "POST", "/graphql", js, `"{ plans { id } }"`, 400, "BAD_REQUEST", "not a JSON object with a query", ""},
		{"an empty body", "POST", "/graphql", js, ``, 400, "BAD_REQUEST", "empty", ""},
		{"two objects in one body", "POST", "/graphql", js, `{"query":"{ plans { id } }"} {"query":"{ plans { id } }"}`, 400, "BAD_REQUEST", "more than one JSON value", ""},
		{"an object followed by garbage", "POST", "/graphql", js, `{"query":"{ plans { id } }"} }`, 400, "BAD_REQUEST", "not valid JSON", ""},
		{"no query", "POST", "/graphql", js, `{"variables": {}}`, 400, "BAD_REQUEST", "no query", ""},
		{"a null query", "POST", "/graphql", js, `{"query": null}`, 400, "BAD_REQUEST", "no query", ""},
		{"a query that is not a string", "POST", "/graphql", js, `{"query": {"plans": "id"}}`, 400, "BAD_REQUEST", "query must be a string", ""},
		{"an operationName that is not a string", "POST", "/graphql", js, `{"query": "{ plans { id } }", "operationName": 7}`, 400, "BAD_REQUEST", "operationName must be a string", ""},
		{"variables that are a list", "POST", "/graphql", js, `{"query": "{ plans { id } }", "variables": [1, 2]}`, 400, "BAD_REQUEST", "variables must be a JSON object", ""},
		{"variables that are a string", "POST", "/graphql", js, `{"query": "{ plans { id } }", "variables": "{}"}`, 400, "BAD_REQUEST", "variables must be a JSON object", ""},
		{"extensions that are not an object", "POST", "/graphql", js, `{"query": "{ plans { id } }", "extensions": true}`, 400, "BAD_REQUEST", "extensions must be a JSON object", ""},
		{"an unknown operationName", "POST", "/graphql", js, `{"query": "query A { plans { id } }", "operationName": "B"}`, 200, "GRAPHQL_VALIDATION_FAILED", `no operation named "B"`, ""},
		{"a huge unknown operationName", "POST", "/graphql", js, `{"query": "query A { plans { id } }", "operationName": "` + strings.Repeat("B", 100_000) + `"}`, 200, "GRAPHQL_VALIDATION_FAILED", "no operation of the name", ""},
		{"several operations, none named", "POST", "/graphql", js, `{"query": "query A { plans { id } } query B { plans { id } }"}`, 200, "GRAPHQL_VALIDATION_FAILED", "name the one to run in operationName", ""},
		{"a huge unknown field", "POST", "/graphql", js, `{"query": "{ ` + strings.Repeat("x", 100_000) + ` }"}`, 200, "GRAPHQL_VALIDATION_FAILED", "Cannot query field", ""},
		{"a PUT", "PUT", "/graphql", js, `{"query":"{ plans { id } }"}`, 405, "METHOD_NOT_ALLOWED", "POST", "GET, POST"},
		{"a DELETE", "DELETE", "/graphql", "", "", 405, "METHOD_NOT_ALLOWED", "POST", "GET, POST"},
		{"a PATCH", "PATCH", "/graphql", js, `{"query":"{ plans { id } }"}`, 405, "METHOD_NOT_ALLOWED", "POST", "GET, POST"},
		// Which copy of a name a proxy or a log reads is not which one runs.
		{"operationName twice", "POST", "/graphql", js, `{"query": "query A { plans { id } } mutation B { resumeSubscription { userErrors { code } } }", "operationName": "A", "operationName": "B"}`, 400, "BAD_REQUEST", `names "operationName" twice`, ""},
		{"query twice, once escaped", "POST", "/graphql", js, `{"query": "{ plans { id } }", "quer\u0079": "{ organization { id } }"}`, 400, "BAD_REQUEST", `names "query" twice`, ""},
		{"query twice, once in capitals", "POST", "/graphql", js, `{"query": "{ plans { id } }", "QUERY": "{ organization { id } }"}`, 400, "BAD_REQUEST", `names "QUERY" twice`, ""},
		{"an input field twice in the variables", "POST", "/graphql", js, `{"query": "{ plans { id } }", "variables": {"in": [{"meter": "api_calls", "meter": "llm_tokens"}]}}`, 400, "BAD_REQUEST", `names "meter" twice`, ""},
		{"a lone surrogate in a key", "POST", "/graphql", js, `{"query": "{ plans { id } }", "variables": {"k": "a\ud800"}}`, 400, "BAD_REQUEST", "not half of a pair", ""},
		{"a body that is not UTF-8", "POST", "/graphql", js, "{\"query\": \"{ plans { id } }\", \"operationName\": \"A\xff\"}", 400, "BAD_REQUEST", "not valid UTF-8", ""},
		{"a UTF-16 charset", "POST", "/graphql", js + "; charset=utf-16", `{"query":"{ plans { id } }"}`, 415, "UNSUPPORTED_MEDIA_TYPE", "UTF-8", ""},
		{"a Latin-1 charset", "POST", "/graphql", js + "; charset=ISO-8859-1", `{"query":"{ plans { id } }"}`, 415, "UNSUPPORTED_MEDIA_TYPE", "UTF-8", ""},
		{"GET naming query twice", "GET", "/graphql?query=%7Bplans%7Bid%7D%7D&query=%7Borganization%7Bid%7D%7D", "", "", 400, "BAD_REQUEST", "query more than once", ""},
		{"GET variables naming a member twice", "GET", get(url.Values{"query": {`query($m: String!) { usageGate(meter: $m) { allowed } }`}, "variables": {`{"m": "api_calls", "m": "llm_tokens"}`}}), "", "", 400, "BAD_REQUEST", `names "m" twice`, ""},
		{"a GET query that is not UTF-8", "GET", "/graphql?query=%7Bplans%7Bid%7D%7D%FF", "", "", 400, "BAD_REQUEST", "not valid UTF-8", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := sendRaw(t, h, tc.method, tc.target, tc.contentType, "", strings.NewReader(tc.body))
			if a.status != tc.status {
				t.Errorf("status = %d, want %d (%.300s)", a.status, tc.status, a.body)
			}
			if ct := a.header.Get("Content-Type"); ct != js {
				t.Errorf("Content-Type = %q, want %s", ct, js)
			}
			if len(a.errors) != 1 {
				t.Fatalf("errors = %+v, want one (%.300s)", a.errors, a.body)
			}
			e := a.errors[0]
			if code, _ := e.Extensions["code"].(string); code != tc.code {
				t.Errorf("code = %q, want %s (%s)", code, tc.code, e.Message)
			}
			if !strings.Contains(e.Message, tc.says) {
				t.Errorf("message %q does not say %q", e.Message, tc.says)
			}
			for _, leak := range goText {
				if strings.Contains(e.Message, leak) {
					t.Errorf("message %q carries Go text %q", e.Message, leak)
				}
			}
			if len(a.body) > 1024 {
				t.Errorf("answer is %d bytes: the body was echoed back", len(a.body))
			}
			if tc.status != 200 && a.data {
				t.Errorf("a refused request answers a data entry: %s", a.body)
			}
			if got := a.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
		})
	}

	t.Run("a HEAD answers 405 and names the methods", func(t *testing.T) {
		a := sendRaw(t, h, http.MethodHead, "/graphql", "", "", nil)
		if a.status != 405 || a.header.Get("Allow") != "GET, POST" {
			t.Fatalf("HEAD answered %d, Allow %q", a.status, a.header.Get("Allow"))
		}
	})
	t.Run("a refusal under graphql-response+json is in that type", func(t *testing.T) {
		a := sendRaw(t, h, http.MethodPost, "/graphql", js, "application/graphql-response+json", strings.NewReader(`[{"query":"{ plans { id } }"}]`))
		if a.status != 400 || a.header.Get("Content-Type") != "application/graphql-response+json" || len(a.errors) != 1 || a.errors[0].Extensions["code"] != "BAD_REQUEST" {
			t.Fatalf("answered %d %s: %s", a.status, a.header.Get("Content-Type"), a.body)
		}
	})
	t.Run("a chunked body over the limit is 413 with a code", func(t *testing.T) {
		// No Content-Length: the limit is found while reading.
		body := io.MultiReader(strings.NewReader(`{"query":"{ plans { id } }","variables":{"x":"`), bytes.NewReader(bytes.Repeat([]byte("x"), 3<<20)), strings.NewReader(`"}}`))
		a := sendRaw(t, h, http.MethodPost, "/graphql", js, "", body)
		if a.status != http.StatusRequestEntityTooLarge || len(a.errors) != 1 || a.errors[0].Extensions["code"] != "REQUEST_TOO_LARGE" {
			t.Fatalf("answered %d: %.300s", a.status, a.body)
		}
	})
	t.Run("a compressed body is 415, not read as JSON", func(t *testing.T) {
		for _, enc := range []string{"gzip", "br", "deflate"} {
			req, _ := http.NewRequest(http.MethodPost, h.Server.URL+"/graphql", strings.NewReader(`{"query":"{ plans { id } }"}`))
			req.Header.Set("Content-Type", js)
			req.Header.Set("Content-Encoding", enc)
			req.Header.Set("Authorization", "Bearer "+h.Token("acme"))
			resp, err := h.Server.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(string(body), `"UNSUPPORTED_MEDIA_TYPE"`) {
				t.Errorf("Content-Encoding %s answered %d: %s", enc, resp.StatusCode, body)
			}
		}
	})
	t.Run("charset=UTF-8 still runs", func(t *testing.T) {
		a := sendRaw(t, h, http.MethodPost, "/graphql", "application/json; charset=UTF-8", "", strings.NewReader(`{"query":"{ plans { id } }"}`))
		if a.status != 200 || len(a.errors) != 0 || !a.data {
			t.Fatalf("answered %d: %s", a.status, a.body)
		}
	})
	t.Run("application/json with a malformed parameter still runs", func(t *testing.T) {
		a := sendRaw(t, h, http.MethodPost, "/graphql", "application/json; charset", "", strings.NewReader(`{"query":"{ plans { id } }"}`))
		if a.status != 200 || len(a.errors) != 0 || !a.data {
			t.Fatalf("answered %d: %s", a.status, a.body)
		}
	})
	t.Run("variables differing only in case are two variables", func(t *testing.T) {
		body := `{"query": "query($m: String!, $M: String!) { a: usageGate(meter: $m) { allowed } b: usageGate(meter: $M) { allowed } }", "variables": {"m": "api_calls", "M": "llm_tokens"}}`
		a := sendRaw(t, h, http.MethodPost, "/graphql", js, "", strings.NewReader(body))
		if a.status != 200 || len(a.errors) != 0 || !a.data {
			t.Fatalf("answered %d: %s", a.status, a.body)
		}
		q := url.Values{"query": {`query($m: String!, $M: String!) { a: usageGate(meter: $m) { allowed } b: usageGate(meter: $M) { allowed } }`}, "variables": {`{"m": "api_calls", "M": "llm_tokens"}`}}
		if a := sendRaw(t, h, http.MethodGet, get(q), "", "", nil); a.status != 200 || len(a.errors) != 0 {
			t.Fatalf("GET answered %d: %s", a.status, a.body)
		}
	})
	t.Run("a well-formed GET query still runs", func(t *testing.T) {
		a := sendRaw(t, h, http.MethodGet, get(url.Values{"query": {`query($m: String!) { usageGate(meter: $m) { allowed } }`}, "variables": {`{"m": "api_calls"}`}}), "", "", nil)
		if a.status != 200 || len(a.errors) != 0 || !a.data {
			t.Fatalf("answered %d: %s", a.status, a.body)
		}
	})
}
