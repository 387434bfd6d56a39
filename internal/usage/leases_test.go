package usage

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// replica is a usage service sharing db and rdb with the test's other
// replicas, keeping gate leases of ttl until the test ends.
func replica(t *testing.T, db *store.DB, rdb *redisconn.Client, ttl time.Duration) *fixture {
	t.Helper()
	f := newFixture(t, db, rdb)
	f.svc.LeaseGates(ttl)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.svc.counters.leases.listen(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the replica's lease channel", func() bool { return f.svc.counters.leases.listening.Load() })
	return f
}

// waitFor polls cond until it holds, failing the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after 5 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// commands counts the Redis commands a client sends (a pipeline's each).
type commands struct{ n atomic.Int64 }

func (c *commands) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *commands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *commands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(int64(len(cmds))); return next(ctx, cmds) }
}

// countCommands counts what rdb sends from now on. On a cluster the hook
// goes on every node's client too.
func countCommands(rdb *redisconn.Client) *commands {
	c := &commands{}
	rdb.AddHook(c)
	if cc, ok := rdb.UniversalClient.(*redis.ClusterClient); ok {
		cc.OnNewNode(func(n *redis.Client) { n.AddHook(c) })
	}
	return c
}

func TestAReplicaHoldingALeaseAnswersGatesWithoutRedisAndSeesItsOwnWrites(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		testenv.EachRedis(t, func(t *testing.T, rdb *redisconn.Client) {
			// A lease far longer than the test, so no renewal falls in it.
			f := replica(t, db, rdb, 10*time.Second)
			org := f.org(t, "free")
			f.record(t, org, batch("api_calls", "first", 5)...)
			if g := f.gate(t, org, "api_calls"); g.Used != 5 {
				t.Fatalf("first gate: %d used, want 5", g.Used)
			}
			sent := countCommands(rdb)
			for i := range 100 {
				if g := f.gate(t, org, "api_calls"); g.Used != 5 || !g.Allowed {
					t.Fatalf("gate %d under the lease: %+v, want 5 used and allowed", i, g)
				}
			}
			if n := sent.n.Load(); n != 0 {
				t.Fatalf("100 gates under a lease sent %d Redis commands, want none", n)
			}
			// Its own write is seen by its next gate.
			f.record(t, org, batch("api_calls", "second", 3)...)
			if g := f.gate(t, org, "api_calls"); g.Used != 8 {
				t.Fatalf("gate after this replica's write: %d used, want 8", g.Used)
			}
		})
	})
}

func TestAWriteOnOneReplicaIsSeenAtOnceByAnotherHoldingTheLease(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		testenv.EachRedis(t, func(t *testing.T, rdb *redisconn.Client) {
			const ttl = 10 * time.Second
			a, b := replica(t, db, rdb, ttl), replica(t, db, rdb, ttl)
			org := a.org(t, "free")
			b.plans.set(org, "free", "")
			a.record(t, org, batch("api_calls", "a", 2)...)
			for range 2 { // the second answers from the lease
				if g := a.gate(t, org, "api_calls"); g.Used != 2 {
					t.Fatalf("replica A's gate: %d used, want 2", g.Used)
				}
			}
			holder, err := rdb.Get(context.Background(), leaseKey(a.svc.counters.key(counterID{org, keyOf("api_calls", periodStart("monthly", testNow))}))).Result()
			if err != nil || holder != a.svc.counters.leases.self {
				t.Fatalf("the counter's lease is held by %q (%v), want replica A", holder, err)
			}

			answered := testutil.ToFloat64(leaseRevocationsAnswered)
			start := time.Now()
			b.record(t, org, batch("api_calls", "b", 7)...)
			took := time.Since(start)
			if g := a.gate(t, org, "api_calls"); g.Used != 9 {
				t.Fatalf("replica A's gate right after replica B recorded: %d used, want 9", g.Used)
			}
			if took > ttl/2 || testutil.ToFloat64(leaseRevocationsAnswered) != answered+1 {
				t.Fatalf("replica B's write took %s and %v revocations were answered, want one answered long before the %s lease ends",
					took, testutil.ToFloat64(leaseRevocationsAnswered)-answered, ttl)
			}
			// B reads Redis while A holds the lease, and sees the same.
			if g := b.gate(t, org, "api_calls"); g.Used != 9 {
				t.Fatalf("replica B's gate: %d used, want 9", g.Used)
			}
		})
	})
}

