package redisconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-billing/tollgate/internal/clock"
)

// WatchInterval is how often a replica looks at Redis for a restart and for
// changes announced by other replicas. Twice a second, so every replica
// notices within a second.
const WatchInterval = 500 * time.Millisecond

// announceLog is how many announced changes are kept; a replica that misses
// more than this (it could not reach Redis) is told "everything changed".
const announceLog = 1000

// Watcher notices, on this replica, a Redis that is not the one it was a
// moment ago, and changes other replicas announced.
//
// A restart is seen on each master (each shard of a cluster, Client.Shards)
// two ways, whichever fires first:
//   - the master's run_id (INFO server) changes: any restart or failover;
//   - a generation counter that every replica increments on every look, one
//     per master (under the master's tag), goes backwards or vanishes: a
//     restore from an older snapshot, a flush, a failover to a lagging
//     replica, also on a Redis that hides INFO (some managed ones,
//     miniredis).
//
// Both compare with what this replica saw last, per master, so the first
// look after start only records them. Masters are told apart by their tag,
// not their address: a replica promoted in a failover owns its master's
// slots, so it gets the same tag, and its other run_id is seen.
type Watcher struct {
	c   *Client
	log *slog.Logger

	mu        sync.Mutex // registration, and one look at a time
	onRestart []func(context.Context)
	topics    map[string]*topic
	shards    map[string]*shardSeen // by Shard.Tag
}

// shardSeen is what the last look saw of one master.
type shardSeen struct {
	runID string
	gen   int64
}

// topic is a stream of changes announced under one name.
type topic struct {
	handlers []func(ctx context.Context, members []string, all bool)
	seen     int64
	known    bool
}

// NewWatcher watches c. Register handlers, then call Run.
func NewWatcher(c *Client, log *slog.Logger) *Watcher {
	return &Watcher{c: c, log: log, topics: map[string]*topic{}, shards: map[string]*shardSeen{}}
}

// OnRestart calls fn, from the watcher's goroutine, whenever Redis, or any
// master of a cluster, turns out to have restarted, failed over or lost data
// since the last look. fn must assume everything kept in Redis may be older
// or gone: which master it was is logged, not told, since every user of
// Redis rebuilds or distrusts all it keeps there.
func (w *Watcher) OnRestart(fn func(context.Context)) {
	w.mu.Lock()
	w.onRestart = append(w.onRestart, fn)
	w.mu.Unlock()
}

// OnChange calls fn, from the watcher's goroutine, with the members that
// other replicas (or this one) announced under name since the last look; all
// is true when they cannot be told apart (the first look, too many, or Redis
// restarted) and the handler must assume every member changed.
func (w *Watcher) OnChange(name string, fn func(ctx context.Context, members []string, all bool)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.topics[name]
	if t == nil {
		t = &topic{}
		w.topics[name] = t
	}
	t.handlers = append(t.handlers, fn)
}

var announceScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
return n
`)

// Announce tells every replica's watcher that member changed under name.
// A replica that cannot be told (Redis down) relies on its own bounds, such
// as a cache's TTL.
func (w *Watcher) Announce(ctx context.Context, name, member string) error {
	return announceScript.Run(ctx, w.c, changesKeys(w.c, name), member, announceLog).Err()
}

// changesKeys are a topic's counter and log. The tag keeps both in one slot
// on a cluster, as the scripts that touch them need.
func changesKeys(c *Client, name string) []string {
	return []string{c.Key("changes:{" + name + "}"), c.Key("changes:{" + name + "}:log")}
}

// changesScript returns the counter and, when it moved from ARGV[1], the
// members announced since (newest first). One script, so an announcement
// cannot fall between reading the counter and reading the log.
var changesScript = redis.NewScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
local seen = tonumber(ARGV[1])
if n == seen or n < seen or n - seen > tonumber(ARGV[2]) then return {n} end
local out = {n}
for _, m in ipairs(redis.call('LRANGE', KEYS[2], 0, n - seen - 1)) do table.insert(out, m) end
return out
`)

// Run looks at Redis every WatchInterval until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	clock.Every(ctx, WatchInterval, func(ctx context.Context) {
		if err := w.Check(ctx); err != nil && ctx.Err() == nil {
			w.log.DebugContext(ctx, "redis watcher: look failed", "err", err)
		}
	})
}

