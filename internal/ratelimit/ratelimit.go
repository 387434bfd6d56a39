// Package ratelimit counts requests against a rate, per key, as a GCRA kept
// in Redis (github.com/go-redis/redis_rate), so all replicas share one
// budget per key. It serves two callers with different meanings:
//
//   - the plan's rate limit, an entitlement of the host's product: the usage
//     service asks Allow with the organisation's plan rate when a host calls
//     usageGate or consumeUsage, and answers a refusal as data
//     (RATE_LIMITED with retryAfterMs), never as an HTTP error;
//   - Tollgate's protection of its own API (API, in api.go): per credential
//     and per organisation (all its credentials together), or per client
//     address for unauthenticated traffic, charged one token per root
//     field, answered HTTP 429 with Retry-After.
//
// A cache must never take the API down: when Redis fails, requests are let
// through, logged and counted.
package ratelimit

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/tollgate-billing/tollgate/internal/cache"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/observe"
	"github.com/tollgate-billing/tollgate/internal/redisconn"
)

// redisFallbacks counts requests let through because Redis failed.
var redisFallbacks = observe.RedisFallbacks.WithLabelValues("ratelimit")

// Limiter limits requests per key.
type Limiter struct {
	gcra *redis_rate.Limiter
	rdb  *redisconn.Client
	log  *slog.Logger

	backoff   redisconn.Backoff
	unchecked atomic.Uint64

	mu     sync.Mutex // creating a lease
	leases *cache.Cache[string, *lease]
}

// New returns a limiter keeping its state in rdb.
func New(rdb *redisconn.Client, log *slog.Logger) *Limiter {
	return &Limiter{gcra: redis_rate.NewLimiter(gcraKeys{rdb.UniversalClient}), rdb: rdb, log: log,
		leases: cache.New[string, *lease](maxLeases, 0, clock.Real{})}
}

// Unchecked counts requests let through without a verdict because Redis
// failed, for metrics.
func (l *Limiter) Unchecked() uint64 { return l.unchecked.Load() }

// Decision is the verdict on one request.
type Decision struct {
	Allowed bool
	// Limit is the rate per second (0 when unchecked).
	Limit int
	// Remaining is how many more requests would pass right now, refused
	// or not (a refused AllowN of 5 may leave 3). With a
	// lease it counts the tokens this replica holds, and may exceed Limit
	// for a moment (see Leases); the API's headers never show more.
	Remaining int
	// Held is the part of Remaining that is tokens of a lease this replica
	// holds rather than Redis's count.
	Held int
	// RetryAfter is when the next request would pass, when refused.
	RetryAfter time.Duration
}

// Allow counts one request under key against perSecond (which is also the
// burst). It errs towards letting requests through: a Redis failure allows
// and is counted.
func (l *Limiter) Allow(ctx context.Context, key string, perSecond int) Decision {
	if !l.backoff.Available(time.Now()) {
		l.unchecked.Add(1)
		redisFallbacks.Inc()
		return Decision{Allowed: true}
	}
	if perSecond/leaseShare < 2 {
		// Counted one by one in Redis.
		return l.AllowN(ctx, key, perSecond, 1)
	}
	return l.allowLeased(ctx, key, perSecond)
}

// AllowN counts n tokens under key at once, straight in Redis (no lease):
// for a request that costs more than one, such as a GraphQL document with
// many root fields. n above the burst can never pass.
func (l *Limiter) AllowN(ctx context.Context, key string, perSecond, n int) Decision {
	if !l.backoff.Available(time.Now()) {
		l.unchecked.Add(1)
		redisFallbacks.Inc()
		return Decision{Allowed: true}
	}
	res, err := l.gcra.AllowN(ctx, l.redisKey(key), redis_rate.PerSecond(perSecond), n)
	if err != nil {
		return l.unavailable(ctx, err)
	}
	d := Decision{Allowed: res.Allowed > 0, Limit: perSecond, Remaining: res.Remaining, RetryAfter: res.RetryAfter}
	if !d.Allowed {
		// Redis answers a refusal with 0 remaining, though fewer than n
		// may pass: its GCRA waits (n - remaining) / perSecond for n.
		// Rounded down, so never more than are left.
		d.Remaining = max(n-int(math.Ceil(res.RetryAfter.Seconds()*float64(perSecond))), 0)
	}
	return d
}

