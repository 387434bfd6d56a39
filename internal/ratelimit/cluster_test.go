package ratelimit

import (
	"context"
	"strings"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// TestRateLimitKeysStayUnderThePrefixOnEveryMaster: the limiter's state on a
// cluster lands on several masters, and every key it writes is under the
// key prefix (redis_rate's own "rate:" taken off), so REDIS_KEY_PREFIX
// scopes it and each key is held to its own limit.
func TestRateLimitKeysStayUnderThePrefixOnEveryMaster(t *testing.T) {
	rdb := testenv.RedisClusterClient(t)
	l := New(rdb, quiet())
	ctx := context.Background()
	const keys, rate = 30, 5
	for range keys {
		key := store.NewID()
		passed := 0
		for range 2 * rate {
			if l.Allow(ctx, key, rate).Allowed {
				passed++
			}
		}
		if passed < rate || passed > rate+1 {
			t.Fatalf("key %s: %d of %d passed at %d a second, want the burst of %d", key, passed, 2*rate, rate, rate)
		}
	}
	shards, err := rdb.Shards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	holding := 0
	for _, sh := range shards {
		all, err := sh.Node.Keys(ctx, "*ratelimit:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		mine := 0
		for _, k := range all {
			if strings.HasPrefix(k, rdb.Prefix()) {
				mine++
			} else if strings.Contains(k, rdb.Prefix()) {
				t.Errorf("key %q is outside the prefix %q", k, rdb.Prefix())
			}
		}
		if mine > 0 {
			holding++
		}
	}
	if holding < 2 {
		t.Errorf("%d keys landed on %d of %d masters; they should spread", keys, holding, len(shards))
	}
}
