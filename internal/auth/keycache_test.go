package auth_test

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// replica is one Tollgate process's view of the API keys.
func replica(t *testing.T, db *store.DB, rdb *redisconn.Client) *auth.Keys {
	return replicaAt(t, db, rdb, clock.Real{})
}

// replicaAt is replica on the clock clk.
func replicaAt(t *testing.T, db *store.DB, rdb *redisconn.Client, clk clock.Clock) *auth.Keys {
	t.Helper()
	k := auth.NewKeys(db, clk, false)
	k.ShareChanges(rdb, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go k.Run(ctx)
	return k
}

// countKeyReads counts SELECTs on api_keys.
func countKeyReads(t *testing.T, db *store.DB) *atomic.Int64 {
	return countOnKeys(t, "reads", db.Callback().Query().Before("gorm:query").Register)
}

// countKeyTouches counts UPDATEs of api_keys (last_used_at).
func countKeyTouches(t *testing.T, db *store.DB) *atomic.Int64 {
	return countOnKeys(t, "touches", db.Callback().Update().Before("gorm:update").Register)
}

// countOnKeys counts the statements on api_keys that a GORM callback
// registered with register sees.
func countOnKeys(t *testing.T, what string, register func(string, func(*gorm.DB)) error) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	if err := register("test:count_key_"+what+"_"+t.Name(), func(tx *gorm.DB) {
		if tx.Statement.Table == "api_keys" {
			n.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	return &n
}

func newKey(t *testing.T, db *store.DB, k *auth.Keys) (auth.APIKey, string) {
	t.Helper()
	org, err := orgs.NewService(db, clock.Real{}).Ensure(context.Background(), "ext-"+store.NewID(), "Acme", "")
	if err != nil {
		t.Fatal(err)
	}
	key, secret, err := k.Create(context.Background(), org, auth.CreateKeyInput{Name: "search backend", Scopes: []auth.Scope{auth.UsageWrite}, CreatorScopes: auth.AllScopes})
	if err != nil {
		t.Fatal(err)
	}
	return key, secret
}

// eventually polls cond for up to 5 s: ten change polls, and half the 10 s
// for which a key is remembered at most, so a replica that only forgot the
// key when its memory expired still fails.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("after 5 s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rememberedKey starts a replica with a new key, counting reads of keys,
// and returns once the replica remembers the key between requests.
func rememberedKey(t *testing.T, db *store.DB) (k *auth.Keys, secret string, reads *atomic.Int64) {
	t.Helper()
	k, _, secret, reads = rememberedKeyAt(t, db, clock.Real{})
	return k, secret, reads
}

// A host backend sends its key with every request; after the first, the key
// is not looked up in the database again.
func TestAKeyIsLookedUpOnceNotPerRequest(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		k, secret, reads := rememberedKey(t, db)
		ctx := context.Background()
		before := reads.Load()
		for range 100 {
			if _, f := k.Authenticate(ctx, secret); f != nil {
				t.Fatalf("key refused: %+v", f)
			}
		}
		if n := reads.Load() - before; n != 0 {
			t.Errorf("100 requests read the key %d times from the database, want 0", n)
		}
		if _, f := k.Authenticate(ctx, secret+"x"); f == nil || f.Reason != auth.ReasonUnknownKey {
			t.Errorf("a wrong secret gave %+v, want %s", f, auth.ReasonUnknownKey)
		}
	})
}

// Revoking a key stops it at once on the replica that revoked it and within
// about half a second on every other one, although both had it in memory.
func TestARevokedKeyStopsOnEveryReplica(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		rdb := testenv.Redis(t)
		a, b := replica(t, db, rdb), replica(t, db, rdb)
		key, secret := newKey(t, db, a)
		ctx := context.Background()
		reads := countKeyReads(t, db)
		for _, r := range []*auth.Keys{a, b} {
			eventually(t, "the key was never remembered", func() bool {
				before := reads.Load()
				if _, f := r.Authenticate(ctx, secret); f != nil {
					t.Fatalf("key refused before revocation: %+v", f)
				}
				return reads.Load() == before
			})
		}

		if _, err := a.Revoke(ctx, key.OrgID, key.ID); err != nil {
			t.Fatal(err)
		}
		if _, f := a.Authenticate(ctx, secret); f == nil || f.Reason != auth.ReasonRevokedKey {
			t.Fatalf("the revoking replica gave %+v, want %s at once", f, auth.ReasonRevokedKey)
		}
		eventually(t, "the other replica still accepts the revoked key", func() bool {
			_, f := b.Authenticate(ctx, secret)
			return f != nil && f.Reason == auth.ReasonRevokedKey
		})
	})
}

