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
	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func handler(a *API) http.Handler {
	return a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
}

// call sends a request as the API key keyID, or without credentials from
// addr when keyID is "".
func call(h http.Handler, keyID, addr string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
	r.RemoteAddr = addr + ":41000"
	if keyID != "" {
		r = r.WithContext(auth.WithPrincipal(r.Context(), &auth.Principal{OrgID: "org-" + keyID, APIKeyID: keyID}))
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestACredentialOverItsLimitIsRefusedWith429(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb *redisconn.Client) {
		key, other := store.NewID(), store.NewID() // fresh keys on the shared Redis
		h := handler(NewAPI(New(rdb, quiet()), APILimits{PerCredential: 10, PerAddress: 1000}))

		start := time.Now()
		var passed int
		var refused *httptest.ResponseRecorder
		for range 15 {
			w := call(h, key, "192.0.2.1")
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
		if w := call(h, other, "192.0.2.1"); w.Code != http.StatusOK {
			t.Errorf("another key from the same address got %d: one credential's burst must not limit another", w.Code)
		}
	})
}

// Requests without credentials are held per client address, so a flood of
// them from one address cannot occupy the server, and does not slow down
// another address.
func TestUnauthenticatedTrafficIsLimitedPerAddress(t *testing.T) {
	addr, other := "198.51.100."+strconv.Itoa(int(time.Now().UnixNano()%200)), "203.0.113.9"
	rdb := testenv.MiniRedis(t) // addresses are shared names; keep them private
	h := handler(NewAPI(New(rdb, quiet()), APILimits{PerCredential: 1000, PerAddress: 5}))
	refused := 0
	for range 20 {
		if call(h, "", addr).Code == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused < 10 {
		t.Errorf("%d of 20 anonymous requests from one address refused at 5 a second, want at least 10", refused)
	}
	if w := call(h, "", other); w.Code != http.StatusOK {
		t.Errorf("another address got %d", w.Code)
	}
}

// TestARefusedChargeSaysWhatRemains: a charge of more than is left is
// refused, charges nothing, and says how many units still pass (Redis
// itself answers a refusal with 0), which a charge of that many then shows.
func TestARefusedChargeSaysWhatRemains(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb *redisconn.Client) {
		l := New(rdb, quiet())
		key := "test:" + store.NewID()
		ctx := context.Background()
		const rate, spent = 100, 75
		start := time.Now()
		if d := l.AllowN(ctx, key, rate, spent); !d.Allowed {
			t.Fatalf("the first %d of %d refused", spent, rate)
		}
		d := l.AllowN(ctx, key, rate, rate/2)
		refilled := int(time.Since(start).Seconds()*rate) + 1
		if left := rate - spent; d.Allowed || d.Remaining < left || d.Remaining > left+refilled {
			t.Fatalf("%d more after %d of %d: %+v, want refused with %d to %d remaining", rate/2, spent, rate, d, left, left+refilled)
		}
		if after := l.AllowN(ctx, key, rate, d.Remaining); !after.Allowed {
			t.Fatalf("a charge of the %d the refusal said remain: %+v", d.Remaining, after)
		}
	})
}

func TestAHigherRateLetsMoreThrough(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb *redisconn.Client) {
		l := New(rdb, quiet())
		slow, fast := "test:"+store.NewID(), "test:"+store.NewID()
		for i := range 50 {
			if d := l.Allow(context.Background(), fast, 100); !d.Allowed {
				t.Fatalf("request %d at 100 req/s refused", i+1)
			}
		}
		passed := 0
		for range 50 {
			if l.Allow(context.Background(), slow, 10).Allowed {
				passed++
			}
		}
		if passed > 15 {
			t.Errorf("%d of 50 passed at 10 req/s", passed)
		}
	})
}

