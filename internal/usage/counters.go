package usage

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-billing/tollgate/internal/cache"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/redisconn"
)

// counters mirrors period rollups in Redis, so the gate answers with one
// round trip. The mirror may lag or vanish at any moment; correctness rests on
// three rules:
//   - every value written carries its rollup's version, and Redis keeps the
//     highest version it has seen, so writes landing out of order never move
//     a counter back;
//   - a write that fails marks the counter dirty, and the gate reads a dirty
//     counter from the database until a fresh copy has been written back
//     (by the gate itself, Resync or RebuildCounters);
//   - after a failure Redis is skipped for a second, so an unreachable Redis
//     costs one timeout per second instead of one per request.
//
// Dirty marks live in this process: another replica reading a counter this
// one failed to write may see it lag until Resync runs here or the key
// expires (counterTTL).
type counters struct {
	rdb   *redisconn.Client
	clock clock.Clock
	log   *slog.Logger

	backoff redisconn.Backoff // on clock

	mu    sync.Mutex
	gen   uint64               // grows with every dirty mark
	dirty map[counterID]uint64 // counter -> gen of its latest failed write
	// anyDirty spares the gate the mutex while nothing is dirty.
	anyDirty atomic.Bool
	// stale is set while Redis may hold counters older than the database
	// (it restarted from a snapshot or failed over) and until every
	// counter has been rebuilt: the gate reads the database meanwhile.
	stale atomic.Bool

	// warms collapses concurrent database reads of one missing counter.
	warms cache.Loads[int64]
	// reads shares Redis reads of one counter among concurrent gates.
	reads *counterReads
	// leases lets the gate answer from memory while no other replica can
	// have written a counter.
	leases *counterLeases
}

const (
	// counterTTL bounds how long a counter nobody writes stays in Redis, and
	// so how long a lag unseen by any dirty mark can last.
	counterTTL = 15 * time.Minute
	// redisBackoff is how long Redis is skipped after a failure.
	redisBackoff = redisconn.BackoffInterval
)

// counterID names one counter: an organisation's period rollup.
type counterID struct {
	org string
	rollupKey
}

// key is where the counter lives in Redis. The braces keep an organisation's
// counters in one hash slot, so one script can write them all on a cluster
// too.
func (c *counters) key(id counterID) string {
	label := "all"
	if id.start != allTime.Unix() {
		label = time.Unix(id.start, 0).UTC().Format("2006-01")
	}
	return c.rdb.Key("usage:{" + id.org + "}:" + id.meter + ":" + label)
}

// storeNewest writes (used, version) pairs, keeping whichever version is
// newer per key. Only a write extends the TTL, so a counter that got ahead of
// the database (restored from a backup) still expires. For every counter it
// changed whose gate lease another replica holds, it answers that replica,
// the counter and the milliseconds the lease has left, so the writer can
// revoke it (leases.go). KEYS are the counters, then their leases; ARGV holds
// used and version per counter, then the TTL in milliseconds and the
// writer's replica.
var storeNewest = redis.NewScript(`
local n = #KEYS / 2
local ttl = ARGV[2*n+1]
local me = ARGV[2*n+2]
local held = {}
for i = 1, n do
  local key = KEYS[i]
  local seen = redis.call('HGET', key, 'v')
  if (not seen) or tonumber(seen) < tonumber(ARGV[2*i]) then
    redis.call('HSET', key, 'u', ARGV[2*i-1], 'v', ARGV[2*i])
    redis.call('PEXPIRE', key, ttl)
    local h = redis.call('GET', KEYS[n+i])
    if h and h ~= me then
      local left = redis.call('PTTL', KEYS[n+i])
      if left > 0 then
        table.insert(held, h)
        table.insert(held, key)
        table.insert(held, left)
      end
    end
  end
end
return held
`)

func newCounters(rdb *redisconn.Client, clk clock.Clock, log *slog.Logger) *counters {
	return &counters{rdb: rdb, clock: clk, log: log, dirty: map[counterID]uint64{}, reads: newCounterReads(),
		leases: newCounterLeases(rdb, log, DefaultGateLease)}
}

// source is where a gate's count came from.
type source int

const (
	fromDatabase source = iota
	fromRedis
	fromLease
)