func TestAWriteWaitsOutTheLeaseOfAReplicaThatDoesNotAnswer(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb *redisconn.Client) {
		db := testenv.DB(t)
		const ttl = 400 * time.Millisecond
		b := replica(t, db, rdb, ttl)
		// A takes a lease but never hears a revocation: its channel is
		// not subscribed (a replica stalled, or its connection lost
		// unnoticed).
		a := newFixture(t, db, rdb)
		a.svc.LeaseGates(ttl)
		a.svc.counters.leases.listening.Store(true)
		org := a.org(t, "free")
		b.plans.set(org, "free", "")
		a.record(t, org, batch("api_calls", "a", 2)...)
		if g := a.gate(t, org, "api_calls"); g.Used != 2 {
			t.Fatalf("replica A's gate: %d used, want 2", g.Used)
		}
		if _, ok, _ := a.svc.counters.leases.get(a.svc.counters.key(counterID{org, keyOf("api_calls", periodStart("monthly", testNow))})); !ok {
			t.Fatal("test setup: replica A holds no lease")
		}
		expired := testutil.ToFloat64(leaseRevocationsExpired)
		start := time.Now()
		b.record(t, org, batch("api_calls", "b", 7)...)
		took := time.Since(start)
		// B answered only once A's lease was over, so A no longer
		// answers from it.
		if g := a.gate(t, org, "api_calls"); g.Used != 9 {
			t.Fatalf("replica A's gate after replica B's write was acknowledged: %d used, want 9", g.Used)
		}
		if testutil.ToFloat64(leaseRevocationsExpired) != expired+1 {
			t.Fatal("the unanswered revocation was not counted as expired")
		}
		if took > 5*ttl {
			t.Fatalf("replica B's write waited %s for a lease of %s", took, ttl)
		}
	})
}

func TestAStoppedReplicaGivesItsLeasesBack(t *testing.T) {
	db := testenv.DB(t)
	rdb := testenv.Redis(t)
	const ttl = 10 * time.Second
	a := newFixture(t, db, rdb)
	a.svc.LeaseGates(ttl)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.svc.counters.leases.listen(ctx); close(done) }()
	waitFor(t, "replica A's lease channel", func() bool { return a.svc.counters.leases.listening.Load() })
	b := replica(t, db, rdb, ttl)
	org := a.org(t, "free")
	b.plans.set(org, "free", "")
	a.record(t, org, batch("api_calls", "a", 1)...)
	a.gate(t, org, "api_calls")
	// Its own write drops its copy, not its lease.
	a.record(t, org, batch("api_calls", "a2", 1)...)
	lease := leaseKey(a.svc.counters.key(counterID{org, keyOf("api_calls", periodStart("monthly", testNow))}))
	if n, _ := rdb.Exists(context.Background(), lease).Result(); n != 1 {
		t.Fatal("test setup: replica A took no lease")
	}
	stop()
	<-done
	if n, _ := rdb.Exists(context.Background(), lease).Result(); n != 0 {
		t.Fatal("replica A stopped without giving its lease back")
	}
	answered, expired := testutil.ToFloat64(leaseRevocationsAnswered), testutil.ToFloat64(leaseRevocationsExpired)
	b.record(t, org, batch("api_calls", "b", 3)...)
	if testutil.ToFloat64(leaseRevocationsAnswered) != answered || testutil.ToFloat64(leaseRevocationsExpired) != expired {
		t.Fatal("replica B's write revoked a lease that was given back")
	}
	if g := a.gate(t, org, "api_calls"); g.Used != 5 {
		t.Fatalf("the stopped replica's gate: %d used, want 5", g.Used)
	}
}

// TestAReadRacingAWriteKeepsNoLease: a lease read that began before a write
// of its counter returned (or a revocation of it arrived) may hold the value
// from before the write, so it is not kept.
func TestAReadRacingAWriteKeepsNoLease(t *testing.T) {
	l := newCounterLeases(nil, nil, time.Second)
	l.listening.Store(true)
	const key = "usage:{o}:api_calls:2026-03"
	gen := l.stripe(key).Load()
	l.drop(key) // the write returns while the read is on its way
	l.install(key, 1, time.Now().Add(time.Hour), gen)
	if n, ok, _ := l.get(key); ok {
		t.Fatalf("a read older than a write installed a lease answering %d", n)
	}
	l.install(key, 2, time.Now().Add(time.Hour), l.stripe(key).Load())
	if n, ok, _ := l.get(key); !ok || n != 2 {
		t.Fatalf("a read after the write: %d (%t), want 2 from the lease", n, ok)
	}
}

// TestARedisRestartDropsTheLeases: Redis loses its data, leases included,
// so other replicas' writes no longer know to revoke them. Once the watcher
// notices, the holder answers from Redis again.
func TestARedisRestartDropsTheLeases(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		m := miniredis.RunT(t)
		client := func() *redisconn.Client {
			c := redisconn.New(redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1}), testenv.RedisPrefix())
			t.Cleanup(func() { c.Close() })
			return c
		}
		const ttl = 10 * time.Second
		rdbA := client()
		a, b := replica(t, db, rdbA, ttl), replica(t, db, client(), ttl)
		w := redisconn.NewWatcher(rdbA, a.svc.log)
		w.OnRestart(a.svc.RedisRestarted)
		look := func() {
			t.Helper()
			if err := w.Check(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		look()
		org := a.org(t, "free")
		b.plans.set(org, "free", "")
		a.record(t, org, batch("api_calls", "a", 2)...)
		a.gate(t, org, "api_calls")

		m.FlushAll()
		b.record(t, org, batch("api_calls", "b", 3)...)
		look()
		if g := a.gate(t, org, "api_calls"); g.Used != 5 {
			t.Fatalf("replica A's gate once the restart was noticed: %d used, want 5", g.Used)
		}
	})
}