func TestRequestsPassWhileRedisIsDown(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redisconn.New(redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1}), testenv.RedisPrefix())
	t.Cleanup(func() { rdb.Close() })
	l := New(rdb, quiet())
	h := handler(NewAPI(l, APILimits{PerCredential: 10, PerAddress: 10}))
	m.Close()
	fallbacks := testutil.ToFloat64(observe.RedisFallbacks.WithLabelValues("ratelimit"))
	for i := range 30 {
		if w := call(h, "k1", "192.0.2.1"); w.Code != http.StatusOK {
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

// Requests that wait for a lease whose fetch fails pass too, each counted
// as unchecked, as the one that fetched it does.
func TestRequestsWaitingOnAFailedLeasePass(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redisconn.New(redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1}), testenv.RedisPrefix())
	t.Cleanup(func() { rdb.Close() })
	l := New(rdb, quiet())
	m.Close()
	const callers = 64
	var refused atomic.Int64
	testenv.AtOnce(callers, func(int) {
		if !l.Allow(context.Background(), "busy", 2000).Allowed {
			refused.Add(1)
		}
	})
	if n := refused.Load(); n > 0 {
		t.Errorf("%d of %d requests refused while Redis was down; the limiter must fail open", n, callers)
	}
	if l.Unchecked() != callers {
		t.Errorf("%d requests counted as unchecked, want %d", l.Unchecked(), callers)
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

// A busy key at a high rate takes its requests from Redis several at a
// time, so most of them cost no round trip; a key at a low rate has each
// counted in Redis.
func TestABusyOrganisationCostsFewRedisRoundTrips(t *testing.T) {
	rdb := testenv.Redis(t)
	var scripts countScripts
	rdb.AddHook(&scripts)
	busy, free := store.NewID(), store.NewID()
	l := New(rdb, quiet())
	ctx := context.Background()

	for i := range 1000 {
		if !l.Allow(ctx, busy, 2000).Allowed {
			t.Fatalf("request %d at 2,000 req/s refused", i+1)
		}
	}
	// Leases grow to 20 (1% of 2,000) within a few requests.
	if n := scripts.n.Load(); n > 100 {
		t.Errorf("1,000 requests cost %d Redis round trips; leases should make it about 60", n)
	}

	// The first call on a fresh Redis (miniredis on a bare machine) loads
	// its script: EVALSHA, NOSCRIPT, then EVAL. Count from after it.
	l.Allow(ctx, free, 10)
	scripts.n.Store(0)
	for range 5 {
		l.Allow(ctx, free, 10)
	}
	if n := scripts.n.Load(); n != 5 {
		t.Errorf("5 requests at 10 req/s cost %d Redis round trips, want 5: a low rate is counted exactly", n)
	}
}

// Requests of one key that find its lease empty while the next lease is
// on its way wait for that lease instead of each fetching one of their
// own: a burst from 64 concurrent callers costs about as many round trips
// as one caller's requests would, and all of them pass.
func TestConcurrentRequestsShareTheNextLease(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb *redisconn.Client) {
		var scripts countScripts
		rdb.AddHook(&scripts)
		org := store.NewID()
		l := New(rdb, quiet())
		ctx := context.Background()
		const callers, each, rate = 64, 100, 1_000_000 // leases grow to 10,000
		var refused atomic.Int64
		testenv.AtOnce(callers, func(int) {
			for range each {
				if !l.Allow(ctx, org, rate).Allowed {
					refused.Add(1)
				}
			}
		})
		if n := refused.Load(); n > 0 {
			t.Errorf("%d of %d requests refused at a rate of %d a second", n, callers*each, rate)
		}
		// One caller alone doubles its lease from 1 to 8,192 in 14
		// fetches to cover 6,400 requests; waiting callers add none, and
		// a lease that expires unused under a slow machine halves.
		t.Logf("%d requests, %d Redis round trips", callers*each, scripts.n.Load())
		if n := scripts.n.Load(); n > 3*14 {
			t.Errorf("%d requests from %d concurrent callers cost %d Redis round trips; sharing each lease fetch needs about 14",
				callers*each, callers, n)
		}
	})
}

// Leases never let through more than Redis granted, however many replicas
// take them: the plan's limit holds across replicas.
func TestLeasedLimitsHoldAcrossReplicas(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb *redisconn.Client) {
		org := store.NewID()
		replicas := []*Limiter{New(rdb, quiet()), New(rdb, quiet())}
		const clients, each = 8, 1000
		var passed, refused atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if replicas[(c+i)%2].Allow(context.Background(), org, 2000).Allowed {
						passed.Add(1)
					} else {
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
	})
}

