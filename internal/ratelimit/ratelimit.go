// Package ratelimit holds every organisation to its plan's requests per
// second. It is a GCRA kept in Redis (github.com/go-redis/redis_rate), so all
// replicas share one budget per organisation. A cache must never take the API
// down: when Redis fails, requests are let through, logged and counted.
package ratelimit

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/observe"
	"github.com/tollgate-billing/tollgate/internal/plans"
)

// PlanSource tells an organisation's effective plan. Pass a cached one (the
// usage service is): it is asked on every request.
type PlanSource interface {
	PlanOf(ctx context.Context, orgID string) (plans.Plan, string, error)
}

// redisFallbacks counts requests let through because Redis failed.
var redisFallbacks = observe.RedisFallbacks.WithLabelValues("ratelimit")

// redisBackoff is how long Redis is skipped after a failure, so an
// unreachable Redis costs one timeout per interval rather than per request.
const redisBackoff = time.Second

// Limiter limits requests per organisation.
type Limiter struct {
	gcra  *redis_rate.Limiter
	plans PlanSource
	log   *slog.Logger

	downUntil atomic.Int64 // UnixNano; Redis is skipped before it
	unchecked atomic.Uint64
}

// New returns a limiter keeping its state in rdb.
func New(rdb *redis.Client, plansrc PlanSource, log *slog.Logger) *Limiter {
	return &Limiter{gcra: redis_rate.NewLimiter(rdb), plans: plansrc, log: log}
}

// Unchecked counts requests let through without a verdict because Redis or
// the plan lookup failed, for metrics.
func (l *Limiter) Unchecked() uint64 { return l.unchecked.Load() }

// Decision is the verdict on one request.
type Decision struct {
	Allowed bool
	// Limit is the plan's requests per second (0 when unchecked).
	Limit int
	// Remaining is how many more requests would pass right now.
	Remaining int
	// RetryAfter is when the next request would pass, when refused.
	RetryAfter time.Duration
}

// Allow counts one request of the organisation against its plan. It errs
// towards letting requests through: a failure allows and is counted.
func (l *Limiter) Allow(ctx context.Context, orgID string) Decision {
	if time.Now().UnixNano() < l.downUntil.Load() {
		l.unchecked.Add(1)
		redisFallbacks.Inc()
		return Decision{Allowed: true}
	}
	plan, _, err := l.plans.PlanOf(ctx, orgID)
	if err != nil {
		l.unchecked.Add(1)
		l.log.WarnContext(ctx, "rate limit skipped: plan lookup failed", "org", orgID, "err", err)
		return Decision{Allowed: true}
	}
	limit := redis_rate.PerSecond(plan.RateLimitPerSecond)
	res, err := l.gcra.Allow(ctx, "tollgate:org:"+orgID, limit)
	if err != nil {
		l.unchecked.Add(1)
		if ctx.Err() == nil {
			redisFallbacks.Inc()
			now := time.Now()
			// Every request in flight fails at once; log the outage once.
			if prev := l.downUntil.Swap(now.Add(redisBackoff).UnixNano()); prev < now.UnixNano() {
				l.log.WarnContext(ctx, "redis unavailable; requests are not rate limited", "err", err)
			}
		}
		return Decision{Allowed: true}
	}
	return Decision{Allowed: res.Allowed > 0, Limit: limit.Rate, Remaining: res.Remaining, RetryAfter: res.RetryAfter}
}

// Middleware limits authenticated requests; anonymous ones pass untouched
// (they can do nothing but fail authentication). Over the limit it answers
// 429 with Retry-After and a GraphQL error whose code is RATE_LIMITED.
func (l *Limiter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := auth.FromContext(r.Context())
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		d := l.Allow(r.Context(), p.OrgID)
		if d.Limit > 0 {
			w.Header().Set("X-RateLimit-Limit", strconv.Itoa(d.Limit))
			w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(d.Remaining))
		}
		if d.Allowed {
			next.ServeHTTP(w, r)
			return
		}
		refuse(w, d.RetryAfter)
	})
}

// refuse writes the 429. Retry-After is in whole seconds, rounded up so a
// client that honours it is not refused again.
func refuse(w http.ResponseWriter, retryAfter time.Duration) {
	secs := max(int(math.Ceil(retryAfter.Seconds())), 1)
	type extensions struct {
		Code              apperr.Code `json:"code"`
		RetryAfterSeconds int         `json:"retryAfterSeconds"`
	}
	type gqlError struct {
		Message    string     `json:"message"`
		Extensions extensions `json:"extensions"`
	}
	body, _ := json.Marshal(struct {
		Errors []gqlError `json:"errors"`
	}{[]gqlError{{"rate limit exceeded", extensions{apperr.RateLimited, secs}}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write(body)
}