// TestLeasesTurnedOffReadRedisForEveryGate: USAGE_GATE_LEASE=0 (LeaseGates(0))
// takes no lease, so every gate asks Redis.
func TestLeasesTurnedOffReadRedisForEveryGate(t *testing.T) {
	db, rdb := testenv.DB(t), testenv.Redis(t)
	f := newFixture(t, db, rdb)
	f.svc.LeaseGates(0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.svc.counters.leases.listen(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	org := f.org(t, "free")
	f.record(t, org, batch("api_calls", "a", 2)...)
	f.gate(t, org, "api_calls")
	sent := countCommands(rdb)
	for i := range 3 {
		before := sent.n.Load()
		if g := f.gate(t, org, "api_calls"); g.Used != 2 {
			t.Fatalf("gate %d: %d used, want 2", i, g.Used)
		}
		if sent.n.Load() == before {
			t.Fatalf("gate %d with leases off sent no Redis command", i)
		}
	}
	if n, _ := rdb.Exists(context.Background(), leaseKey(f.svc.counters.key(counterID{org, keyOf("api_calls", periodStart("monthly", testNow))}))).Result(); n != 0 {
		t.Fatal("a lease was taken with leases off")
	}
}

// A lease past half its life is renewed in the background: the gates of a
// busy counter go on answering from memory, none waiting for Redis, even
// when Redis takes a tenth of the lease's life to answer. Before, the gate
// that found the lease past half its life renewed it itself, once per half
// life.
func TestALeaseIsRenewedWithoutAGateWaitingForRedis(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb *redisconn.Client) {
		const ttl = 300 * time.Millisecond
		const delay = ttl / 10
		f := replica(t, testenv.DB(t), rdb, ttl)
		org := f.org(t, "free")
		f.record(t, org, batch("api_calls", "a", 5)...)
		f.gate(t, org, "api_calls") // takes the lease
		testenv.DelayScripts(rdb, delay)
		sent := countCommands(rdb)
		var gates, waited int
		for end := time.Now().Add(3 * ttl); time.Now().Before(end); gates++ {
			start := time.Now()
			if g := f.gate(t, org, "api_calls"); g.Used != 5 {
				t.Fatalf("gate %d: %d used, want 5", gates, g.Used)
			}
			if time.Since(start) >= delay {
				waited++
			}
			time.Sleep(time.Millisecond) // a busy counter, not a spinning one
		}
		t.Logf("%d gates, %d waited %s or more, %d Redis commands", gates, waited, delay, sent.n.Load())
		if n := sent.n.Load(); n < 2 {
			t.Fatalf("%d Redis commands over three lease lives; the lease was not renewed", n)
		}
		// A stall of the machine can still hold up a gate on its own.
		if waited > 1 {
			t.Errorf("%d of %d gates waited %s or more while the lease was renewed, want none", waited, gates, delay)
		}
	})
}

// A lease renewed in the background that finds its counter gone from Redis
// (lost with Redis's data, or evicted) ends this replica's copy at once, so
// the next gate reads the database and writes the counter back, instead of
// answering from memory for the rest of the lease.
func TestARenewalThatFindsTheCounterGoneEndsTheCopy(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb *redisconn.Client) {
		const ttl = 20 * time.Second
		f := replica(t, testenv.DB(t), rdb, ttl)
		org := f.org(t, "free")
		f.record(t, org, batch("api_calls", "a", 2)...)
		f.gate(t, org, "api_calls") // takes the lease
		id := counterID{org, keyOf("api_calls", periodStart("monthly", testNow))}
		key := f.svc.counters.key(id)
		l := f.svc.counters.leases
		// Past half its life, with 9 s left: longer than waitFor waits.
		l.install(key, 2, time.Now().Add(9*time.Second), l.stripe(key).Load())
		if err := rdb.Del(context.Background(), key).Err(); err != nil {
			t.Fatal(err)
		}
		if g := f.gate(t, org, "api_calls"); g.Used != 2 {
			t.Fatalf("the gate that has the lease renewed: %d used, want 2 from the lease", g.Used)
		}
		waitFor(t, "the copy of a counter Redis lost to be dropped", func() bool {
			_, ok, _ := l.get(key)
			return !ok
		})
		if g := f.gate(t, org, "api_calls"); g.Used != 2 {
			t.Fatalf("the next gate: %d used, want 2 from the database", g.Used)
		}
		if n, err := rdb.HGet(context.Background(), key, "u").Int64(); err != nil || n != 2 {
			t.Fatalf("the counter in Redis after that gate: %d, %v; want it written back as 2", n, err)
		}
	})
}