// steadily calls Allow once a millisecond for warm+measure and returns how
// many calls after warm took delay or longer (waited for Redis), of how
// many.
func steadily(t *testing.T, l *Limiter, key string, rate int, warm, measure, delay time.Duration) (waited, calls int) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	from := time.Now().Add(warm)
	end := from.Add(measure)
	for now := range tick.C {
		if now.After(end) {
			break
		}
		start := time.Now()
		if !l.Allow(context.Background(), key, rate).Allowed {
			t.Fatalf("a request at about 1,000 a second was refused at a rate of %d", rate)
		}
		if start.Before(from) {
			continue
		}
		calls++
		if time.Since(start) >= delay {
			waited++
		}
	}
	return waited, calls
}

// Once a busy key's lease is warm, its requests take their tokens from
// memory while the next lease is fetched in the background: none waits for
// Redis, even when Redis takes a tenth of a lease's life to answer. Leases
// fetched only once empty or expired made about ten requests a second wait.
func TestABusyKeysRequestsDoNotWaitForRedis(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb *redisconn.Client) {
		const delay = leaseTTL / 10
		testenv.DelayScripts(rdb, delay)
		l := New(rdb, quiet())
		waited, calls := steadily(t, l, store.NewID(), 100_000, 300*time.Millisecond, time.Second, delay)
		t.Logf("%d of %d requests waited %s or more", waited, calls, delay)
		if calls < 200 {
			t.Fatalf("only %d requests were made in a second; the machine is too busy to tell", calls)
		}
		// A stall of the machine longer than a quarter of a lease's life
		// can still let one expire.
		if waited > 2 {
			t.Errorf("%d of %d steady requests waited for Redis (%s or more) once the lease was warm, want none",
				waited, calls, delay)
		}
	})
}

// A fetch ahead of need that fails lets the key's requests through and
// has the limiter skip Redis, as a fetch for a request does: Redis is
// skipped from then on, before the lease's last tokens are used up.
func TestAFailedFetchAheadLetsRequestsThrough(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redisconn.New(redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1}), testenv.RedisPrefix())
	t.Cleanup(func() { rdb.Close() })
	l := New(rdb, quiet())
	key := store.NewID()
	for i := range 100 { // a warm lease of 32 or more tokens
		if !l.Allow(context.Background(), key, 100_000).Allowed {
			t.Fatalf("request %d refused while Redis was up", i+1)
		}
	}
	ls := l.leaseOf(key)
	// state reads the lease: whether a fetch is on its way, and its tokens.
	state := func() (fetching bool, tokens int) {
		ls.mu.Lock()
		defer ls.mu.Unlock()
		return ls.refill != nil, ls.tokens
	}
	within := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not so after 5 s", what)
			}
		}
	}
	within("the warm-up's last fetch to end", func() bool { fetching, _ := state(); return !fetching })
	if l.Unchecked() != 0 {
		t.Fatalf("%d requests unchecked while Redis was up", l.Unchecked())
	}

	m.Close()
	ahead := false
	for i := 0; i < 200 && !ahead; i++ {
		if !l.Allow(context.Background(), key, 100_000).Allowed {
			t.Fatalf("request %d refused while Redis was down; the limiter must fail open", i+1)
		}
		fetching, tokens := state()
		ahead = fetching && tokens > 0
	}
	if !ahead {
		t.Fatal("the lease was used up with no fetch of the next one started while tokens were left")
	}
	within("the failed fetch ahead to have the limiter skip Redis", func() bool { return !l.backoff.Available(time.Now()) })
	if _, tokens := state(); tokens == 0 {
		t.Fatal("test setup: the lease was used up before the fetch ahead failed")
	}
	for i := range 50 {
		before := l.Unchecked()
		if !l.Allow(context.Background(), key, 100_000).Allowed {
			t.Fatalf("request %d after the failed fetch refused; the limiter must fail open", i+1)
		}
		if l.Unchecked() != before+1 {
			t.Fatalf("request %d after the failed fetch was not counted unchecked: Redis is down, its verdict unknown", i+1)
		}
	}
}

