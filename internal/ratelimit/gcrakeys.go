package ratelimit

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"
)

// gcraPrefix is what redis_rate puts before every key it is given.
const gcraPrefix = "rate:"

// gcraKeys hands redis_rate the Redis it keeps its state in, with the
// "rate:" it puts before every key taken off again: the keys Limiter gives it
// are already under Tollgate's prefix (redisconn), and "rate:tollgate:…"
// would sit outside it, where REDIS_KEY_PREFIX and the tests' per-test
// prefixes could not scope it. Each call touches one key, so it stays in one
// slot on a cluster.
type gcraKeys struct{ redis.UniversalClient }

func unprefixed(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = strings.TrimPrefix(k, gcraPrefix)
	}
	return out
}

func (g gcraKeys) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return g.UniversalClient.Eval(ctx, script, unprefixed(keys), args...)
}

func (g gcraKeys) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return g.UniversalClient.EvalSha(ctx, sha1, unprefixed(keys), args...)
}

func (g gcraKeys) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return g.UniversalClient.EvalRO(ctx, script, unprefixed(keys), args...)
}

func (g gcraKeys) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return g.UniversalClient.EvalShaRO(ctx, sha1, unprefixed(keys), args...)
}

func (g gcraKeys) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return g.UniversalClient.Del(ctx, unprefixed(keys)...)
}