func (c *counters) available() bool { return c.backoff.Available(c.clock.Now()) }

// fault records a failed Redis call and skips Redis for a while. A caller
// that gave up (its context ended) is not Redis's fault.
func (c *counters) fault(ctx context.Context, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	if c.backoff.Fail(c.clock.Now()) {
		c.log.WarnContext(ctx, "redis unavailable; usage counters fall back to the database", "op", what, "err", err)
	}
}

func (c *counters) recovered() { c.backoff.Recovered() }

// get reads a counter, from this replica's lease on it when it holds one;
// ok is false when the caller must ask the database. Asking it because
// Redis failed, is skipped, or lags (dirty) is a fallback; a key Redis
// simply lacks is not.
func (c *counters) get(ctx context.Context, id counterID) (used int64, from source, ok bool) {
	if !c.available() || c.stale.Load() || c.isDirty(id) {
		gateFallbacks.Inc()
		return 0, fromDatabase, false
	}
	key := c.key(id)
	if n, ok, renew := c.leases.get(key); ok {
		if renew {
			go c.renew(ctx, id, key)
		}
		return n, fromLease, true
	}
	v, err := c.reads.read(ctx, id, func(ctx context.Context) (string, error) {
		return c.leases.read(ctx, key)
	})
	if errors.Is(err, redis.Nil) {
		return 0, fromDatabase, false
	}
	if err == nil {
		used, err = strconv.ParseInt(v, 10, 64)
	}
	if err != nil {
		c.fault(ctx, "read counter", err)
		gateFallbacks.Inc()
		return 0, fromDatabase, false
	}
	return used, fromRedis, true
}

// renew reads a counter whose lease this replica holds from Redis again,
// renewing the lease, on behalf of every gate of the counter rather than of
// ctx's caller, who has been answered from the lease. A counter Redis no
// longer has (it lost its data, or evicted the key) ends the copy at once:
// the next gate reads the database and writes the counter back, as a gate
// that finds no lease does, rather than answering from memory until the
// lease would have ended.
func (c *counters) renew(ctx context.Context, id counterID, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cache.SharedLoadTimeout)
	defer cancel()
	_, err := c.reads.read(ctx, id, func(ctx context.Context) (string, error) {
		return c.leases.read(ctx, key)
	})
	switch {
	case errors.Is(err, redis.Nil):
		c.leases.drop(key)
	case err != nil:
		c.fault(ctx, "renew counter lease", err)
	}
}

// store writes counters of one organisation in one round trip, and returns
// once no replica answers the gate from a copy older than what it wrote.
func (c *counters) store(ctx context.Context, org string, values map[rollupKey]counter) error {
	return c.storeAll(ctx, map[string]map[rollupKey]counter{org: values})
}

// storeAll is store for the counters of several organisations, on one
// Redis server (see storeArgs).
func (c *counters) storeAll(ctx context.Context, byOrg map[string]map[rollupKey]counter) error {
	keys, args := c.storeArgs(byOrg)
	if len(keys) == 0 {
		return nil
	}
	reply, err := storeNewest.Run(ctx, c.rdb, keys, args...).Slice()
	held := heldElsewhere{}
	held.add(reply)
	c.written(ctx, keys, held)
	return err
}

// written follows a write of keys (storeNewest's KEYS, whether or not it
// succeeded): this replica's copies of them are dropped, the other
// replicas' leases revoked. Dropping a lease key too costs nothing.
func (c *counters) written(ctx context.Context, keys []string, held heldElsewhere) {
	for _, k := range keys {
		c.leases.drop(k)
	}
	c.leases.revoke(ctx, held)
}

// storeArgs are storeNewest's KEYS and ARGV for the counters of byOrg's
// organisations, which must live on one Redis server (one organisation's
// always do: its keys share a hash tag).
func (c *counters) storeArgs(byOrg map[string]map[rollupKey]counter) ([]string, []any) {
	n := 0
	for _, values := range byOrg {
		n += len(values)
	}
	keys := make([]string, 0, 2*n)
	args := make([]any, 0, 2*n+2)
	for org, values := range byOrg {
		for k, v := range values {
			keys = append(keys, c.key(counterID{org, k}))
			args = append(args, v.used, v.version)
		}
	}
	for _, k := range keys[:n] {
		keys = append(keys, leaseKey(k))
	}
	return keys, append(args, counterTTL.Milliseconds(), c.leases.self)
}

