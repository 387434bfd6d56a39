package usage

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func TestGateAnswersFromThePlanAndTheCount(t *testing.T) {
	show := func(v *int64) string {
		if v == nil {
			return "nil"
		}
		return fmt.Sprint(*v)
	}
	cases := []gateCase{
		{"a free org under its hard limit may go on", "free", "", "api_calls", 999, "true 999 1000 1 free "},
		{"a free org at its hard limit is stopped", "free", "", "api_calls", 1000, "false 1000 1000 0 free "},
		{"a soft limit never stops an org", "starter", "active", "api_calls", 100_001, "true 100001 100000 0 starter active"},
		{"an unlimited meter has no limit", "enterprise", "", "llm_tokens", 5, "true 5 nil nil enterprise "},
		{"the billing status is passed through", "growth", "past_due", "api_calls", 0, "true 0 1000000 1000000 growth past_due"},
	}
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		testenv.EachRedis(t, func(t *testing.T, rdb *redisconn.Client) {
			gateAnswers(t, newFixture(t, db, rdb), cases, show)
		})
	})
}

type gateCase struct {
	name, plan, status, meter string
	used                      int64
	want                      string // allowed used limit remaining plan status
}

func gateAnswers(t *testing.T, f *fixture, cases []gateCase, show func(*int64) string) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			org := f.org(t, tc.plan)
			f.setPlan(org, tc.plan, tc.status)
			if tc.used > 0 {
				f.record(t, org, ev(tc.meter, tc.used, "k"))
			}
			g := f.gate(t, org, tc.meter)
			got := fmt.Sprintf("%t %d %s %s %s %s", g.Allowed, g.Used, show(g.LimitValue()), show(g.Remaining()), g.PlanID, g.BillingStatus)
			if got != tc.want {
				t.Errorf("gate = %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := f.svc.Gate(context.Background(), f.org(t, "free"), "bogus", 1); apperr.CodeOf(err) != apperr.BadInput {
		t.Errorf("unknown meter: err = %v, want BAD_USER_INPUT", err)
	}
	for _, q := range []int64{0, -1, MaxQuantity + 1} {
		_, err := f.svc.Gate(context.Background(), f.org(t, "free"), "api_calls", q)
		if e, ok := apperr.As(err); !ok || e.Code != apperr.BadInput || e.Extensions["field"] != "quantity" {
			t.Errorf("quantity %d: err = %v, want BAD_USER_INPUT on quantity", q, err)
		}
	}
}

func TestGateSeesAPlanChangeWithinTheCacheTTL(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db, nil)
		org := f.org(t, "free")
		f.record(t, org, ev("api_calls", 1000, "fill"))
		if f.gate(t, org, "api_calls").Allowed {
			t.Fatal("free org at its limit allowed")
		}
		f.plans.set(org, "starter", "active") // billing changed, cache not told
		if f.gate(t, org, "api_calls").Allowed {
			t.Error("the cached plan was not used within its TTL")
		}
		f.clock.Advance(PlanCacheTTL)
		if g := f.gate(t, org, "api_calls"); !g.Allowed || g.PlanID != "starter" {
			t.Errorf("after the cache TTL: %+v, want the starter plan", g)
		}
	})
}

// outage is a fixture on a private Redis the test can flush, stop and
// restart.
func outage(t *testing.T, db *store.DB) (*fixture, *miniredis.Miniredis) {
	m := miniredis.RunT(t)
	rdb := redisconn.New(redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1}), testenv.RedisPrefix())
	t.Cleanup(func() { rdb.Close() })
	return newFixture(t, db, rdb), m
}

