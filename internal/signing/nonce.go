package signing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// nonceTimeout bounds the Redis call so a hung Redis refuses signed requests
// quickly instead of holding them.
const nonceTimeout = time.Second

var errNoRedis = errors.New("no Redis configured for nonces")

// nonces remembers which nonces each API key has used. It lives in Redis, not
// in memory, so a request replayed against another replica is refused too.
type nonces struct {
	rdb *redis.Client
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

// sinceKey holds the unix second from which Redis remembers every nonce. It
// has no expiry, so its absence while replicas run means Redis lost its data
// (a restart without persistence, a flush, a failover to an empty replica):
// the next claim recreates it with the current time, and requests signed
// before then are refused, since any of them may have been used already.
const sinceKey = "nonce:since"

// markIntact records, when a verifier starts, that nonce memory has no gap
// known to this process. Best effort: without Redis, claim sets the mark.
func (n nonces) markIntact(ctx context.Context) {
	if n.rdb == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, nonceTimeout)
	defer cancel()
	_ = n.rdb.SetNX(ctx, sinceKey, 0, 0).Err()
}

// watchMark re-creates the sinceKey mark soon after Redis loses it, so that
// the mark says when nonces were lost rather than when the next signed
// request came: requests signed after the loss then pass, and only those
// signed before it are refused. claim still re-creates it as a fallback.
func (n nonces) watchMark(ctx context.Context, now func() int64) {
	if n.rdb == nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			cctx, cancel := context.WithTimeout(ctx, nonceTimeout)
			_ = n.rdb.SetNX(cctx, sinceKey, now()+1, 0).Err()
			cancel()
		}
	}
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
	res, err := claimScript.Run(ctx, n.rdb, []string{"nonce:" + keyID + ":" + nonce, sinceKey}, int64(ttl/time.Second), markIfLost).Int64Slice()
	if err != nil || len(res) != 2 {
		return false, 0, fmt.Errorf("record nonce for api key %s: %w", keyID, err)
	}
	return res[0] == 1, res[1], nil
}
