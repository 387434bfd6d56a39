package signing

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-billing/tollgate/internal/redisconn"
)

// nonceTimeout bounds the Redis call so a hung Redis refuses signed requests
// quickly instead of holding them.
const nonceTimeout = time.Second

var errNoRedis = errors.New("no Redis configured for nonces")

// nonces remembers which nonces each API key has used. It lives in Redis, not
// in memory, so a request replayed against another replica is refused too.
type nonces struct {
	rdb *redisconn.Client
}

// parseNonce accepts only the 36-character hyphenated UUID form, in either
// case (uuidgen prints upper case on macOS), and returns it in lower case so
// the two spellings of one UUID are one nonce.
func parseNonce(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

// Nonces are spread over nonceBuckets hash tags ({n0} … {n255}), chosen by
// a hash of the API key and the nonce, so that on a Redis Cluster they spread
// over the masters while one script still sees a nonce and its bucket's mark
// together in one slot.
//
// Each bucket's mark (sinceKey) holds the unix second from which Redis
// remembers every nonce of the bucket; requests signed before it are
// refused, since any of them may have been used already. It has no expiry,
// so a master that lost its data (a restart without persistence, a flush, a
// failover to an empty replica) lacks the marks of its buckets, and the next
// claim in a bucket recreates its mark with the current time. A master
// restored from an older snapshot still has them: the restart watcher raises
// every mark then (forgetBefore).
const nonceBuckets = 256

// bucketTag is the hash tag of the bucket nonce falls in.
func bucketTag(keyID, nonce string) string {
	h := fnv.New32a()
	h.Write([]byte(keyID + ":" + nonce))
	return bucket(int(h.Sum32() % nonceBuckets))
}

// bucket is the hash tag of bucket i.
func bucket(i int) string { return "{n" + strconv.Itoa(i) + "}" }

// sinceKey is the mark of the bucket with tag (under the key prefix).
func sinceKey(tag string) string { return "nonce:" + tag + ":since" }

// nonceKey records one used nonce (under the key prefix).
func nonceKey(keyID, nonce string) string {
	return "nonce:" + bucketTag(keyID, nonce) + ":" + keyID + ":" + nonce
}

// eachBucket runs one command per bucket in one pipeline (on a cluster,
// one round trip per master) and returns the first error.
func (n nonces) eachBucket(ctx context.Context, cmd func(pipe redis.Pipeliner, mark string)) error {
	pipe := n.rdb.Pipeline()
	for i := range nonceBuckets {
		cmd(pipe, n.rdb.Key(sinceKey(bucket(i))))
	}
	_, err := pipe.Exec(ctx)
	return err
}

// markIntact records, when a verifier starts, that nonce memory has no gap
// known to this process. Best effort: without Redis, claim sets the marks.
func (n nonces) markIntact(ctx context.Context) {
	if n.rdb == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, nonceTimeout)
	defer cancel()
	_ = n.eachBucket(ctx, func(pipe redis.Pipeliner, mark string) { pipe.SetNX(ctx, mark, 0, 0) })
}

// raiseScript moves a mark forward, never back: two replicas noticing one
// restart at different moments leave the later mark.
var raiseScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
`)

// forgetBefore moves every bucket's mark to since: Redis, or one master of
// a cluster, may have come back from an older snapshot, holding marks but
// not the nonces claimed after them, so every request signed before since
// may have been used already. All buckets, not only the restarted master's:
// the verifier refuses those requests in memory anyway (resetAt), and the
// marks make every replica agree.
func (n nonces) forgetBefore(ctx context.Context, since int64) error {
	if n.rdb == nil {
		return errNoRedis
	}
	ctx, cancel := context.WithTimeout(ctx, nonceTimeout)
	defer cancel()
	// EVAL, not EVALSHA: a master that just restarted has lost its scripts,
	// and this runs once per restart.
	return n.eachBucket(ctx, func(pipe redis.Pipeliner, mark string) {
		raiseScript.Eval(ctx, pipe, []string{mark}, since)
	})
}

// claimScript records the nonce (SET NX EX) and returns whether it was
// unused, with its bucket's mark, recreating the mark if Redis lost it. One
// script on two keys of one slot, so the two cannot be torn apart.
var claimScript = redis.NewScript(`
redis.call('SET', KEYS[2], ARGV[2], 'NX')
local since = tonumber(redis.call('GET', KEYS[2]))
local fresh = redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1])
if fresh then return {1, since} end
return {0, since}
`)

// claim records nonce for keyID and reports whether it was unused, and the
// unix second since which Redis has remembered the nonces of its bucket
// (markIfLost when the mark is gone). ttl is how long a replay could still
// pass the timestamp check.
func (n nonces) claim(ctx context.Context, keyID, nonce string, ttl time.Duration, markIfLost int64) (fresh bool, since int64, err error) {
	if n.rdb == nil {
		return false, 0, errNoRedis
	}
	ctx, cancel := context.WithTimeout(ctx, nonceTimeout)
	defer cancel()
	keys := []string{n.rdb.Key(nonceKey(keyID, nonce)), n.rdb.Key(sinceKey(bucketTag(keyID, nonce)))}
	// Atomic, so of two replicas racing on one nonce exactly one wins.
	res, err := claimScript.Run(ctx, n.rdb, keys, int64(ttl/time.Second), markIfLost).Int64Slice()
	if err != nil || len(res) != 2 {
		return false, 0, fmt.Errorf("record nonce for api key %s: %w", keyID, err)
	}
	return res[0] == 1, res[1], nil
}