// A key over its limit is refused without asking Redis for each request:
// until the time Redis's last refusal named, the replica refuses alone, so
// a flood costs Redis about two round trips per refusal window (the request
// that passes once it ends, and the next, refused), not one per request,
// and every refusal says when to retry.
func TestAKeyOverItsLimitIsRefusedWithoutAskingRedisEachTime(t *testing.T) {
	rdb := testenv.Redis(t)
	var scripts countScripts
	rdb.AddHook(&scripts)
	l := New(rdb, quiet())
	ctx := context.Background()
	key := store.NewID()
	// The lowest leased rate: a request's share of a second, the refusal
	// window, is 5 ms.
	const rate = 2 * leaseShare
	// The burst (a second's worth) passes; then the key is over its limit.
	start := time.Now()
	passed := 0
	for range 2 * rate {
		if l.Allow(ctx, key, rate).Allowed {
			passed++
		}
	}
	if most := rate + int(time.Since(start).Seconds()*rate) + rate/10; passed > most {
		t.Fatalf("%d of %d requests passed a limit of %d a second (at most %d by the time they took)", passed, 2*rate, rate, most)
	}
	scripts.n.Store(0)
	start = time.Now()
	refused := 0
	for range 1000 {
		d := l.Allow(ctx, key, rate)
		if d.Allowed {
			continue
		}
		refused++
		if d.RetryAfter <= 0 {
			t.Fatalf("a refusal with no time to retry after: %+v", d)
		}
	}
	elapsed := time.Since(start)
	if least := 1000 - int(elapsed.Seconds()*rate) - 2*rate/leaseShare - 1; refused < least {
		t.Fatalf("%d of 1,000 requests over the limit were refused, want at least %d", refused, least)
	}
	n := scripts.n.Load()
	t.Logf("passed %d; then refused %d of 1,000 in %v with %d Redis round trips", passed, refused, elapsed, n)
	if most := 2*int64(elapsed/(4*time.Millisecond)) + 4; n > most {
		t.Errorf("%d refused requests in %v cost %d Redis round trips, want at most %d (two per refusal window)", refused, elapsed, n, most)
	}
}

// TestRateLimitHeadersNeverExceedTheLimit: at 1,000 a second a key's tokens
// are leased, and a lease's unused tokens carried into the next one once
// Redis has refilled could make Redis's count plus the lease's more than
// the limit (1,002 of 1,000). X-RateLimit-Remaining never says more than
// X-RateLimit-Limit, nor less than 0, and X-RateLimit-Reset is 0 only for a
// full budget.
func TestRateLimitHeadersNeverExceedTheLimit(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb *redisconn.Client) {
		key := store.NewID()
		h := handler(NewAPI(New(rdb, quiet()), APILimits{PerCredential: 1000, PerAddress: 1000}))
		for i := range 300 {
			w := call(h, key, "192.0.2.1")
			if w.Code != http.StatusOK {
				t.Fatalf("request %d: %d", i, w.Code)
			}
			limit, _ := strconv.Atoi(w.Header().Get("X-RateLimit-Limit"))
			remaining, err := strconv.Atoi(w.Header().Get("X-RateLimit-Remaining"))
			if limit != 1000 || err != nil || remaining < 0 || remaining > limit {
				t.Fatalf("request %d: X-RateLimit-Remaining %q of X-RateLimit-Limit %q", i, w.Header().Get("X-RateLimit-Remaining"), w.Header().Get("X-RateLimit-Limit"))
			}
			if reset := w.Header().Get("X-RateLimit-Reset"); reset != "1" && !(reset == "0" && remaining == limit) {
				t.Fatalf("request %d: X-RateLimit-Reset %q with %d of %d remaining", i, reset, remaining, limit)
			}
			time.Sleep(2 * time.Millisecond) // Redis refills while leases carry over
		}
	})
}