func TestGateAndCountsSurviveARedisOutage(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		f, m := outage(t, db)
		org := f.org(t, "free")
		key := f.svc.counters.key(counterID{org, keyOf("api_calls", periodStart("monthly", testNow))})
		mirrored := func() string { return m.HGet(key, "u") }
		check := func(step string, want int64) {
			t.Helper()
			if g := f.gate(t, org, "api_calls"); g.Used != want || g.Allowed != (want < 1000) {
				t.Errorf("%s: gate %d (allowed %t), want %d", step, g.Used, g.Allowed, want)
			}
			if got := f.used(t, org, "api_calls"); got != want {
				t.Errorf("%s: usage %d, want %d", step, got, want)
			}
		}

		f.record(t, org, batch("api_calls", "first", 10)...)
		check("Redis up", 10)
		if mirrored() != "10" {
			t.Errorf("Redis holds %q after recording, want 10", mirrored())
		}

		m.FlushAll()
		check("Redis flushed", 10)
		if mirrored() != "10" {
			t.Errorf("the gate did not warm Redis after a flush: %q", mirrored())
		}

		m.Close()
		f.record(t, org, batch("api_calls", "during", 5)...)
		check("Redis down", 15)
		// Hard limits hold without Redis: they are enforced in SQL.
		res := f.record(t, org, ev("api_calls", 990, "too-much"), ev("api_calls", 985, "just-fits"))
		if res.Accepted != 1 || len(res.Rejected) != 1 {
			t.Errorf("hard limit while Redis is down: %+v", res)
		}
		check("Redis down, at the limit", 1000)
		if f.svc.RedisFaults() == 0 {
			t.Error("Redis failures were not counted")
		}

		// Redis comes back with the counter it had before the outage.
		if err := m.Restart(); err != nil {
			t.Fatal(err)
		}
		if mirrored() != "10" {
			t.Fatalf("test setup: restarted Redis holds %q, want the stale 10", mirrored())
		}
		check("Redis back with stale data", 1000)
		if err := f.svc.ResyncCounters(ctx); err != nil {
			t.Fatalf("resync: %v", err)
		}
		if mirrored() != "1000" {
			t.Errorf("after resync Redis holds %q, want 1000", mirrored())
		}
		check("after resync", 1000)

		m.FlushAll()
		if err := f.svc.RebuildAllCounters(ctx); err != nil {
			t.Fatalf("rebuild: %v", err)
		}
		if mirrored() != "1000" {
			t.Errorf("after rebuild Redis holds %q, want 1000", mirrored())
		}
		if got := m.HGet(f.svc.counters.key(counterID{org, keyOf("storage_bytes", allTime)}), "u"); got != "0" {
			t.Errorf("rebuild left storage_bytes at %q, want 0", got)
		}
	})
}

func TestGateRepairsAStaleCounterOnceRedisAnswersAgain(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f, m := outage(t, db)
		org := f.org(t, "starter")
		key := f.svc.counters.key(counterID{org, keyOf("api_calls", periodStart("monthly", testNow))})
		f.record(t, org, ev("api_calls", 7, "a"))
		m.Close()
		f.record(t, org, ev("api_calls", 3, "b")) // Redis misses this one
		if err := m.Restart(); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(2 * redisBackoff)
		if g := f.gate(t, org, "api_calls"); g.Used != 10 {
			t.Errorf("gate %d, want 10", g.Used)
		}
		if got := m.HGet(key, "u"); got != "10" {
			t.Errorf("the gate left Redis at %q, want 10", got)
		}
		if f.svc.counters.anyDirty.Load() {
			t.Error("counter still marked dirty after the gate repaired it")
		}
	})
}

