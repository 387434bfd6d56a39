// Package ratelimit holds every organisation to its plan's requests per
// second. It is a GCRA kept in Redis (github.com/go-redis/redis_rate), so all
// replicas share one budget per organisation. A cache must never take the API
// down: when Redis fails, requests are let through, logged and counted.
package ratelimit

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/cache"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/observe"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/redisconn"
)

// PlanSource tells an organisation's effective plan. Pass a cached one (the
// usage service is): it is asked on every request.
type PlanSource interface {
	PlanOf(ctx context.Context, orgID string) (plans.Plan, string, error)
}

// redisFallbacks counts requests let through because Redis failed.
var redisFallbacks = observe.RedisFallbacks.WithLabelValues("ratelimit")

// Limiter limits requests per organisation.
type Limiter struct {
	gcra  *redis_rate.Limiter
	rdb   *redisconn.Client
	plans PlanSource
	log   *slog.Logger

	backoff   redisconn.Backoff
	unchecked atomic.Uint64

	mu     sync.Mutex // creating a lease
	leases *cache.Cache[string, *lease]
}

// New returns a limiter keeping its state in rdb.
func New(rdb *redisconn.Client, plansrc PlanSource, log *slog.Logger) *Limiter {
	return &Limiter{gcra: redis_rate.NewLimiter(rdb.Client), rdb: rdb, plans: plansrc, log: log,
		leases: cache.New[string, *lease](maxLeases, 0, clock.Real{})}
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
	if !l.backoff.Available(time.Now()) {
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
	rate := plan.RateLimitPerSecond
	if rate/leaseShare < 2 {
		// Counted one by one in Redis.
		res, err := l.gcra.Allow(ctx, l.redisKey(orgID), redis_rate.PerSecond(rate))
		if err != nil {
			return l.unavailable(ctx, err)
		}
		return Decision{Allowed: res.Allowed > 0, Limit: rate, Remaining: res.Remaining, RetryAfter: res.RetryAfter}
	}
	return l.allowLeased(ctx, orgID, rate)
}

func (l *Limiter) redisKey(orgID string) string { return l.rdb.Key("ratelimit:" + orgID) }

// unavailable lets a request through because Redis failed, and skips Redis
// for a while.
func (l *Limiter) unavailable(ctx context.Context, err error) Decision {
	l.unchecked.Add(1)
	if ctx.Err() == nil {
		redisFallbacks.Inc()
		// Every request in flight fails at once; log the outage once.
		if l.backoff.Fail(time.Now()) {
			l.log.WarnContext(ctx, "redis unavailable; requests are not rate limited", "err", err)
		}
	}
	return Decision{Allowed: true}
}

// Leases. A plan of leaseShare*2 requests a second or more lets a busy
// organisation's requests be taken from Redis several at a time
// (redis_rate's AllowAtMost) and handed out from memory, so most of its
// requests cost no Redis round trip. That round trip was a third of the
// latency of a cheap query such as usageGate.
//
// What it costs in precision, on each replica:
//   - a lease is at most 1/leaseShare of the plan's per-second rate, so an
//     organisation can be refused while another replica holds up to that
//     many tokens it has not used yet;
//   - tokens not handed out within leaseTTL are dropped: they were counted in
//     Redis and are lost to the organisation, so the lease size follows the
//     traffic, doubling while leases run out in time and halving when one
//     expires unused;
//   - tokens are counted when leased, so no replica ever lets through more
//     than Redis granted: the limit itself holds exactly.
//
// Plans under leaseShare*2 requests a second (free and starter by default)
// are counted request by request, exactly as before.
const (
	leaseShare = 100
	leaseTTL   = 100 * time.Millisecond
	// maxLeases bounds the leases held, at the organisations busy most
	// recently; an evicted lease costs its unused tokens at most.
	maxLeases = 10000
)

// lease is the tokens one organisation holds on this replica.
type lease struct {
	mu      sync.Mutex
	tokens  int
	expires time.Time
	// size is how many tokens the next lease asks for.
	size int
	// remaining is Redis's count of further requests that would pass, as of
	// the last lease.
	remaining int
}

func (l *Limiter) allowLeased(ctx context.Context, orgID string, rate int) Decision {
	ls := l.leaseOf(orgID)
	now := time.Now()
	ls.mu.Lock()
	if ls.tokens > 0 && now.Before(ls.expires) {
		ls.tokens--
		d := Decision{Allowed: true, Limit: rate, Remaining: ls.remaining + ls.tokens}
		ls.mu.Unlock()
		return d
	}
	switch {
	case ls.tokens > 0: // expired unused: the traffic slowed down
		ls.size /= 2
	case now.Before(ls.expires): // used up in time: the traffic keeps up
		ls.size *= 2
	}
	ls.size = min(max(ls.size, 1), rate/leaseShare)
	ls.tokens = 0
	n := ls.size
	ls.mu.Unlock()

	res, err := l.gcra.AllowAtMost(ctx, l.redisKey(orgID), redis_rate.PerSecond(rate), n)
	if err != nil {
		return l.unavailable(ctx, err)
	}
	if res.Allowed < 1 {
		return Decision{Limit: rate, RetryAfter: res.RetryAfter}
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.tokens += res.Allowed - 1 // one is this request's
	ls.expires = time.Now().Add(leaseTTL)
	ls.remaining = res.Remaining
	return Decision{Allowed: true, Limit: rate, Remaining: res.Remaining + ls.tokens}
}

// leaseOf returns the organisation's lease, creating it.
func (l *Limiter) leaseOf(orgID string) *lease {
	if ls, ok := l.leases.Get(orgID); ok {
		return ls
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ls, ok := l.leases.Get(orgID); ok {
		return ls
	}
	ls := &lease{}
	l.leases.Put(orgID, ls)
	return ls
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
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	apperr.WriteRefusal(w, http.StatusTooManyRequests, apperr.RateLimited, "rate limit exceeded",
		map[string]any{"retryAfterSeconds": secs})
}
