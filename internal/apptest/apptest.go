// Package apptest starts a whole Tollgate in-process for tests: real
// database (Postgres when reachable, else SQLite), real Redis (or
// miniredis), the real HTTP handler behind an httptest server, and helpers
// to send GraphQL with a token or API key.
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/app"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/config"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// Secret is the HS256 secret test apps accept.
const Secret = "apptest-secret-0123456789abcdef0123456789"

// Harness is a running Tollgate.
type Harness struct {
	T      testing.TB
	App    *app.App
	Server *httptest.Server
	Clock  *clock.Fake
}

// Options tune the harness.
type Options struct {
	DB    *store.DB // default testenv.DB(t)
	Env   map[string]string
	Clock *clock.Fake
	Redis bool // true: private miniredis instead of the shared server
	// RedisClient is the Redis to use, for replicas that share one
	// (default testenv.Redis(t), with keys of this harness's own).
	RedisClient *redisconn.Client
	Config      func(*config.Config)
	// PlanRateLimits keeps the plans' real rate limits (free: 10 req/s).
	// Otherwise every plan allows 100,000 req/s, so tests that send many
	// requests as one organisation are not throttled.
	PlanRateLimits bool
}

// New starts Tollgate for t.
func New(t testing.TB, o Options) *Harness {
	t.Helper()
	dir := t.TempDir()
	env := map[string]string{"JWT_SECRET": Secret, "TOLLGATE_DATA_DIR": dir,
		// Tests share one client address and hammer one credential; a test
		// of the API's own limits sets these in Env.
		"API_RATE_LIMIT_PER_CREDENTIAL": "1000000", "API_RATE_LIMIT_PER_ORGANIZATION": "1000000", "API_RATE_LIMIT_PER_ADDRESS": "1000000",
		// Likewise the organisation's Stripe budget.
		"STRIPE_CALLS_PER_ORGANIZATION": "1000000"}
	if !o.PlanRateLimits {
		relaxed := regexp.MustCompile(`rate_limit_per_second: \d+`).ReplaceAll(plans.DefaultsYAML(), []byte("rate_limit_per_second: 100000"))
		env["PLANS_FILE"] = filepath.Join(dir, "plans.yaml")
		if err := os.WriteFile(env["PLANS_FILE"], relaxed, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range o.Env {
		env[k] = v
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if o.Config != nil {
		o.Config(&cfg)
	}
	db := o.DB
	if db == nil {
		db = testenv.DB(t)
	}
	rdb := o.RedisClient
	switch {
	case o.Redis:
		rdb = testenv.MiniRedis(t)
	case rdb == nil:
		rdb = testenv.Redis(t)
	}
	fc := o.Clock
	if fc == nil {
		fc = clock.NewFake(time.Now())
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// A fuzz target may not log through its F, and the server logs while
	// the target runs.
	if _, fuzzing := t.(*testing.F); testing.Verbose() && !fuzzing {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a, err := app.New(context.Background(), cfg, log, app.WithDB(db), app.WithRedis(rdb), app.WithClock(fc))
	if err != nil {
		t.Fatalf("app: %v", err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		a.Close()
	})
	if err := a.StartJobs(context.Background()); err != nil {
		t.Fatalf("start jobs: %v", err)
	}
	return &Harness{T: t, App: a, Server: srv, Clock: fc}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Token mints a token for org with the given scopes (all when none given).
func (h *Harness) Token(org string, scopes ...auth.Scope) string {
	h.T.Helper()
	if len(scopes) == 0 {
		scopes = auth.AllScopes
	}
	tok, err := h.App.Token(org, scopes, time.Hour)
	if err != nil {
		h.T.Fatalf("token: %v", err)
	}
	return tok
}

// Response is a decoded GraphQL response.
type Response struct {
	Status int
	Header http.Header
	Data   json.RawMessage
	Errors []GQLError
	// Body is the answer as it came, for tests that compare answers byte
	// for byte.
	Body []byte
}

// GQLError is one GraphQL error.
type GQLError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// Code is the first error's extensions.code, or "".
func (r Response) Code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// Decode unmarshals data into v.
func (r Response) Decode(t testing.TB, v any) {
	t.Helper()
	if len(r.Errors) > 0 {
		t.Fatalf("unexpected GraphQL errors: %+v", r.Errors)
	}
	if err := json.Unmarshal(r.Data, v); err != nil {
		t.Fatalf("decode data %s: %v", r.Data, err)
	}
}

// Do sends a GraphQL request with the given headers, failing the test if
// no JSON answer comes back. Call it on the test's goroutine only; other
// goroutines use Send.
func (h *Harness) Do(headers map[string]string, query string, vars map[string]any) Response {
	h.T.Helper()
	r, err := h.Send(headers, query, vars)
	if err != nil {
		h.T.Fatal(err)
	}
	return r
}

// Send is Do returning what went wrong instead of failing the test, for
// goroutines other than the test's (which may not call t.Fatal).
func (h *Harness) Send(headers map[string]string, query string, vars map[string]any) (Response, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, h.Server.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := h.Server.Client().Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("POST /graphql: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		Data   json.RawMessage `json:"data"`
		Errors []GQLError      `json:"errors"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return Response{}, fmt.Errorf("response is not JSON (%d): %s", resp.StatusCode, raw)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Data: out.Data, Errors: out.Errors, Body: raw}, nil
}

// Query sends a GraphQL request as org with all scopes.
func (h *Harness) Query(org, query string, vars map[string]any) Response {
	h.T.Helper()
	return h.Do(map[string]string{"Authorization": "Bearer " + h.Token(org)}, query, vars)
}

// Used is what org has used of each meter this month, read through the
// API as org's dashboard reads it.
func (h *Harness) Used(org string) map[string]int64 {
	h.T.Helper()
	var out struct {
		Usage struct {
			Meters []struct {
				Meter string
				Used  int64
			}
		}
	}
	h.Query(org, `{ usage { meters { meter used } } }`, nil).Decode(h.T, &out)
	used := make(map[string]int64, len(out.Usage.Meters))
	for _, m := range out.Usage.Meters {
		used[m.Meter] = m.Used
	}
	return used
}

// EachDialect runs fn as a subtest against a Tollgate on each database,
// Postgres and SQLite, with options o otherwise. End-to-end tests default to
// Postgres when it is reachable, while SQLite is what a newcomer runs: the
// smoke tests that go through here keep both paths honest.
func EachDialect(t *testing.T, o Options, fn func(t *testing.T, h *Harness)) {
	t.Helper()
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		o := o
		o.DB = db
		fn(t, New(t, o))
	})
}