// A signing key registered on one replica is required on every other one.
func TestARegisteredSigningKeyReachesEveryReplica(t *testing.T) {
	db := testenv.DB(t)
	rdb := testenv.Redis(t)
	a, b := replica(t, db, rdb), replica(t, db, rdb)
	key, secret := newKey(t, db, a)
	ctx := context.Background()
	if _, f := b.Authenticate(ctx, secret); f != nil {
		t.Fatal(f)
	}
	if _, err := a.SetSigningKey(ctx, key.OrgID, key.ID, "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the other replica does not know the key must sign", func() bool {
		got, f := b.Authenticate(ctx, secret)
		return f == nil && got.SigningPublicKey != nil
	})
}

// While Redis is down no replica could hear of a revocation, so keys are
// checked in the database on every request.
func TestWithoutRedisEveryRequestAsksTheDatabase(t *testing.T) {
	db := testenv.DB(t)
	m := miniredis.RunT(t)
	rdb := redisconn.New(redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1}), testenv.RedisPrefix())
	t.Cleanup(func() { rdb.Close() })
	k := replica(t, db, rdb)
	_, secret := newKey(t, db, k)
	reads := countKeyReads(t, db)
	ctx := context.Background()
	eventually(t, "the key was never remembered", func() bool {
		before := reads.Load()
		k.Authenticate(ctx, secret)
		return reads.Load() == before
	})
	m.Close()
	eventually(t, "the key is still answered from memory with Redis down", func() bool {
		before := reads.Load()
		if _, f := k.Authenticate(ctx, secret); f != nil {
			t.Fatalf("key refused while Redis is down: %+v", f)
		}
		return reads.Load() == before+1
	})
}

// A host backend's threads send their first requests with a key at once:
// they share one database read of it and one last-use write, instead of
// each querying the database (as they would each time the key's memory
// expired).
func TestConcurrentFirstRequestsWithAKeyShareOneRead(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		k, _, reads := rememberedKey(t, db)
		ctx := context.Background()
		_, secret := newKey(t, db, k)
		reads.Store(0)
		touches := countKeyTouches(t, db)
		const callers = 64
		var refused atomic.Int64
		testenv.AtOnce(callers, func(int) {
			if _, f := k.Authenticate(ctx, secret); f != nil {
				refused.Add(1)
			}
		})
		if n := refused.Load(); n > 0 {
			t.Fatalf("%d of %d requests refused", n, callers)
		}
		// Callers scheduled after the first read ended find the key
		// remembered; none read it beside another.
		if n := reads.Load(); n > 2 {
			t.Errorf("%d concurrent requests read the key %d times from the database, want 1 (2 if a change poll emptied the memory meanwhile)", callers, n)
		}
		// The write runs in the background.
		eventually(t, "the key's last use was never written", func() bool { return touches.Load() >= 1 })
		if n := touches.Load(); n != 1 {
			t.Errorf("%d concurrent requests wrote the key's last use %d times, want 1", callers, n)
		}
	})
}

// rememberedKeyAt is rememberedKey on a replica on the clock clk, also
// returning the key; it returns once the key's last use is written too.
func rememberedKeyAt(t *testing.T, db *store.DB, clk clock.Clock) (k *auth.Keys, key auth.APIKey, secret string, reads *atomic.Int64) {
	t.Helper()
	k = replicaAt(t, db, testenv.Redis(t), clk)
	key, secret = newKey(t, db, k)
	reads = countKeyReads(t, db)
	ctx := context.Background()
	eventually(t, "the key was never remembered", func() bool {
		if _, f := k.Authenticate(ctx, secret); f != nil {
			t.Fatalf("key refused: %+v", f)
		}
		before := reads.Load()
		k.Authenticate(ctx, secret)
		return reads.Load() == before
	})
	// The key's last use is written in the background: wait for it, so
	// that a test counting writes of keys counts only its own.
	eventually(t, "the key's last use was never written", func() bool {
		var got auth.APIKey
		return db.Where("id = ?", key.ID).Take(&got).Error == nil && got.LastUsedAt != nil
	})
	return k, key, secret, reads
}

