package ratelimit

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/observe"
	"github.com/tollgate-billing/tollgate/internal/plans"
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
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1})
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