// TestA429SaysNothingRemains: a request refused its first unit says 0
// remaining, with Retry-After and a reset no sooner than it.
func TestA429SaysNothingRemains(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb *redisconn.Client) {
		for _, rate := range []int{10, 1000} { // counted one by one, and leased
			key := store.NewID()
			h := handler(NewAPI(New(rdb, quiet()), APILimits{PerCredential: rate, PerAddress: 1000}))
			var refused *httptest.ResponseRecorder
			for range rate * 3 {
				if w := call(h, key, "192.0.2.1"); w.Code == http.StatusTooManyRequests {
					refused = w
					break
				}
			}
			if refused == nil {
				t.Fatalf("rate %d: nothing refused", rate)
			}
			hdr := refused.Header()
			retry, err := strconv.Atoi(hdr.Get("Retry-After"))
			reset, err2 := strconv.Atoi(hdr.Get("X-RateLimit-Reset"))
			if hdr.Get("X-RateLimit-Remaining") != "0" || hdr.Get("X-RateLimit-Limit") != strconv.Itoa(rate) ||
				err != nil || retry < 1 || err2 != nil || reset < retry {
				t.Errorf("rate %d: 429 with Limit %q Remaining %q Reset %q Retry-After %q", rate,
					hdr.Get("X-RateLimit-Limit"), hdr.Get("X-RateLimit-Remaining"), hdr.Get("X-RateLimit-Reset"), hdr.Get("Retry-After"))
			}
		}
	})
}

// One client's other spellings of its address share its budget: an
// IPv4-mapped IPv6 address is the IPv4 address, and every address of an
// IPv6 /64 (whose low bits a client picks freely) is one client.
func TestAnAddressesOtherFormsShareItsBudget(t *testing.T) {
	rdb := testenv.MiniRedis(t)
	h := handler(NewAPI(New(rdb, quiet()), APILimits{PerCredential: 1000, PerAddress: 3}))
	send := func(remote string) int {
		r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for _, tc := range []struct {
		name  string
		forms []string
	}{
		{"IPv4 and its IPv4-mapped IPv6 form", []string{"192.0.2.7:1000", "[::ffff:192.0.2.7]:1001", "[::ffff:c000:207]:1002", "192.0.2.7:1003", "[::ffff:192.0.2.7]:1004"}},
		{"addresses of one IPv6 /64", []string{"[2001:db8:1:2::1]:1000", "[2001:db8:1:2::2]:1000", "[2001:db8:1:2:ffff:ffff:ffff:ffff]:1000", "[2001:db8:1:2:abcd::9]:1000", "[2001:db8:1:2::3%eth0]:1000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refused := 0
			for _, remote := range tc.forms {
				if send(remote) == http.StatusTooManyRequests {
					refused++
				}
			}
			if want := len(tc.forms) - 3; refused < want {
				t.Errorf("%d of %d requests from one client's address forms refused at a budget of 3, want at least %d", refused, len(tc.forms), want)
			}
		})
	}
	if code := send("[2001:db8:1:3::1]:1000"); code != http.StatusOK {
		t.Errorf("the next /64 got %d, want its own budget", code)
	}
}

// as sends a request as API key keyID of organisation org.
func as(h http.Handler, org, keyID string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
	r.RemoteAddr = "192.0.2.1:41000"
	r = r.WithContext(auth.WithPrincipal(r.Context(), &auth.Principal{OrgID: org, APIKeyID: keyID}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestAnOrganisationsCredentialsShareItsBudget: two API keys of one
// organisation together get the organisation's budget, not one each,
// counted call by call (10 a second) and leased (1,000 a second); the
// refusal is a 429 whose headers give the organisation's limit. Another
// organisation's key has a budget of its own.
func TestAnOrganisationsCredentialsShareItsBudget(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb *redisconn.Client) {
		for _, orgRate := range []int{10, 1000} {
			org, other := store.NewID(), store.NewID()
			keys := []string{store.NewID(), store.NewID()}
			h := handler(NewAPI(New(rdb, quiet()), APILimits{PerCredential: 100000, PerOrganization: orgRate, PerAddress: 1000}))
			start := time.Now()
			passed := 0
			var refused *httptest.ResponseRecorder
			for i := range 3 * orgRate {
				if w := as(h, org, keys[i%2]); w.Code == http.StatusOK {
					passed++
				} else if refused == nil {
					refused = w
				}
			}
			// The budget refills orgRate a second while the loop runs.
			if grace := int(time.Since(start).Seconds()*float64(orgRate)) + 1; passed < orgRate || passed > orgRate+grace {
				t.Errorf("organisation budget %d: its two keys passed %d of %d, want %d (up to %d with the refill)", orgRate, passed, 3*orgRate, orgRate, orgRate+grace)
			}
			if refused == nil || refused.Code != http.StatusTooManyRequests || refused.Header().Get("X-RateLimit-Limit") != strconv.Itoa(orgRate) ||
				refused.Header().Get("Retry-After") == "" {
				t.Fatalf("organisation budget %d: refusal %+v, want a 429 naming the organisation's limit", orgRate, refused)
			}
			if w := as(h, other, store.NewID()); w.Code != http.StatusOK {
				t.Errorf("organisation budget %d: another organisation's key got %d: organisations must not share a budget", orgRate, w.Code)
			}
		}
	})
}

// TestACredentialOverItsOwnLimitSpendsNothingOfItsOrganisation: a key
// refused for its own budget is not charged to its organisation's, so one
// runaway key cannot use up what its organisation's other keys have.
func TestACredentialOverItsOwnLimitSpendsNothingOfItsOrganisation(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb *redisconn.Client) {
		const perKey, perOrg = 6, 10
		org, runaway, calm := store.NewID(), store.NewID(), store.NewID()
		h := handler(NewAPI(New(rdb, quiet()), APILimits{PerCredential: perKey, PerOrganization: perOrg, PerAddress: 1000}))
		start := time.Now()
		for range 5 * perKey {
			as(h, org, runaway)
		}
		passed := 0
		for range perKey {
			if as(h, org, calm).Code == http.StatusOK {
				passed++
			}
		}
		// The runaway key took perKey of the organisation's perOrg; the
		// rest, and what refilled meanwhile, are the calm key's.
		if left := perOrg - perKey; passed < left {
			t.Errorf("the other key passed %d after a runaway key's %d requests (%v), want at least the %d its organisation had left", passed, 5*perKey, time.Since(start), left)
		}
	})
}