func (l *Limiter) redisKey(key string) string { return l.rdb.Key("ratelimit:" + key) }

// unavailable lets a request through because Redis failed, and skips Redis
// for a while.
func (l *Limiter) unavailable(ctx context.Context, err error) Decision {
	l.unchecked.Add(1)
	if ctx.Err() == nil {
		redisFallbacks.Inc()
		l.failed(ctx, err)
	}
	return Decision{Allowed: true}
}

// failed skips Redis for a while after err; every request in flight fails
// at once, so the outage is logged once.
func (l *Limiter) failed(ctx context.Context, err error) {
	if l.backoff.Fail(time.Now()) {
		l.log.WarnContext(ctx, "redis unavailable; requests are not rate limited", "err", err)
	}
}

// Leases. A rate of leaseShare*2 requests a second or more lets a busy
// key's requests be taken from Redis several at a time
// (redis_rate's AllowAtMost) and handed out from memory, so most of its
// requests cost no Redis round trip. That round trip was a third of the
// latency of a cheap query such as usageGate.
//
// A lease that is running out (a quarter of its tokens left, or a quarter
// of its time) has its successor fetched in the background while its last
// tokens are handed out, so a key whose traffic keeps up never has a
// request wait for Redis: with leases fetched only once empty or expired,
// about ten requests a second of every busy key paid the round trip; a
// gate counts against two keys (the credential's and the plan's), so at
// 2,000 gates a second that was about one in a hundred, at its 99th
// percentile.
//
// What it costs in precision, on each replica:
//   - a lease is at most 1/leaseShare of the per-second rate, and what is
//     left of one is carried into its successor, so a key can be refused
//     while another replica holds up to twice that many tokens it has not
//     used yet;
//   - tokens not handed out within leaseTTL of their lease's arrival are
//     dropped: they were counted in Redis and are lost to the key, so the
//     lease size follows the traffic, doubling while leases run out in
//     time and halving when one expires, or nears its end, mostly unused;
//   - tokens are counted when leased, so no replica ever lets through more
//     than Redis granted: the limit itself holds exactly.
//
// A key Redis refused is refused here, without asking Redis, until the time
// Redis named for its next request (RetryAfter: at most one request's share
// of a second at these rates). Redis's answer could only be the same, as no
// replica's requests can bring that time closer (only a higher rate set
// meanwhile could), and a key over its limit then costs Redis about one
// round trip per RetryAfter, not one per request.
//
// Rates under leaseShare*2 requests a second (the free and starter plans by
// default) are counted request by request.
const (
	leaseShare = 100
	leaseTTL   = 100 * time.Millisecond
	// maxLeases bounds the leases held, at the keys busy most recently; an
	// evicted lease costs its unused tokens at most.
	maxLeases = 10000
)

// lease is the tokens one key holds on this replica.
type lease struct {
	mu      sync.Mutex
	tokens  int
	expires time.Time
	// size is how many tokens the next lease asks for.
	size int
	// remaining is Redis's count of further requests that would pass, as of
	// the last lease.
	remaining int
	// refill is the lease being fetched from Redis, nil when none is: the
	// key's requests that find the lease empty meanwhile wait for it
	// instead of each asking Redis for a lease of its own.
	refill *refill
	// closed is when, by Redis's last refusal, the key's next request
	// could pass: until then its requests are refused here, and no lease
	// is fetched ahead.
	closed time.Time
}