func TestCountersNeverGoBackInTime(t *testing.T) {
	m, rdb := testenv.MiniRedisServer(t)
	c := newCounters(rdb, clock.NewFake(testNow), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	k := keyOf("api_calls", periodStart("monthly", testNow))
	key := c.key(counterID{"org", k})
	// Two writers finish in the wrong order: the older value lands last.
	for _, v := range []counter{{used: 20, version: 2}, {used: 10, version: 1}} {
		if err := c.store(ctx, "org", map[rollupKey]counter{k: v}); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.HGet(key, "u"); got != "20" {
		t.Errorf("counter %q after an older write, want 20", got)
	}
	if ttl := m.TTL(key); ttl <= 0 || ttl > counterTTL {
		t.Errorf("counter TTL %v, want within %v", ttl, counterTTL)
	}
}

func TestRunWritesDirtyCountersBack(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f, m := outage(t, db)
		org := f.org(t, "starter")
		key := f.svc.counters.key(counterID{org, keyOf("api_calls", periodStart("monthly", testNow))})
		m.Close()
		f.record(t, org, ev("api_calls", 4, "a"))
		if err := m.Restart(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		f.svc.resyncEvery = 10 * time.Millisecond
		go f.svc.Run(ctx)
		deadline := time.Now().Add(5 * time.Second)
		for m.HGet(key, "u") != "4" {
			if time.Now().After(deadline) {
				t.Fatalf("Run did not write the counter back within 5s (Redis holds %q)", m.HGet(key, "u"))
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// A Redis restored from an older snapshot (or failed over to a lagging
// replica) holds counters behind the database. Once the restart watcher has
// seen it, the gate answers from the rollups again, and the rebuilt counters
// are the database's.
func TestTheGateStopsLyingOnceARestoredRedisIsNoticed(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		m, rdb := testenv.MiniRedisServer(t)
		f := newFixture(t, db, rdb)
		w := redisconn.NewWatcher(rdb, f.svc.log)
		w.OnRestart(f.svc.RedisRestarted)
		look := func() {
			t.Helper()
			if err := w.Check(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		look()
		org := f.org(t, "free")
		g := f.gate(t, org, "api_calls")
		if !g.Limit.Hard || g.Limit.Unlimited {
			t.Fatalf("the free plan's api_calls limit is %+v; this test needs a hard one", g.Limit)
		}
		limit := g.Limit.Limit
		early := limit * 9 / 10
		f.record(t, org, ev("api_calls", early, "early"))
		restore := testenv.SnapshotRedis(t, m)
		look()
		f.record(t, org, ev("api_calls", limit-early, "late"))
		if g := f.gate(t, org, "api_calls"); g.Used != limit || g.Allowed {
			t.Fatalf("before the restore: gate %d (allowed %t), want %d and refused", g.Used, g.Allowed, limit)
		}

		restore()
		if g := f.gate(t, org, "api_calls"); g.Used != early {
			t.Fatalf("the restored Redis answered %d; the test shows nothing unless it answers the snapshot's %d", g.Used, early)
		}
		look()
		if g := f.gate(t, org, "api_calls"); g.Used != limit || g.Allowed {
			t.Fatalf("after the restart was noticed: gate %d (allowed %t), want %d and refused", g.Used, g.Allowed, limit)
		}
		if f.svc.counters.stale.Load() {
			t.Fatal("counters still marked stale after a rebuild that succeeded")
		}
		key := f.svc.counters.key(counterID{org, keyOf("api_calls", periodStart("monthly", testNow))})
		if got, want := m.HGet(key, "u"), strconv.FormatInt(limit, 10); got != want {
			t.Fatalf("the rebuilt counter holds %q, want the database's %s", got, want)
		}
	})
}

// blockingPlans is a PlanSource whose loads after the first wait for
// release, counting every load.
type blockingPlans struct {
	loads   atomic.Int64
	release chan struct{}
	planID  atomic.Value // string
	catalog *plans.Catalog
}

func (b *blockingPlans) PlanOf(ctx context.Context, orgID string) (plans.Plan, string, error) {
	if b.loads.Add(1) > 1 {
		select {
		case <-b.release:
		case <-ctx.Done():
			return plans.Plan{}, "", ctx.Err()
		}
	}
	p, _ := b.catalog.ByID(b.planID.Load().(string))
	return p, "", nil
}

// A plan past half its cache TTL is read again in the background: callers
// keep getting the cached plan without waiting for the database, and the
// change the read brings is served once it lands, before the TTL is out.
func TestPlanCacheRefreshesAheadWithoutMakingCallersWait(t *testing.T) {
	src := &blockingPlans{release: make(chan struct{}), catalog: plans.Default()}
	src.planID.Store("free")
	clk := clock.NewFake(testNow)
	c := NewPlanCache(src, clk, PlanCacheTTL)
	ctx := context.Background()
	if p, _, err := c.PlanOf(ctx, "org"); err != nil || p.ID != "free" {
		t.Fatalf("first read: %v, %v", p.ID, err)
	}
	src.planID.Store("starter") // billing changed the plan, the cache was not told
	clk.Advance(PlanCacheTTL * 6 / 10)
	if p, _, err := c.PlanOf(ctx, "org"); err != nil || p.ID != "free" {
		t.Fatalf("read past half the TTL: %v, %v; want the cached free plan at once", p.ID, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for src.loads.Load() < 2 { // the refresh has started, in the background
		if time.Now().After(deadline) {
			t.Fatal("no refresh started past half the TTL")
		}
		runtime.Gosched()
	}
	for range 3 { // the refresh is blocked in the database: nobody waits for it
		if p, _, err := c.PlanOf(ctx, "org"); err != nil || p.ID != "free" {
			t.Fatalf("read while the refresh is in flight: %v, %v; want the cached free plan at once", p.ID, err)
		}
	}
	if n := src.loads.Load(); n != 2 {
		t.Fatalf("%d loads, want the first and one refresh shared by the reads after half the TTL", n)
	}
	close(src.release)
	for {
		p, _, err := c.PlanOf(ctx, "org")
		if err != nil {
			t.Fatal(err)
		}
		if p.ID == "starter" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the refreshed plan never replaced the cached one")
		}
		runtime.Gosched()
	}
}

// The gate of quantity q answers what consumeUsage of q units would, at
// every arithmetic edge: totals at, just under and past a limit and at and
// next to the largest int64, quantities of 1, the largest, exactly to the
// limit and to 2^63−1 and one past each, under a hard and a soft limit of 0, ordinary hard
// and soft limits, a hard limit at the largest int64 and no limit, on a
// monthly meter and on a running total. consumeUsage of 0 is judged by the
// gate's decision too (the gate takes no 0; a quantity past MaxQuantity is
// invalid input to both, judged by no limit). The gate
// used to compute used + 1 unchecked, so at the largest total it wrapped
// around and answered allowed where consume refuses (QUANTITY_OUT_OF_RANGE).
func TestGateAnswersWhatConsumeWouldAtEveryEdge(t *testing.T) {
	const top = math.MaxInt64
	limits := map[string]string{ // plan: its limit on every meter
		"free":      "{ limit: 1000, hard: true }", // hard
		"soft":      "{ limit: 1000, hard: false }",
		"hard_zero": "{ limit: 0, hard: true }",
		"soft_zero": "{ limit: 0, hard: false }",
		"hard_top":  "{ limit: 9223372036854775807, hard: true }",
		"unlimited": "{ unlimited: true }",
	}
	file := "meters:\n  - { name: api_calls, reset: monthly }\n  - { name: storage_bytes, reset: never }\nplans:\n"
	for id, limit := range limits {
		file += fmt.Sprintf("  - { id: %s, name: %s, price_cents: 0, currency: usd, interval: month, rate_limit_per_second: 10, webhooks: 0,"+
			" limits: { api_calls: %s, storage_bytes: %s } }\n", id, id, limit, limit)
	}
	catalog, err := plans.Parse([]byte(file), "yaml")
	if err != nil {
		t.Fatal(err)
	}
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixtureOf(t, db, nil, catalog)
		for _, plan := range catalog.Plans() {
			for _, meter := range catalog.Meters() {
				l := limitOf(plan, meter)
				used := []int64{0, 1, top - 1, top}
				if !l.Unlimited {
					used = append(used, l.Limit-1, l.Limit, l.Limit+1) // the last wraps below 0 at the top
				}
				used = slices.DeleteFunc(used, func(n int64) bool { return n < 0 })
				slices.Sort(used)
				for _, n := range slices.Compact(used) {
					quantities := []int64{1, 0, MaxQuantity, top - n, top - n + 1} // the last passes the int64 range
					if !l.Unlimited {
						quantities = append(quantities, l.Limit-n, l.Limit-n+1) // to the limit and one past it
					}
					quantities = slices.DeleteFunc(quantities, func(q int64) bool { return q < 0 || q > MaxQuantity })
					slices.Sort(quantities)
					for _, q := range slices.Compact(quantities) {
						t.Run(fmt.Sprintf("%s %s at %d, quantity %d", plan.ID, meter.Name, n, q), func(t *testing.T) {
							org := f.org(t, plan.ID)
							if n > 0 {
								err := f.db.Create(&UsageRollup{OrgID: org, Meter: meter.Name, PeriodStart: periodStart(meter.Reset, testNow),
									Used: n, Version: 1, UpdatedAt: testNow}).Error
								if err != nil {
									t.Fatal(err)
								}
							}
							var g Gate
							if q > 0 {
								g = f.gateOf(t, org, meter.Name, q)
							}
							got := consumed(t)(f.svc.Consume(context.Background(), org, ev(meter.Name, q, "k")))
							if want := admission(l, n, q); got != want {
								t.Errorf("consume answered %q, the gate's decision for quantity %d %q", got, q, want)
							}
							if q > 0 && (g.Allowed != (got == "") || !g.Allowed && g.Reason != ReasonUsageLimitExceeded) {
								t.Errorf("gate of %d allowed %t (%s), consume of %d %q", q, g.Allowed, g.Reason, q, got)
							}
						})
					}
				}
			}
		}
	})
}

// consumed is what a consumption answered: "" when allowed, else the code
// of its refusal (CodeUsageLimitExceeded for a quota, or the field error's).
func consumed(t *testing.T) func(c Consumption, err error) string {
	return func(c Consumption, err error) string {
		t.Helper()
		if fe, ok := apperr.AsFieldErrors(err); ok && len(fe) == 1 {
			return fe[0].Code
		}
		switch {
		case err != nil:
			t.Fatalf("consume: %v", err)
		case c.Allowed:
			return ""
		case c.Reason == ReasonUsageLimitExceeded:
			return CodeUsageLimitExceeded
		}
		t.Fatalf("consume answered %+v", c)
		return ""
	}
}