// holdKeyReads makes every read of api_keys wait until the returned release
// is called, telling started when one begins.
func holdKeyReads(t *testing.T, db *store.DB) (started <-chan struct{}, release func()) {
	return holdOnKeys(t, "reads", db.Callback().Query().Before("gorm:query").Register)
}

// holdOnKeys makes the statements on api_keys that a GORM callback
// registered with register sees wait until release is called (at the
// latest when the test ends), telling started when one begins.
func holdOnKeys(t *testing.T, what string, register func(string, func(*gorm.DB)) error) (started <-chan struct{}, release func()) {
	t.Helper()
	begun, gate := make(chan struct{}, 16), make(chan struct{})
	if err := register("test:hold_key_"+what+"_"+t.Name(), func(tx *gorm.DB) {
		if tx.Statement.Table == "api_keys" {
			select {
			case begun <- struct{}{}:
			default: // nobody is counting this many
			}
			<-gate
		}
	}); err != nil {
		t.Fatal(err)
	}
	var once atomic.Bool
	release = func() {
		if once.CompareAndSwap(false, true) {
			close(gate)
		}
	}
	t.Cleanup(release)
	return begun, release
}

// answersAtOnce fails unless k accepts secret without waiting for whatever
// holdOnKeys holds, and then started tells that a held statement began.
func answersAtOnce(t *testing.T, k *auth.Keys, secret string, started <-chan struct{}, what string) {
	t.Helper()
	answered := make(chan *auth.Failure, 1)
	go func() { _, f := k.Authenticate(context.Background(), secret); answered <- f }()
	select {
	case f := <-answered:
		if f != nil {
			t.Fatalf("key refused: %+v", f)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the request waited for the %s", what)
	}
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatalf("the %s never began", what)
	}
}

// A key used steadily is read again before its memory runs out, in the
// background: the request that finds it due is answered from memory while
// the read waits, and once the first memory would have expired the key is
// still remembered, without a read.
func TestARememberedKeyIsReadAgainWithoutARequestWaiting(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		clk := clock.NewFake(time.Now())
		k, _, secret, reads := rememberedKeyAt(t, db, clk)
		ctx := context.Background()
		started, release := holdKeyReads(t, db)

		clk.Advance(6 * time.Second) // past half of the 10 s the key is remembered
		before := reads.Load()
		answersAtOnce(t, k, secret, started, "key's read ahead")
		release()
		eventually(t, "the key was never read again", func() bool { return reads.Load() > before })

		clk.Advance(5 * time.Second) // 11 s after the first read, 5 after the second
		// The read ahead puts the key once it has its answer; until then
		// the request below may still find the first memory expired.
		eventually(t, "the key read ahead was not remembered", func() bool {
			before := reads.Load()
			if _, f := k.Authenticate(ctx, secret); f != nil {
				t.Fatalf("key refused: %+v", f)
			}
			return reads.Load() == before
		})
	})
}

// A read ahead that finds the key revoked (by a replica that could not
// announce it) forgets it then, not when its memory would have run out.
func TestAReadAheadThatFindsTheKeyRevokedForgetsIt(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		clk := clock.NewFake(time.Now())
		k, key, secret, _ := rememberedKeyAt(t, db, clk)
		ctx := context.Background()
		if err := db.Model(&auth.APIKey{}).Where("id = ?", key.ID).Update("revoked_at", clk.Now()).Error; err != nil {
			t.Fatal(err)
		}
		if _, f := k.Authenticate(ctx, secret); f != nil {
			t.Fatalf("before a read, the remembered key was refused: %+v", f) // the window the TTL bounds
		}
		clk.Advance(6 * time.Second)
		eventually(t, "the revoked key is still accepted", func() bool {
			_, f := k.Authenticate(ctx, secret)
			return f != nil && f.Reason == auth.ReasonRevokedKey
		})
	})
}

// The request that records a key's last use (once a minute) does not wait
// for that write.
func TestARequestDoesNotWaitForItsKeysLastUseToBeWritten(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		k := replica(t, db, testenv.Redis(t))
		_, secret := newKey(t, db, k)
		started, _ := holdOnKeys(t, "touches", db.Callback().Update().Before("gorm:update").Register)
		answersAtOnce(t, k, secret, started, "write of the key's last use")
	})
}