// refill is one lease fetched from Redis, and what its waiters learn.
type refill struct {
	done chan struct{}
	// n is how many tokens it asks for.
	n int
	// refused is the verdict when Redis granted nothing; err is why Redis
	// could not be asked. Both are set before done is closed.
	refused *Decision
	err     error
}

// allowLeased takes a token from the key's lease, fetching a new lease
// from Redis when it is empty or expired. One request fetches it; those
// that find it empty while it is on its way wait for it and then take
// their tokens from it, so a burst of concurrent requests costs one round
// trip, not one each, and takes from Redis what it uses rather than a
// lease per request. Requests that still find it empty fetch the next.
// A lease running out has its successor fetched in the background.
func (l *Limiter) allowLeased(ctx context.Context, key string, rate int) Decision {
	ls := l.leaseOf(key)
	for {
		now := time.Now()
		ls.mu.Lock()
		if ls.tokens > 0 && now.Before(ls.expires) {
			ls.tokens--
			d := Decision{Allowed: true, Limit: rate, Remaining: ls.remaining + ls.tokens, Held: ls.tokens}
			var ahead *refill
			if ls.refill == nil && !now.Before(ls.closed) && ls.runningOut(now) {
				ahead = ls.next(now, rate)
			}
			ls.mu.Unlock()
			if ahead != nil {
				go l.fetch(ctx, ls, key, rate, ahead, false)
			}
			return d
		}
		if r := ls.refill; r != nil {
			ls.mu.Unlock()
			select {
			case <-r.done:
			case <-ctx.Done():
				return l.unavailable(ctx, ctx.Err())
			}
			switch {
			case r.err != nil:
				return l.unavailable(ctx, r.err)
			case r.refused != nil:
				return *r.refused
			}
			continue
		}
		if now.Before(ls.closed) {
			d := Decision{Limit: rate, RetryAfter: ls.closed.Sub(now)}
			ls.mu.Unlock()
			return d
		}
		r := ls.next(now, rate)
		ls.mu.Unlock()
		return l.fetch(ctx, ls, key, rate, r, true)
	}
}

// runningOut reports whether a live lease is down to its last quarter, of
// tokens or of time. ls.mu is held.
func (ls *lease) runningOut(now time.Time) bool {
	return ls.tokens*4 <= ls.size || ls.expires.Sub(now) < leaseTTL/4
}

// next sizes the key's next lease from how the last one went and marks it
// on its way. ls.mu is held.
func (ls *lease) next(now time.Time, rate int) *refill {
	switch {
	case !now.Before(ls.expires):
		if ls.tokens > 0 { // expired unused: the traffic slowed down
			ls.size /= 2
		}
		ls.tokens = 0
	case ls.tokens*4 <= ls.size: // used up, or nearly, in time: the traffic keeps up
		ls.size *= 2
	case ls.tokens*2 > ls.size: // nearly over with most of it unused
		ls.size /= 2
	}
	ls.size = min(max(ls.size, 1), rate/leaseShare)
	r := &refill{done: make(chan struct{}), n: ls.size}
	ls.refill = r
	return r
}

// fetch asks Redis for the lease r and adds it to the key's tokens, taking
// one for the request that fetches it (forRequest) and answering that
// request; a fetch ahead of need answers nobody. The lease is everyone's
// who waits for it, not ctx's caller's: it is fetched to its end whatever
// becomes of ctx.
func (l *Limiter) fetch(ctx context.Context, ls *lease, key string, rate int, r *refill, forRequest bool) Decision {
	res, err := l.gcra.AllowAtMost(context.WithoutCancel(ctx), l.redisKey(key), redis_rate.PerSecond(rate), r.n)
	var d Decision
	ls.mu.Lock()
	switch {
	case err != nil:
		r.err = err
	case res.Allowed < 1:
		r.refused = &Decision{Limit: rate, RetryAfter: res.RetryAfter}
		d = *r.refused
		ls.closed = time.Now().Add(res.RetryAfter)
	default:
		now := time.Now()
		if !now.Before(ls.expires) {
			ls.tokens = 0 // what the last lease left has expired meanwhile
		}
		ls.tokens += res.Allowed
		if forRequest {
			ls.tokens-- // this request's
		}
		ls.expires = now.Add(leaseTTL)
		ls.remaining = res.Remaining
		d = Decision{Allowed: true, Limit: rate, Remaining: res.Remaining + ls.tokens, Held: ls.tokens}
	}
	ls.refill = nil
	ls.mu.Unlock()
	close(r.done)
	// After the lease's lock is let go: these may log.
	switch {
	case err != nil && forRequest:
		return l.unavailable(ctx, err)
	case err != nil:
		l.failed(ctx, err)
	}
	return d
}

