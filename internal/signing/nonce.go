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

// claim records nonce for keyID and reports whether it was unused. ttl is
// how long a replay could still pass the timestamp check.
func (n nonces) claim(ctx context.Context, keyID, nonce string, ttl time.Duration) (bool, error) {
	if n.rdb == nil {
		return false, errNoRedis
	}
	ctx, cancel := context.WithTimeout(ctx, nonceTimeout)
	defer cancel()
	// SET nonce:<key>:<nonce> 1 NX EX <ttl>: atomic, so of two replicas
	// racing on one nonce exactly one wins.
	fresh, err := n.rdb.SetNX(ctx, "nonce:"+keyID+":"+nonce, 1, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("record nonce for api key %s: %w", keyID, err)
	}
	return fresh, nil
}