// publishAll mirrors the rollups a commit group just wrote, for every
// organisation in it, in one round trip: on one Redis server in one script
// for all of them, on a cluster in one script per organisation (its keys
// share a slot; two organisations' need not), pipelined. Like publish it
// never clears dirty marks.
func (c *counters) publishAll(ctx context.Context, byOrg map[string]map[rollupKey]counter) {
	if len(byOrg) <= 1 || !c.available() {
		for org, values := range byOrg {
			c.publish(ctx, org, values)
		}
		return
	}
	if !c.rdb.Cluster() {
		if err := c.storeAll(ctx, byOrg); err != nil {
			c.fault(ctx, "publish counters", err)
			for org, values := range byOrg {
				recordFallbacks.Inc()
				c.markDirty(org, values)
			}
		}
		return
	}
	pipe := c.rdb.Pipeline()
	cmds := make(map[string]*redis.Cmd, len(byOrg))
	var written []string
	for org, values := range byOrg {
		if len(values) > 0 {
			keys, args := c.storeArgs(map[string]map[rollupKey]counter{org: values})
			cmds[org] = storeNewest.EvalSha(ctx, pipe, keys, args...)
			written = append(written, keys...)
		}
	}
	_, err := pipe.Exec(ctx)
	held := heldElsewhere{}
	for _, cmd := range cmds {
		if reply, err := cmd.Slice(); err == nil {
			held.add(reply)
		}
	}
	c.written(ctx, written, held)
	switch {
	case err == nil:
	case redis.HasErrorPrefix(err, "NOSCRIPT"):
		// Redis lost the script (a restart or SCRIPT FLUSH); publish
		// loads it again. Writing a counter twice is harmless.
		for org, values := range byOrg {
			c.publish(ctx, org, values)
		}
	default:
		c.fault(ctx, "publish counters", err)
		for org, cmd := range cmds {
			if cmd.Err() != nil {
				recordFallbacks.Inc()
				c.markDirty(org, byOrg[org])
			}
		}
	}
}

// publish mirrors rollups just committed. It never clears dirty marks: a
// failed write of a newer version may have raced it.
func (c *counters) publish(ctx context.Context, org string, values map[rollupKey]counter) {
	if len(values) == 0 {
		return
	}
	if c.available() {
		err := c.store(ctx, org, values)
		if err == nil {
			return
		}
		c.fault(ctx, "publish counters", err)
	}
	recordFallbacks.Inc()
	c.markDirty(org, values)
}

// refresh writes counters read from the database after gen was taken, and
// clears their dirty marks unless a newer failure marked them since.
func (c *counters) refresh(ctx context.Context, org string, values map[rollupKey]counter, gen uint64) error {
	if err := c.store(ctx, org, values); err != nil {
		c.fault(ctx, "refresh counters", err)
		return err
	}
	c.recovered()
	c.mu.Lock()
	for k := range values {
		id := counterID{org, k}
		if g, ok := c.dirty[id]; ok && g <= gen {
			delete(c.dirty, id)
		}
	}
	c.anyDirty.Store(len(c.dirty) > 0)
	c.mu.Unlock()
	return nil
}

func (c *counters) markDirty(org string, values map[rollupKey]counter) {
	c.mu.Lock()
	c.gen++
	for k := range values {
		c.dirty[counterID{org, k}] = c.gen
	}
	c.anyDirty.Store(true)
	c.mu.Unlock()
}

func (c *counters) isDirty(id counterID) bool {
	if !c.anyDirty.Load() {
		return false
	}
	c.mu.Lock()
	_, ok := c.dirty[id]
	c.mu.Unlock()
	return ok
}

// generation is the current dirty-mark generation: take it before reading
// the database for a refresh.
func (c *counters) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// dirtyByOrg lists the dirty counters per organisation.
func (c *counters) dirtyByOrg() map[string][]rollupKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][]rollupKey{}
	for id := range c.dirty {
		out[id.org] = append(out[id.org], id.rollupKey)
	}
	return out
}
