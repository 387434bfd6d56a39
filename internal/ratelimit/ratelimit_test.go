package ratelimit

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/observe"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// planOf puts every organisation on the plan named in the map.
type planOf map[string]string

func (p planOf) PlanOf(_ context.Context, orgID string) (plans.Plan, string, error) {
	plan, _ := plans.Default().ByID(p[orgID])
	return plan, "", nil
}

func handler(l *Limiter) http.Handler {
	return l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
}

func call(h http.Handler, orgID string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
	if orgID != "" {
		r = r.WithContext(auth.WithPrincipal(r.Context(), &auth.Principal{OrgID: orgID}))
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestAFreeOrgOverTenRequestsASecondIsRefused(t *testing.T) {
	free, other := store.NewID(), store.NewID() // fresh keys on the shared Redis
	h := handler(New(testenv.Redis(t), planOf{free: "free", other: "free"}, quiet()))

	start := time.Now()
	var passed int
	var refused *httptest.ResponseRecorder
	for range 15 {
		w := call(h, free)
		if w.Code == http.StatusOK {
			passed++
		} else if refused == nil {
			refused = w
		}
	}
	// The bucket refills one request per 100 ms; a slow machine may earn one
	// more while the loop runs.
	if grace := int(time.Since(start) / (100 * time.Millisecond)); passed < 10 || passed > 10+grace {
		t.Errorf("%d of 15 requests passed, want the 10-request burst", passed)
	}
	if refused == nil {
		t.Fatal("no request was refused")
	}
	if refused.Code != http.StatusTooManyRequests {
		t.Errorf("status %d, want 429", refused.Code)
	}
	if s, err := strconv.Atoi(refused.Header().Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q, want whole seconds ≥ 1", refused.Header().Get("Retry-After"))
	}
	var body struct {
		Errors []struct {
			Message    string
			Extensions struct {
				Code              string
				RetryAfterSeconds int
			}
		}
	}
	if err := json.Unmarshal(refused.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 {
		t.Fatalf("body %s is not one GraphQL error: %v", refused.Body, err)
	}
	if e := body.Errors[0]; e.Extensions.Code != "RATE_LIMITED" || e.Extensions.RetryAfterSeconds < 1 || e.Message == "" {
		t.Errorf("error %+v, want RATE_LIMITED with retryAfterSeconds", e)
	}

	if w := call(h, other); w.Code != http.StatusOK {
		t.Errorf("another org got %d: one org's burst must not limit another", w.Code)
	}
	for range 20 {
		if w := call(h, ""); w.Code != http.StatusOK {
			t.Fatalf("unauthenticated request got %d; authentication answers those", w.Code)
		}
	}
}

func TestAHigherPlanGetsAHigherLimit(t *testing.T) {
	org := store.NewID()
	h := handler(New(testenv.Redis(t), planOf{org: "starter"}, quiet()))
	for i := range 50 {
		if w := call(h, org); w.Code != http.StatusOK {
			t.Fatalf("request %d of a starter org (100 req/s) refused", i+1)
		}
	}
}

func TestRequestsPassWhileRedisIsDown(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redisconn.New(redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1}), testenv.RedisPrefix())
	t.Cleanup(func() { rdb.Close() })
	org := store.NewID()
	l := New(rdb, planOf{org: "free"}, quiet())
	h := handler(l)
	m.Close()
	fallbacks := testutil.ToFloat64(observe.RedisFallbacks.WithLabelValues("ratelimit"))
	for i := range 30 {
		if w := call(h, org); w.Code != http.StatusOK {
			t.Fatalf("request %d got %d while Redis was down; the limiter must fail open", i+1, w.Code)
		}
	}
	if l.Unchecked() != 30 {
		t.Errorf("%d requests counted as unchecked, want 30", l.Unchecked())
	}
	if got := testutil.ToFloat64(observe.RedisFallbacks.WithLabelValues("ratelimit")) - fallbacks; got != 30 {
		t.Errorf("redis_fallbacks{operation=\"ratelimit\"} moved by %v, want 30", got)
	}
}

// countScripts counts the rate-limit scripts a client sends to Redis.
type countScripts struct{ n atomic.Int64 }

func (c *countScripts) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *countScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (c *countScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		// A Redis that has not run the script yet answers NOSCRIPT once,
		// and go-redis sends it in full: a one-off per Redis, not a cost
		// per request.
		if name := cmd.Name(); (name == "evalsha" || name == "eval") && (err == nil || !strings.HasPrefix(err.Error(), "NOSCRIPT")) {
			c.n.Add(1)
		}
		return err
	}
}

// A busy organisation on a high plan takes its requests from Redis several
// at a time, so most of them cost no round trip; a free organisation's are
// each counted in Redis.
func TestABusyOrganisationCostsFewRedisRoundTrips(t *testing.T) {
	rdb := testenv.Redis(t)
	var scripts countScripts
	rdb.AddHook(&scripts)
	busy, free := store.NewID(), store.NewID()
	h := handler(New(rdb, planOf{busy: "enterprise", free: "free"}, quiet()))

	for i := range 1000 {
		if w := call(h, busy); w.Code != http.StatusOK {
			t.Fatalf("request %d of an enterprise org (2,000 req/s) got %d", i+1, w.Code)
		}
	}
	// Leases grow to 20 (1% of 2,000) within a few requests.
	if n := scripts.n.Load(); n > 100 {
		t.Errorf("1,000 requests cost %d Redis round trips; leases should make it about 60", n)
	}

	scripts.n.Store(0)
	for range 5 {
		call(h, free)
	}
	if n := scripts.n.Load(); n != 5 {
		t.Errorf("5 requests of a free org cost %d Redis round trips, want 5: a 10 req/s plan is counted exactly", n)
	}
}

// Leases never let through more than Redis granted, however many replicas
// take them: the plan's limit holds across replicas.
func TestLeasedLimitsHoldAcrossReplicas(t *testing.T) {
	rdb := testenv.Redis(t)
	org := store.NewID()
	replicas := []http.Handler{
		handler(New(rdb, planOf{org: "enterprise"}, quiet())),
		handler(New(rdb, planOf{org: "enterprise"}, quiet())),
	}
	const clients, each = 8, 1000
	var passed, refused atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				switch call(replicas[(c+i)%2], org).Code {
				case http.StatusOK:
					passed.Add(1)
				case http.StatusTooManyRequests:
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d passed, %d refused in %s", passed.Load(), refused.Load(), elapsed)
	// 2,000 req/s with a burst of 2,000: what Redis can have granted by now.
	most := 2000 + int64(2000*elapsed.Seconds()) + 1
	if p := passed.Load(); p > most {
		t.Errorf("%d requests passed in %s; the plan allows at most %d", p, elapsed, most)
	}
	// Tokens still held in leases are at most 20 per replica.
	if p := passed.Load(); p < 2000-2*20 {
		t.Errorf("only %d requests passed; the 2,000-request burst was not granted", p)
	}
	if passed.Load()+refused.Load() != clients*each {
		t.Errorf("%d passed + %d refused ≠ %d requests", passed.Load(), refused.Load(), clients*each)
	}
}
