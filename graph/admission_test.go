package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/graph"
	"github.com/tollgate-billing/tollgate/internal/apptest"
)

// timed sends one request and returns its error code and how long the
// answer took. The client gives up after 10 s so that a server that walks
// the bomb fails the test instead of hanging it.
func timed(t *testing.T, h *apptest.Harness, headers map[string]string, query string) (string, time.Duration) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.Server.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := h.Server.Client().Do(req)
	if err != nil {
		t.Fatalf("no answer within 10 s: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	took := time.Since(start)
	var out apptest.Response
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("answer is not JSON: %s", raw)
	}
	return out.Code(), took
}

// TestFragmentBombIsRefusedInLinearTime: a 1.5 KB document whose fragments
// expand to 2^30 fields is refused about as fast as any small request,
// with or without credentials. The bound is a limit, not a speed target:
// walking the expansion takes minutes. The best of three attempts is kept
// so a busy machine does not fail the test.
func TestFragmentBombIsRefusedInLinearTime(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	token := map[string]string{"Authorization": "Bearer " + h.Token("bomb")}
	h.Do(token, `{ organization { id } }`, nil) // the organisation exists before timing
	cases := []struct {
		name    string
		headers map[string]string
		code    string
	}{
		{"anonymous", nil, "UNAUTHENTICATED"},
		{"with a token", token, "COMPLEXITY_LIMIT_EXCEEDED"},
	}
	const bound = 50 * time.Millisecond
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			best := time.Hour
			for range 3 {
				code, took := timed(t, h, tc.headers, graph.FragmentBomb(30))
				if code != tc.code {
					t.Fatalf("code = %q, want %s", code, tc.code)
				}
				best = min(best, took)
			}
			if best > bound {
				t.Fatalf("answered in %s at best, want under %s", best, bound)
			}
		})
	}
}

// TestAnonymousRequestsAreRefusedBeforeValidation: without credentials the
// document is not validated, so even an invalid one is answered only with
// UNAUTHENTICATED. In development the schema may still be read without
// credentials (GraphiQL loads it before a token is pasted); in production
// it may not.
func TestAnonymousRequestsAreRefusedBeforeValidation(t *testing.T) {
	dev := apptest.New(t, apptest.Options{})
	if r := dev.Do(nil, `{ nosuchfield }`, nil); r.Code() != "UNAUTHENTICATED" || len(r.Errors) != 1 {
		t.Fatalf("invalid anonymous document: %+v", r.Errors)
	}
	if r := dev.Do(nil, `{ organization { id } __schema { queryType { name } } }`, nil); r.Code() != "UNAUTHENTICATED" {
		t.Fatalf("anonymous data query beside introspection: %+v", r.Errors)
	}
	if r := dev.Do(nil, `{ __schema { queryType { name } } }`, nil); len(r.Errors) > 0 || !strings.Contains(string(r.Data), `"Query"`) {
		t.Fatalf("anonymous introspection in development: %s %+v", r.Data, r.Errors)
	}
	prod := apptest.New(t, apptest.Options{Env: map[string]string{
		"TOLLGATE_ENV": "production", "DATABASE_URL": "postgres://unused/x", "REDIS_URL": "redis://unused:6379",
	}})
	if r := prod.Do(nil, `{ __schema { queryType { name } } }`, nil); r.Code() != "UNAUTHENTICATED" {
		t.Fatalf("anonymous introspection in production: %+v", r.Errors)
	}
}