// TestAnOrganisationsBudgetCostsFewRoundTrips: at the default limits both of
// a credential's budgets, its own and its organisation's, are leased, so a
// busy key's requests still cost Redis a round trip only every few dozen
// requests, fetched ahead of need; the organisation's budget adds its own
// lease fetches, fewer than the credential's since its leases are larger.
func TestAnOrganisationsBudgetCostsFewRoundTrips(t *testing.T) {
	rdb := testenv.Redis(t)
	var scripts countScripts
	rdb.AddHook(&scripts)
	// Load the script once (NOSCRIPT on a fresh Redis).
	New(rdb, quiet()).Allow(context.Background(), store.NewID(), 10)
	trips := func(limits APILimits) int64 {
		h := handler(NewAPI(New(rdb, quiet()), limits))
		org, key := store.NewID(), store.NewID()
		scripts.n.Store(0)
		for i := range 1000 {
			if w := as(h, org, key); w.Code != http.StatusOK {
				t.Fatalf("request %d: %d", i+1, w.Code)
			}
		}
		return scripts.n.Load()
	}
	alone := trips(APILimits{PerCredential: DefaultAPILimits.PerCredential, PerAddress: 1000})
	both := trips(APILimits{PerCredential: DefaultAPILimits.PerCredential, PerOrganization: DefaultAPILimits.PerOrganization, PerAddress: 1000})
	t.Logf("1,000 requests of one key: %d Redis round trips with its own budget, %d with its organisation's too", alone, both)
	if both > 2*alone || both > 200 {
		t.Errorf("1,000 requests cost %d round trips with the organisation's budget, %d without: the organisation's leases should add fewer than the credential's", both, alone)
	}
}
