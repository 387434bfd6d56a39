package middleware_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/client"
	"github.com/tollgate-billing/tollgate/client/middleware"
	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/clock"
)

// tinyPlans: the free plan allows 3 API calls; "slow" allows 2 calls a
// second; "soft" bills llm_tokens past 100 instead of refusing them.
const tinyPlans = `
meters:
  - {name: api_calls, reset: monthly}
  - {name: llm_tokens, reset: monthly}
  - {name: storage_bytes, reset: never}
plans:
  - id: free
    name: Free
    rate_limit_per_second: 1000
    limits:
      api_calls: {limit: 3, hard: true}
      llm_tokens: {limit: 100, hard: true}
      storage_bytes: {limit: 1000, hard: true}
  - id: slow
    name: Slow
    rate_limit_per_second: 2
    limits:
      api_calls: {limit: 100000, hard: true}
      llm_tokens: {limit: 100, hard: true}
      storage_bytes: {limit: 1000, hard: true}
  - id: soft
    name: Soft
    rate_limit_per_second: 1000
    limits:
      api_calls: {limit: 3, hard: true}
      llm_tokens: {limit: 100, hard: false}
      storage_bytes: {limit: 1000, hard: true}
`

func tollgate(t *testing.T) *apptest.Harness {
	path := filepath.Join(t.TempDir(), "plans.yaml")
	if err := os.WriteFile(path, []byte(tinyPlans), 0o644); err != nil {
		t.Fatal(err)
	}
	return apptest.New(t, apptest.Options{Env: map[string]string{"PLANS_FILE": path}})
}

// apiKey creates a key for org with scopes and returns its secret.
func apiKey(t *testing.T, h *apptest.Harness, org string, scopes ...string) string {
	t.Helper()
	var out struct {
		CreateApiKey struct{ Secret string }
	}
	h.Query(org, `mutation($s: [Scope!]!) { createApiKey(input: {name: "customer", scopes: $s}) { secret } }`,
		map[string]any{"s": scopes}).Decode(t, &out)
	return out.CreateApiKey.Secret
}

// onPlan moves org to a plan, as a paid subscription would.
func onPlan(t *testing.T, h *apptest.Harness, org, plan string) {
	t.Helper()
	var o struct{ Organization struct{ ID string } }
	h.Query(org, `{ organization { id } }`, nil).Decode(t, &o)
	if err := h.App.DB.Exec("UPDATE organizations SET plan_id = ? WHERE id = ?", plan, o.Organization.ID).Error; err != nil {
		t.Fatal(err)
	}
	h.App.Usage.InvalidatePlan(o.Organization.ID)
}

func usedCalls(t *testing.T, h *apptest.Harness, org string) int64 {
	t.Helper()
	var out struct {
		UsageGate struct{ Used int64 }
	}
	h.Query(org, `{ usageGate(meter: "api_calls") { used } }`, nil).Decode(t, &out)
	return out.UsageGate.Used
}

var hello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") })

