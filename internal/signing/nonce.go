package signing

import (
	"context"
	"errors"
	"fmt"
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

// sinceKey (under the key prefix) holds the unix second from which Redis
// remembers every nonce; requests signed before it are refused, since any of
// them may have been used already. It has no expiry, so a Redis that lost
// its data (a restart without persistence, a flush, a failover to an empty
// replica) lacks it, and the next claim recreates it with the current time.
// A Redis restored from an older snapshot still has it: the restart watcher
// raises it then (forgetBefore).
const sinceKey = "nonce:since"

// markIntact records, when a verifier starts, that nonce memory has no gap
// known to this process. Best effort: without Redis, claim sets the mark.
func (n nonces) markIntact(ctx context.Context) {
	if n.rdb == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, nonceTimeout)
	defer cancel()
	_ = n.rdb.SetNX(ctx, n.rdb.Key(sinceKey), 0, 0).Err()
}

// raiseScript moves the mark forward, never back: two replicas noticing one
// restart at different moments leave the later mark.
var raiseScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
`)

// forgetBefore moves the mark to since: Redis may have come back from an
// older snapshot, holding a mark but not the nonces claimed after it, so
// every request signed before since may have been used already.
func (n nonces) forgetBefore(ctx context.Context, since int64) error {
	if n.rdb == nil {
		return errNoRedis
	}
	ctx, cancel := context.WithTimeout(ctx, nonceTimeout)
	defer cancel()
	return raiseScript.Run(ctx, n.rdb, []string{n.rdb.Key(sinceKey)}, since).Err()
}

// claimScript records the nonce (SET NX EX) and returns whether it was
// unused, with the sinceKey mark, recreating the mark if Redis lost it. One
// script, so the two cannot be torn apart.
var claimScript = redis.NewScript(`
redis.call('SET', KEYS[2], ARGV[2], 'NX')
local since = tonumber(redis.call('GET', KEYS[2]))
local fresh = redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1])
if fresh then return {1, since} end
return {0, since}
`)

// claim records nonce for keyID and reports whether it was unused, and the
// unix second since which Redis has remembered nonces (markIfLost when the
// mark is gone). ttl is how long a replay could still pass the timestamp
// check.
func (n nonces) claim(ctx context.Context, keyID, nonce string, ttl time.Duration, markIfLost int64) (fresh bool, since int64, err error) {
	if n.rdb == nil {
		return false, 0, errNoRedis
	}
	ctx, cancel := context.WithTimeout(ctx, nonceTimeout)
	defer cancel()
	// Atomic, so of two replicas racing on one nonce exactly one wins.
	res, err := claimScript.Run(ctx, n.rdb, []string{n.rdb.Key("nonce:" + keyID + ":" + nonce), n.rdb.Key(sinceKey)}, int64(ttl/time.Second), markIfLost).Int64Slice()
	if err != nil || len(res) != 2 {
		return false, 0, fmt.Errorf("record nonce for api key %s: %w", keyID, err)
	}
	return res[0] == 1, res[1], nil
}