// Check looks once: it calls the restart handlers if Redis is not the one it
// was at the last look, then the change handlers of topics that moved. It
// returns the Redis error, if any.
func (w *Watcher) Check(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	// Redis calls are bounded; the handlers may take longer (a rebuild
	// reads the database) and get ctx itself.
	look, cancel := context.WithTimeout(ctx, WatchInterval)
	defer cancel()

	restarted, err := w.lookAtShards(look)
	if restarted == nil && err != nil {
		return err
	}
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}

	type moved struct {
		t       *topic
		members []string
		all     bool
	}
	var calls []moved
	for name, t := range w.topics {
		res, err := changesScript.Run(look, w.c, changesKeys(w.c, name), t.seen, announceLog).Slice()
		if err != nil || len(res) == 0 {
			errs = append(errs, fmt.Errorf("read changes to %s: %w", name, err))
			continue
		}
		n, _ := res[0].(int64)
		members := make([]string, 0, len(res)-1)
		for _, m := range res[1:] {
			if s, ok := m.(string); ok {
				members = append(members, s)
			}
		}
		// The first look cannot tell what changed before it, while
		// something may already have been cached: everything has.
		if !t.known || n != t.seen || len(restarted) > 0 {
			all := !t.known || len(restarted) > 0 || n < t.seen || int(n-t.seen) != len(members)
			calls = append(calls, moved{t, members, all})
		}
		t.seen, t.known = n, true
	}

	if len(restarted) > 0 {
		w.log.WarnContext(ctx, "redis restarted, failed over or lost data; rebuilding what lives in it", "masters", restarted)
		for _, fn := range w.onRestart {
			fn(ctx)
		}
	}
	for _, c := range calls {
		for _, fn := range c.t.handlers {
			fn(ctx, c.members, c.all)
		}
	}
	return errors.Join(errs...)
}

// lookAtShards increments every master's generation and reads its run_id,
// concurrently so that a master that does not answer delays no other. It
// returns the addresses of the masters that restarted since the last look
// (non-nil, maybe empty, when any master answered) and the errors of those
// that did not answer, whose last sight is kept for the next look.
func (w *Watcher) lookAtShards(ctx context.Context) ([]string, error) {
	shards, err := w.c.Shards(ctx)
	if err != nil {
		return nil, err
	}
	type sight struct {
		runID string
		gen   int64
		err   error
	}
	sights := make([]sight, len(shards))
	var wg sync.WaitGroup
	for i, sh := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Through the cluster client, so a slot that moved is followed
			// and go-redis learns the new layout; the generation and the
			// run_id come from the one server that ran the script.
			res, err := generationScript.Run(ctx, w.c, []string{w.c.Key("generation:" + sh.Tag)}).Slice()
			if err == nil && len(res) != 2 {
				err = fmt.Errorf("unexpected answer %v", res)
			}
			if err != nil {
				sights[i].err = fmt.Errorf("redis master %s: %w", sh.Addr, err)
				return
			}
			gen, _ := res[0].(int64)
			runID, _ := res[1].(string)
			sights[i] = sight{runID: runID, gen: gen}
		}()
	}
	wg.Wait()

	restarted := []string{}
	var errs []error
	answered := false
	for i, sh := range shards {
		s := sights[i]
		if s.err != nil {
			errs = append(errs, s.err)
			continue
		}
		answered = true
		last := w.shards[sh.Tag]
		if last != nil && (s.gen <= last.gen || (s.runID != "" && last.runID != "" && s.runID != last.runID)) {
			restarted = append(restarted, sh.Addr)
		}
		w.shards[sh.Tag] = &shardSeen{runID: s.runID, gen: s.gen}
	}
	if !answered {
		return nil, errors.Join(errs...)
	}
	return restarted, errors.Join(errs...)
}

// generationScript increments a shard's generation and reads the run_id of
// the server that did, in one step. Read apart (INCR through the cluster
// client, INFO from the node go-redis's slot table named), a look during a
// failover could pair the new master's generation with the old master's
// run_id, and the next look would report the failover a second time. INFO
// is optional: a Redis that refuses it in a script is watched by the
// generation alone.
var generationScript = redis.NewScript(`
local gen = redis.call('INCR', KEYS[1])
local info = redis.pcall('INFO', 'server')
local run = ''
if type(info) == 'string' then
  run = string.match(info, 'run_id:(%w+)') or ''
end
return {gen, run}
`)