func get(h http.Handler, key string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/v1/hello", nil)
	if key != "" {
		r.Header.Set("X-API-Key", key)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// want402 is the body past the 3-call limit of h's plans, the period
// ending at the end of h's month.
func want402(h *apptest.Harness) string {
	return `{"error":"Usage limit exceeded","message":"API call would exceed the limit: 3 used + 1 requested > 3",` +
		`"usage":{"used":3,"requested":1,"limit":3,"remaining":0,"resetAt":"` + clock.MonthEnd(h.Clock.Now()).Format(time.RFC3339) + `"}}`
}

func TestBothModesServeTheLimitThenAnswer402(t *testing.T) {
	for _, mode := range []struct {
		name string
		mode middleware.Mode
	}{{"strict", middleware.Strict}, {"fast", middleware.Fast}} {
		t.Run(mode.name, func(t *testing.T) {
			h := tollgate(t)
			key := apiKey(t, h, "acme", "USAGE_WRITE")
			tg := client.New(h.Server.URL, nil)
			rec := client.NewRecorder(func(k string) *client.Client { return tg.For(client.APIKey(k)) }, client.RecorderOptions{})
			defer rec.Close(context.Background())
			m := middleware.New(middleware.Config{
				Tollgate: tg, Customer: middleware.APIKeyHeader("X-API-Key"), Mode: mode.mode, Recorder: rec,
			})
			srv := m.Wrap(hello)
			for i := range 3 {
				if w := get(srv, key); w.Code != http.StatusOK || w.Body.String() != "hello" {
					t.Fatalf("request %d: %d %s", i+1, w.Code, w.Body)
				}
				// Fast mode's gate sees what the Recorder has sent.
				if err := rec.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			w := get(srv, key)
			if w.Code != http.StatusPaymentRequired || w.Body.String() != want402(h) {
				t.Fatalf("4th request: %d %s\nwant 402 %s", w.Code, w.Body, want402(h))
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if got := usedCalls(t, h, "acme"); got != 3 {
				t.Errorf("used %d, want the 3 served", got)
			}
		})
	}
}

func TestOverThePlansRateAnswers429WithRetryAfter(t *testing.T) {
	h := tollgate(t)
	key := apiKey(t, h, "busy", "USAGE_WRITE")
	onPlan(t, h, "busy", "slow")
	srv := middleware.New(middleware.Config{Tollgate: client.New(h.Server.URL, nil), Customer: middleware.APIKeyHeader("X-API-Key")}).Wrap(hello)
	var wg sync.WaitGroup
	var served, limited atomic.Int64
	var sample atomic.Pointer[httptest.ResponseRecorder]
	for range 10 {
		wg.Go(func() {
			w := get(srv, key)
			switch w.Code {
			case http.StatusOK:
				served.Add(1)
			case http.StatusTooManyRequests:
				limited.Add(1)
				sample.Store(w)
			}
		})
	}
	wg.Wait()
	if served.Load() < 2 || limited.Load() < 5 || served.Load()+limited.Load() != 10 {
		t.Fatalf("%d served, %d limited of a burst of 10 at 2 a second", served.Load(), limited.Load())
	}
	w := sample.Load()
	if w.Header().Get("Retry-After") != "1" || w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("429 headers %v", w.Header())
	}
	if want := `{"error":"Rate limit exceeded","message":"too many requests for your plan; retry after 1 s","retryAfterSeconds":1}`; w.Body.String() != want {
		t.Errorf("429 body %s\nwant %s", w.Body, want)
	}
	if got := usedCalls(t, h, "busy"); got != served.Load() {
		t.Errorf("used %d, want the %d served", got, served.Load())
	}
}

func TestCustomerCredentialsThatCannotBeUsedAnswer401(t *testing.T) {
	h := tollgate(t)
	revoked := apiKey(t, h, "acme", "USAGE_WRITE")
	var keys struct{ ApiKeys []struct{ ID string } }
	h.Query("acme", `{ apiKeys { id } }`, nil).Decode(t, &keys)
	h.Query("acme", `mutation($id: ID!) { revokeApiKey(id: $id) { apiKey { id } } }`, map[string]any{"id": keys.ApiKeys[0].ID})
	underScoped := apiKey(t, h, "acme", "BILLING_WRITE")
	srv := middleware.New(middleware.Config{Tollgate: client.New(h.Server.URL, nil), Customer: middleware.APIKeyHeader("X-API-Key")}).Wrap(hello)
	for name, tc := range map[string]struct{ key, reason string }{
		"no key":         {"", "missing"},
		"unknown key":    {"tg_test_0000000000000000000000000000000000000000", "unknown"},
		"revoked key":    {revoked, "revoked"},
		"under-scoped":   {underScoped, "under_scoped"},
		"not even a key": {"hello", "unknown"},
	} {
		t.Run(name, func(t *testing.T) {
			w := get(srv, tc.key)
			if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), `"reason":"`+tc.reason+`"`) || w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("%d %s, want 401 with reason %s", w.Code, w.Body, tc.reason)
			}
			// A customer told only "send your API key" could not tell where.
			if tc.reason == "missing" && !strings.Contains(w.Body.String(), `"message":"send your API key in the X-API-Key header"`) {
				t.Errorf("401 %s does not name the header the key goes in", w.Body)
			}
		})
	}
}

// countWarnings counts log records at WARN and above.
type countWarnings struct {
	slog.Handler
	n *atomic.Int64
}

func (c countWarnings) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		c.n.Add(1)
	}
	return nil
}

