package auth

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-billing/tollgate/internal/cache"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/redisconn"
)

// Host backends authenticate every request with an API key, and looking the
// key up was a database query per request: at 2,000 usageGate requests a
// second it took the gate's p99 from 0.9 to 1.6 ms. Keys that authenticated
// are therefore remembered in memory, which is safe only while every replica
// hears of revocations at once:
//   - revoking a key, or changing its signing key, drops it here and bumps a
//     change counter in Redis (keyChangesKey);
//   - every replica polls that counter every keyPollInterval and forgets all
//     remembered keys when it moves;
//   - while the counter cannot be read (Redis down, or Run not started),
//     nothing is remembered and every request asks the database, as before.
//
// So a revoked key stops working at once on the replica that revoked it, and
// within about keyPollInterval on the others.
//
// A remembered key past half its keyCacheTTL is read again in the
// background while it is still served (as plans are, usage.PlanCache), so
// no request waits for the database once per keyCacheTTL per key: for a key
// sending a request a second, that was one request in ten. A read that finds
// the key revoked or gone forgets it.
const (
	keyChangesKey   = "apikeys:changes" // under the key prefix
	keyPollInterval = 500 * time.Millisecond
	// keyCacheTTL bounds how long a key is remembered at all, and so how
	// long a revocation can go unseen by a replica whose Redis works when the
	// revoking replica could not announce it.
	keyCacheTTL = 10 * time.Second
	// maxCachedKeys bounds the memory, at the keys used most recently.
	maxCachedKeys = 10000
)

// keyCache remembers authenticated keys by how they were looked up.
type keyCache struct {
	rdb *redisconn.Client
	log *slog.Logger

	// trusted is true while the last poll of the change counter succeeded.
	trusted atomic.Bool
	seen    string // the counter at the last poll; only Run touches it

	// entries' generation moves with every flush, so a key read from the
	// database before a flush is not remembered after it.
	entries *cache.Cache[string, cachedKey]
}

// cachedKey is a remembered key and when it was read.
type cachedKey struct {
	key    APIKey
	loaded time.Time
}

// ShareChanges lets the keys be remembered between requests, with
// revocations and signing-key changes announced to other replicas through
// rdb. Call Run as well; until its first poll succeeds nothing is remembered.
func (k *Keys) ShareChanges(rdb *redisconn.Client, log *slog.Logger) {
	k.cache = &keyCache{rdb: rdb, log: log, entries: cache.New[string, cachedKey](maxCachedKeys, keyCacheTTL, k.clock)}
}

// Run polls the change counter until ctx ends.
func (k *Keys) Run(ctx context.Context) {
	c := k.cache
	if c == nil {
		return
	}
	clock.Every(ctx, keyPollInterval, c.poll)
}

func (c *keyCache) poll(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, keyPollInterval)
	defer cancel()
	v, err := c.rdb.Get(pctx, c.rdb.Key(keyChangesKey)).Result()
	if errors.Is(err, redis.Nil) {
		v, err = "0", nil
	}
	if err != nil {
		if c.trusted.Swap(false) && ctx.Err() == nil {
			c.log.WarnContext(ctx, "redis unavailable; API keys are checked in the database on every request", "err", err)
		}
		c.flush()
		return
	}
	if v != c.seen {
		c.flush()
		c.seen = v
	}
	c.trusted.Store(true)
}

// get returns a remembered key, and whether it is due to be read again
// (past half its keyCacheTTL, as of now).
func (c *keyCache) get(lookup string, now time.Time) (key APIKey, stale, ok bool) {
	if c == nil || !c.trusted.Load() {
		return APIKey{}, false, false
	}
	e, ok := c.entries.Get(lookup)
	return e.key, ok && now.Sub(e.loaded) >= keyCacheTTL/2, ok
}

// generation is taken before a database read whose result may be put.
func (c *keyCache) generation() uint64 {
	if c == nil {
		return 0
	}
	return c.entries.Generation()
}

// put remembers a key read from the database, at loaded, at generation gen,
// unless a flush has happened since.
func (c *keyCache) put(lookup string, key APIKey, loaded time.Time, gen uint64) {
	if c == nil || !c.trusted.Load() {
		return
	}
	c.entries.PutIfUnchanged(lookup, cachedKey{key: key, loaded: loaded}, gen)
}

// forget drops a remembered key that a read found revoked or gone. Only a
// remembered one: a removal moves the generation, which makes reads in
// flight for other keys not remembered, and requests with unknown keys must
// not be able to do that.
func (c *keyCache) forget(lookup string) {
	if c == nil {
		return
	}
	if _, ok := c.entries.Get(lookup); ok {
		c.entries.Remove(lookup)
	}
}

func (c *keyCache) flush() { c.entries.Clear() }

// RedisRestarted forgets every remembered key: a Redis restored from an
// older snapshot can show a change counter this replica has seen before, so
// a revocation announced after the restore could go unnoticed.
func (k *Keys) RedisRestarted(context.Context) {
	if k.cache != nil {
		k.cache.flush()
	}
}

// changed forgets every remembered key here and tells the other replicas to
// do the same. If Redis cannot be told, nothing is remembered here until a
// poll succeeds, and the other replicas' polls fail alike unless Redis is up
// for them, in which case the key is forgotten within keyCacheTTL.
func (c *keyCache) changed(ctx context.Context) {
	if c == nil {
		return
	}
	c.flush()
	if err := c.rdb.Incr(ctx, c.rdb.Key(keyChangesKey)).Err(); err != nil {
		c.trusted.Store(false)
		c.log.WarnContext(ctx, "could not announce an API key change to other replicas", "err", err)
	}
}