// leaseOf returns the key's lease, creating it.
func (l *Limiter) leaseOf(key string) *lease {
	if ls, ok := l.leases.Get(key); ok {
		return ls
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ls, ok := l.leases.Get(key); ok {
		return ls
	}
	ls := &lease{}
	l.leases.Put(key, ls)
	return ls
}

// Refunds. A request charged to two budgets (a credential's and its
// organisation's) and refused by the second gives the first back what it
// took, so a refusal spends nothing it did not use.
//
//   - A token Allow handed out from a lease goes back into that lease on
//     this replica, as long as the lease lives: it was counted in Redis when
//     leased and is simply handed out again. Once the lease has expired (or
//     been evicted) the token is lost to the key, as any unused leased token
//     is (see Leases): at most one token, for at most leaseTTL.
//   - Tokens counted straight in Redis (AllowN, and Allow at rates under
//     leaseShare*2) are given back in Redis, as a charge of -n. redis_rate
//     stores nothing for a charge that leaves the budget full, so when the
//     refund would fill it (nothing else charged it meanwhile) a second
//     refund gives back all but the last, partly refilled, token: the key
//     is short by less than one token, for less than 1/rate of a second.
//     A refund never gives back more than was taken.
//
// A refund that cannot reach Redis is dropped: the tokens stay spent.

// Return gives back the token Allow granted in d, when d was counted.
func (l *Limiter) Return(ctx context.Context, key string, perSecond int, d Decision) {
	if !d.Allowed || d.Limit <= 0 {
		return // refused (nothing was taken) or unchecked (nothing was counted)
	}
	if perSecond/leaseShare < 2 {
		l.refund(ctx, key, perSecond, 1)
		return
	}
	ls, ok := l.leases.Get(key)
	if !ok {
		return // evicted, with whatever it held
	}
	ls.mu.Lock()
	if time.Now().Before(ls.expires) {
		ls.tokens++
	}
	ls.mu.Unlock()
}

// ReturnN gives back the n tokens AllowN granted in d, when d was counted.
func (l *Limiter) ReturnN(ctx context.Context, key string, perSecond, n int, d Decision) {
	if !d.Allowed || d.Limit <= 0 || n <= 0 {
		return
	}
	l.refund(ctx, key, perSecond, n)
}

// refund gives n tokens back to key in Redis (see Refunds).
func (l *Limiter) refund(ctx context.Context, key string, perSecond, n int) {
	if !l.backoff.Available(time.Now()) {
		return
	}
	lim := redis_rate.PerSecond(perSecond)
	res, err := l.gcra.AllowN(ctx, l.redisKey(key), lim, -n)
	if err != nil {
		l.failed(ctx, err)
		return
	}
	if res.ResetAfter > 0 {
		return // stored: given back exactly
	}
	// Nothing stored: the budget is charged o = lim.Burst+n-Remaining
	// tokens (Remaining rounded down, so o rounded up), at most n. Give
	// back all but the last.
	if m := lim.Burst + n - res.Remaining - 1; m > 0 && m < n {
		if _, err := l.gcra.AllowN(ctx, l.redisKey(key), lim, -m); err != nil {
			l.failed(ctx, err)
		}
	}
}