func TestAnUnreachableTollgateFailsOpenOrClosedAndIsLoggedOnce(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // nothing listens there now
	tg := client.New(dead.URL, nil, client.WithRetry(client.Retry{Attempts: 2, Base: time.Millisecond, Max: time.Millisecond}))
	for _, open := range []bool{true, false} {
		var warnings atomic.Int64
		log := slog.New(countWarnings{slog.NewTextHandler(io.Discard, nil), &warnings})
		m := middleware.New(middleware.Config{Tollgate: tg, Customer: middleware.APIKeyHeader("X-API-Key"), FailOpen: open, Log: log})
		srv := m.Wrap(hello)
		for range 5 {
			w := get(srv, "tg_test_whatever")
			switch {
			case open && w.Code != http.StatusOK:
				t.Fatalf("fail-open answered %d", w.Code)
			case !open && (w.Code != http.StatusServiceUnavailable || w.Header().Get("Content-Type") != "application/json"):
				t.Fatalf("fail-closed answered %d %s", w.Code, w.Body)
			}
		}
		s := m.Stats()
		if s.Outages != 1 || warnings.Load() != 1 {
			t.Errorf("open=%v: %d outages, %d warnings logged; want one of each for one outage", open, s.Outages, warnings.Load())
		}
		if open && s.FailedOpen != 5 || !open && s.FailedClosed != 5 {
			t.Errorf("open=%v: stats %+v, want 5 counted", open, s)
		}
	}
}

func TestTokenAndStorageHelpersRecordAfterServing(t *testing.T) {
	h := tollgate(t)
	key := apiKey(t, h, "acme", "USAGE_WRITE")
	m := middleware.New(middleware.Config{
		Tollgate: client.New(h.Server.URL, nil), Customer: middleware.APIKeyHeader("X-API-Key"),
		Usage: func(*http.Request) (string, int64) { return "api_calls", 1 },
	})
	var errs []error
	srv := m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "done")
		errs = append(errs, m.RecordTokens(r, 42, "cmpl-1"), m.RecordTokens(r, 42, "cmpl-1"), // a retry counts once
			m.RecordStorage(r, 500, "put:file-1"), m.RecordStorage(r, -200, "delete:file-1"))
	}))
	if w := get(srv, key); w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := h.Used("acme")
	if got["llm_tokens"] != 42 || got["storage_bytes"] != 300 || got["api_calls"] != 1 {
		t.Errorf("usage %v, want 42 tokens, 300 bytes, 1 call", got)
	}
}

// TestRecordedTokensAreNotChargedToThePlansRate: a handler that records
// its completions' tokens after answering counts all of them, however fast.
// Record went through consumeUsage, which the plan's rate limits: on a plan
// of 2 a second the request took one, the first completion the other, and
// the rest were refused RATE_LIMITED, never counted, with a nil error.
func TestRecordedTokensAreNotChargedToThePlansRate(t *testing.T) {
	h := tollgate(t)
	key := apiKey(t, h, "busy", "USAGE_WRITE")
	onPlan(t, h, "busy", "slow") // 2 a second, 100 llm_tokens
	m := middleware.New(middleware.Config{Tollgate: client.New(h.Server.URL, nil), Customer: middleware.APIKeyHeader("X-API-Key")})
	const completions, tokens = 5, 10
	var errs []error
	srv := m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range completions {
			errs = append(errs, m.RecordTokens(r, tokens, fmt.Sprintf("cmpl-%d", i)))
		}
	}))
	if w := get(srv, key); w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("completion %d: %v", i, err)
		}
	}
	if got := h.Used("busy")["llm_tokens"]; got != completions*tokens {
		t.Errorf("llm_tokens used %d, want the %d recorded", got, completions*tokens)
	}
}

// TestRecordPastAHardLimitSaysSo: tokens that would pass a hard limit are
// not counted, and the handler is told so (it was told nil, as if they had
// been counted).
func TestRecordPastAHardLimitSaysSo(t *testing.T) {
	h := tollgate(t) // free: 100 llm_tokens, hard
	key := apiKey(t, h, "acme", "USAGE_WRITE")
	m := middleware.New(middleware.Config{Tollgate: client.New(h.Server.URL, nil), Customer: middleware.APIKeyHeader("X-API-Key")})
	var err error
	srv := m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err = m.RecordTokens(r, 101, "cmpl-big")
	}))
	if w := get(srv, key); w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if !client.IsCode(err, "USAGE_LIMIT_EXCEEDED") {
		t.Errorf("RecordTokens past the limit: %v, want USAGE_LIMIT_EXCEEDED", err)
	}
	if got := h.Used("acme")["llm_tokens"]; got != 0 {
		t.Errorf("llm_tokens used %d, want none counted", got)
	}
}

// A host that is its own identity provider names the organisation; the
// middleware acts for it with tokens minted from the shared secret.
func TestMintedOrganisationsAreMetered(t *testing.T) {
	h := tollgate(t)
	m := middleware.New(middleware.Config{
		Tollgate: client.New(h.Server.URL, nil),
		Customer: middleware.MintedOrg(client.HS256Minter([]byte(apptest.Secret)), func(r *http.Request) string { return r.Header.Get("X-Tenant") }),
	})
	srv := m.Wrap(hello)
	call := func(tenant string) int {
		r := httptest.NewRequest(http.MethodGet, "/v1/hello", nil)
		r.Header.Set("X-Tenant", tenant)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		return w.Code
	}
	for range 3 {
		if code := call("initech"); code != http.StatusOK {
			t.Fatalf("answered %d", code)
		}
	}
	if code := call("initech"); code != http.StatusPaymentRequired {
		t.Errorf("4th call of a 3-call plan answered %d", code)
	}
	if code := call(""); code != http.StatusUnauthorized {
		t.Errorf("no tenant answered %d", code)
	}
	if got := usedCalls(t, h, "initech"); got != 3 {
		t.Errorf("used %d, want 3", got)
	}
}

// Credentials Tollgate could not check (its database out of reach) are an
// outage, not a bad key: the customer is not told their key is invalid.
func TestCredentialsThatCouldNotBeCheckedAreAnOutage(t *testing.T) {
	var calls atomic.Int64
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"errors":[{"message":"could not resolve the organisation; try again","extensions":{"code":"UNAUTHENTICATED","reason":"AUTH_UNAVAILABLE"}}],"data":null}`)
	}))
	defer stub.Close()
	tg := client.New(stub.URL, nil, client.WithRetry(client.Retry{Attempts: 3, Base: time.Millisecond, Max: time.Millisecond}))
	m := middleware.New(middleware.Config{Tollgate: tg, Customer: middleware.APIKeyHeader("X-API-Key"), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if w := get(m.Wrap(hello), "tg_test_k"); w.Code != http.StatusServiceUnavailable {
		t.Errorf("answered %d %s, want 503 (fail closed)", w.Code, w.Body)
	}
	if calls.Load() != 3 || m.Stats().FailedClosed != 1 {
		t.Errorf("%d attempts, stats %+v; want 3 attempts and one request refused for the outage", calls.Load(), m.Stats())
	}
}

// A customer who repeats one Idempotency-Key header is not served past the
// hard limit: by default the middleware counts each request under a key of
// its own, whatever the customer sends.
func TestARepeatedCustomerKeyAtTheLimitIsRefused(t *testing.T) {
	h := tollgate(t)
	key := apiKey(t, h, "acme", "USAGE_WRITE")
	m := middleware.New(middleware.Config{Tollgate: client.New(h.Server.URL, nil), Customer: middleware.APIKeyHeader("X-API-Key")})
	srv := m.Wrap(hello)
	send := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/v1/hello", nil)
		r.Header.Set("X-API-Key", key)
		r.Header.Set("Idempotency-Key", "abc")
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		return w
	}
	for i := range 3 {
		if w := send(); w.Code != http.StatusOK {
			t.Fatalf("request %d: %d %s", i+1, w.Code, w.Body)
		}
	}
	for i := range 3 {
		if w := send(); w.Code != http.StatusPaymentRequired || w.Body.String() != want402(h) {
			t.Fatalf("request %d past the limit with the same header: %d %s, want 402", i+4, w.Code, w.Body)
		}
	}
	if got := usedCalls(t, h, "acme"); got != 3 {
		t.Errorf("used %d, want the 3 served", got)
	}
}

// A host that opts in to its customers' Idempotency-Key header gets the key
// scoped to the customer and route: the same key on another route or from
// another customer is a new request, and sent with other usage it is
// answered 422, never served free.
func TestAnOptedInCustomerKeyIsScopedAndRefusedWithOtherUsage(t *testing.T) {
	h := tollgate(t)
	acme, other := apiKey(t, h, "acme", "USAGE_WRITE"), apiKey(t, h, "other", "USAGE_WRITE")
	m := middleware.New(middleware.Config{
		Tollgate:       client.New(h.Server.URL, nil),
		Customer:       middleware.APIKeyHeader("X-API-Key"),
		IdempotencyKey: middleware.IdempotencyKeyHeader("Idempotency-Key"),
		Usage: func(r *http.Request) (string, int64) {
			if r.URL.Query().Get("big") != "" {
				return "api_calls", 2
			}
			return "api_calls", 1
		},
	})
	srv := m.Wrap(hello)
	send := func(customer, target, idem string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		r.Header.Set("X-API-Key", customer)
		r.Header.Set("Idempotency-Key", idem)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		return w
	}
	for _, s := range []struct {
		customer, target, idem string
		code                   int
		used                   int64
	}{
		{acme, "/v1/hello", "abc", http.StatusOK, 1},
		{acme, "/v1/hello", "abc", http.StatusOK, 1},                        // a retry: served, not counted again
		{acme, "/v1/hello?big=1", "abc", http.StatusUnprocessableEntity, 1}, // other usage under the key
		{other, "/v1/hello", "abc", http.StatusOK, 1},                       // another customer's own key
		{acme, "/v1/other", "abc", http.StatusOK, 2},                        // another route: a new request
		{acme, "/v1/third", "abc", http.StatusOK, 3},                        // the limit reached
		{acme, "/v1/fourth", "abc", http.StatusPaymentRequired, 3},
		{acme, "/v1/hello", strings.Repeat("€", 300), http.StatusPaymentRequired, 3}, // any key fits
	} {
		if w := send(s.customer, s.target, s.idem); w.Code != s.code {
			t.Fatalf("%s with key %.10q: %d %s, want %d", s.target, s.idem, w.Code, w.Body, s.code)
		}
		if got := usedCalls(t, h, "acme"); got != s.used {
			t.Fatalf("after %s with key %.10q: used %d, want %d", s.target, s.idem, got, s.used)
		}
	}
}

// TestAnEndCustomersPathNeverBreaksMetering: without a mux pattern the
// request is counted under its method and path; a path holding a line
// break, a zero-width space or 300 characters (which Tollgate refuses in a
// label) is served and counted, not answered 500.
func TestAnEndCustomersPathNeverBreaksMetering(t *testing.T) {
	h := tollgate(t) // free: 3 calls
	key := apiKey(t, h, "acme", "USAGE_WRITE")
	m := middleware.New(middleware.Config{Tollgate: client.New(h.Server.URL, nil), Customer: middleware.APIKeyHeader("X-API-Key")})
	// The handler records tokens too: Record labels them as Wrap does (it
	// used the decoded path, and Tollgate refused the line break, the
	// zero-width space and the 300 characters as INVALID_ENDPOINT).
	var errs []error
	srv := m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		errs = append(errs, m.RecordTokens(r, 1, ""))
		hello(w, r)
	}))
	paths := []string{"/v1/hello%0A", "/v1/a%E2%80%8Bb", "/v1/" + strings.Repeat("x", 300)}
	for _, p := range paths {
		r := httptest.NewRequest(http.MethodGet, p, nil)
		r.Header.Set("X-API-Key", key)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code != http.StatusOK || w.Body.String() != "hello" {
			t.Fatalf("GET %.40s: %d %s, want 200 hello", p, w.Code, w.Body)
		}
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("RecordTokens on GET %.40s: %v", paths[i], err)
		}
	}
	used := h.Used("acme")
	if used["api_calls"] != int64(len(paths)) || used["llm_tokens"] != int64(len(paths)) {
		t.Fatalf("used %v, want %d calls and tokens, one each a request served", used, len(paths))
	}
}

// TestBothModesJudgeARequestsQuantityAlike: Fast asks usageGate about the
// request's whole quantity, so it serves and refuses what Strict's
// consumeUsage does: a hard limit refuses the request that would pass it, a
// soft limit serves it (the overage is billed). Fast used to refuse any
// quantity past what was left, soft limits too.
func TestBothModesJudgeARequestsQuantityAlike(t *testing.T) {
	for _, mode := range []middleware.Mode{middleware.Strict, middleware.Fast} {
		for plan, second := range map[string]int{"free": http.StatusPaymentRequired, "soft": http.StatusOK} {
			t.Run(fmt.Sprintf("mode %d plan %s", mode, plan), func(t *testing.T) {
				h := tollgate(t)
				key := apiKey(t, h, "acme", "USAGE_WRITE")
				onPlan(t, h, "acme", plan)
				tg := client.New(h.Server.URL, nil)
				rec := client.NewRecorder(func(k string) *client.Client { return tg.For(client.APIKey(k)) }, client.RecorderOptions{})
				defer rec.Close(context.Background())
				m := middleware.New(middleware.Config{
					Tollgate: tg, Customer: middleware.APIKeyHeader("X-API-Key"), Mode: mode, Recorder: rec,
					Usage: func(*http.Request) (string, int64) { return "llm_tokens", 60 }, // of a limit of 100
				})
				srv := m.Wrap(hello)
				if w := get(srv, key); w.Code != http.StatusOK {
					t.Fatalf("first request: %d %s", w.Code, w.Body)
				}
				if err := rec.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
				if w := get(srv, key); w.Code != second {
					t.Fatalf("second request, past the limit: %d %s, want %d", w.Code, w.Body, second)
				}
			})
		}
	}
}
