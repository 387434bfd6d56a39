package usage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/maphash"
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

// counterLeases lets the gate answer from this process's memory while no
// other replica can have changed the counter, and still see at once every
// recordUsage acknowledged on any replica. They are read leases (Gray and
// Cheriton, 1989) kept in Redis beside each counter:
//
//   - a gate that reads a counter from Redis also asks for its lease; Redis
//     grants it when no other replica holds it, for ttl, and this replica
//     then answers that counter's gates from memory until shortly before
//     the lease ends (margin), renewing it on the way;
//   - every write of a counter (storeNewest) returns the replicas other than
//     the writer that hold its lease, and the writer does not acknowledge
//     its callers until each has dropped the lease (it asks them over
//     Redis pub/sub and they answer once dropped) or the lease has run out;
//   - the writer's own copy is dropped when its write returns, so a write
//     and the next gate on the same replica never disagree either.
//
// So a gate never answers from memory a value older than a write that was
// acknowledged before it began, on any replica. What a lease costs is on the
// writes of other replicas: one pub/sub exchange per group commit that
// touches a counter another replica holds, and, when that replica does not
// answer (it stopped, or its connection is down), a wait until its lease
// runs out, ttl at most. A lease is lost with Redis's data, so a Redis that
// restarts or evicts keys may let a holder answer from memory for up to ttl
// before its watcher notices (as the mirror itself may lag, see counters);
// the rebuild that follows rewrites every counter, which drops the copies.
type counterLeases struct {
	rdb *redisconn.Client
	log *slog.Logger
	// ttl is a lease's life in Redis; 0 turns leases off.
	ttl time.Duration
	// self names this replica in Redis; each process draws its own.
	self string

	// held are the copies answered from; owned the counters whose lease
	// Redis granted this replica, copy or not (a write drops the copy, not
	// the lease), to give back on release.
	held  *cache.Cache[string, *leased]
	owned *cache.Cache[string, struct{}]
	// moved counts, per stripe of counters, the writes and revocations that
	// dropped a copy: a read that began before one of them must not keep
	// what it read (install).
	moved [leaseStripes]atomic.Uint64
	seed  maphash.Seed
	// listening is set while this replica's revocation channel is
	// subscribed: leases are taken only then, so another replica's writes
	// are not left waiting for a holder that cannot hear them.
	listening atomic.Bool
	// closed is set when the replica lets its leases go; none is served
	// or taken after.
	closed atomic.Bool

	mu    sync.Mutex
	acks  map[string]chan struct{} // revocations this replica waits on, by id
	asked atomic.Uint64
}

// leased is a counter this replica holds the lease of.
type leased struct {
	used int64
	// until is when this replica stops answering from it: the lease's end
	// in Redis less the margin, measured from before it was asked for.
	until time.Time
	// renewing is set once a gate has had the lease renewed in the
	// background; every gate keeps answering from memory meanwhile.
	renewing atomic.Bool
}

const (
	// DefaultGateLease is a service's lease unless LeaseGates says
	// otherwise; config's default for USAGE_GATE_LEASE is the same.
	DefaultGateLease = time.Second
	// maxLeases bounds the counters held, the busiest kept; an evicted
	// one is read from Redis again.
	maxLeases    = 10_000
	leaseStripes = 256
)

func newCounterLeases(rdb *redisconn.Client, log *slog.Logger, ttl time.Duration) *counterLeases {
	var id [12]byte
	_, _ = rand.Read(id[:])
	return &counterLeases{
		rdb: rdb, log: log, ttl: ttl, self: hex.EncodeToString(id[:]),
		held:  cache.New[string, *leased](maxLeases, 0, clock.Real{}),
		owned: cache.New[string, struct{}](maxLeases, 0, clock.Real{}),
		seed:  maphash.MakeSeed(), acks: map[string]chan struct{}{},
	}
}

// margin is how long before its end in Redis a lease stops being used here:
// room for the two clocks' rates and the writer's rounding to milliseconds.
func (l *counterLeases) margin() time.Duration { return l.ttl / 10 }

// on reports whether this replica takes leases now.
func (l *counterLeases) on() bool {
	return l.ttl > 0 && l.listening.Load() && !l.closed.Load()
}

// leaseKey is where a counter's lease lives: beside it, in its hash slot.
func leaseKey(counterKey string) string { return counterKey + ":lease" }

func (l *counterLeases) stripe(key string) *atomic.Uint64 {
	return &l.moved[maphash.String(l.seed, key)%leaseStripes]
}

// get answers a counter from a lease this replica holds. It reports false
// when the lease is missing or has ended. Past half its life, renew is set
// for one gate, whose caller renews it in the background: that gate and the
// others go on answering from it meanwhile, so no gate waits for Redis
// while a lease is renewed in time.
func (l *counterLeases) get(key string) (used int64, ok, renew bool) {
	if l.closed.Load() {
		return 0, false, false
	}
	e, ok := l.held.Get(key)
	if !ok {
		return 0, false, false
	}
	left := time.Until(e.until)
	if left <= 0 {
		return 0, false, false
	}
	return e.used, true, left < l.ttl/2 && e.renewing.CompareAndSwap(false, true)
}

// readLease reads a counter and takes or renews its lease for ARGV[1] when
// nobody else holds it. It answers nil when the counter is missing (the
// gate then reads the database), else {used, granted}. KEYS: the counter,
// its lease; ARGV: this replica, the lease's life in milliseconds.
var readLease = redis.NewScript(`
local u = redis.call('HGET', KEYS[1], 'u')
if not u then return false end
local h = redis.call('GET', KEYS[2])
if (not h) or h == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return {u, 1}
end
return {u, 0}
`)

// read reads a counter from Redis, taking its lease when it can.
func (l *counterLeases) read(ctx context.Context, key string) (string, error) {
	if !l.on() {
		return l.rdb.HGet(ctx, key, "u").Result()
	}
	gen := l.stripe(key).Load()
	asked := time.Now()
	res, err := readLease.Run(ctx, l.rdb, []string{key, leaseKey(key)}, l.self, l.ttl.Milliseconds()).Slice()
	if err != nil {
		return "", err
	}
	if len(res) != 2 {
		return "", fmt.Errorf("usage lease read answered %d values, want 2", len(res))
	}
	v, _ := res[0].(string)
	if granted, _ := res[1].(int64); granted == 1 {
		l.owned.Put(key, struct{}{})
		if used, err := strconv.ParseInt(v, 10, 64); err == nil {
			l.install(key, used, asked.Add(l.ttl-l.margin()), gen)
		}
	}
	return v, nil
}

// install keeps a leased counter unless a write or revocation of it (or of
// its stripe) came after gen was taken: what was read may predate it.
func (l *counterLeases) install(key string, used int64, until time.Time, gen uint64) {
	if l.closed.Load() {
		return
	}
	// Put, then look: a drop before the look is seen by it, and one after
	// removes what was put.
	l.held.Put(key, &leased{used: used, until: until})
	if l.stripe(key).Load() != gen {
		l.held.Remove(key)
	}
}

// drop forgets this replica's copy of a counter, and keeps reads already on
// their way from installing theirs.
func (l *counterLeases) drop(key string) {
	l.stripe(key).Add(1)
	l.held.Remove(key)
}

// revocation asks a holder to drop counters; ack is its answer.
type revocation struct {
	Keys []string `json:"keys,omitempty"`
	From string   `json:"from"`
	ID   string   `json:"id"`
	Ack  bool     `json:"ack,omitempty"`
}

func (l *counterLeases) channel(replica string) string {
	return l.rdb.Key("usage-leases:" + replica)
}

// heldElsewhere is what a write found: per other replica, the counters it
// holds and how long its leases have left at most.
type heldElsewhere map[string]*heldBy

type heldBy struct {
	keys []string
	left time.Duration
}

// add reads storeNewest's answer: {holder, counter key, ms left} triples.
func (h heldElsewhere) add(reply []any) {
	for i := 0; i+2 < len(reply); i += 3 {
		holder, _ := reply[i].(string)
		key, _ := reply[i+1].(string)
		ms, _ := reply[i+2].(int64)
		if holder == "" || key == "" || ms <= 0 {
			continue
		}
		b := h[holder]
		if b == nil {
			b = &heldBy{}
			h[holder] = b
		}
		b.keys = append(b.keys, key)
		b.left = max(b.left, time.Duration(ms)*time.Millisecond)
	}
}

// revoke returns once every other replica holding a lease on what was just
// written has dropped it, or its lease has run out.
func (l *counterLeases) revoke(ctx context.Context, held heldElsewhere) {
	if len(held) == 0 {
		return
	}
	type wait struct {
		ack   chan struct{}
		id    string
		until time.Time
	}
	waits := make([]wait, 0, len(held))
	start := time.Now()
	for holder, b := range held {
		// One millisecond for Redis's rounding of what was left down.
		w := wait{until: start.Add(b.left + time.Millisecond)}
		if l.listening.Load() {
			w.id = l.self + ":" + strconv.FormatUint(l.asked.Add(1), 10)
			w.ack = make(chan struct{})
			l.mu.Lock()
			l.acks[w.id] = w.ack
			l.mu.Unlock()
			msg, _ := json.Marshal(revocation{Keys: b.keys, From: l.self, ID: w.id})
			if err := l.rdb.Publish(ctx, l.channel(holder), msg).Err(); err != nil {
				l.log.DebugContext(ctx, "usage lease revocation not sent; waiting for the lease to end", "err", err)
			}
		}
		waits = append(waits, w)
	}
	for _, w := range waits {
		timer := time.NewTimer(time.Until(w.until))
		select {
		case <-w.ack: // nil when none was asked for: wait for the end
			leaseRevocationsAnswered.Inc()
		case <-timer.C:
			leaseRevocationsExpired.Inc()
		case <-ctx.Done():
		}
		timer.Stop()
		if w.id != "" {
			l.mu.Lock()
			delete(l.acks, w.id)
			l.mu.Unlock()
		}
	}
}

// listen keeps this replica's revocation channel subscribed until ctx ends,
// dropping what other replicas' writes revoke and answering them, then lets
// every lease go.
func (l *counterLeases) listen(ctx context.Context) {
	if l.ttl <= 0 {
		return
	}
	defer l.release()
	sub := l.rdb.Subscribe(ctx, l.channel(l.self))
	// A blocked Receive does not watch ctx; closing the subscription ends it.
	stop := context.AfterFunc(ctx, func() { _ = sub.Close() })
	defer stop()
	for {
		msg, err := sub.Receive(ctx)
		if err != nil {
			// Revocations may have been missed: their writers wait for
			// the leases to end. Take none until subscribed again.
			l.listening.Store(false)
			if ctx.Err() != nil {
				return
			}
			l.log.DebugContext(ctx, "usage lease channel lost; gates read Redis until it is back", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(redisconn.BackoffInterval / 10):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			l.listening.Store(m.Kind == "subscribe")
		case *redis.Message:
			l.handle(ctx, m.Payload)
		}
	}
}

func (l *counterLeases) handle(ctx context.Context, payload string) {
	var r revocation
	if json.Unmarshal([]byte(payload), &r) != nil || r.ID == "" {
		return
	}
	if r.Ack {
		l.mu.Lock()
		if ch, ok := l.acks[r.ID]; ok {
			close(ch)
			delete(l.acks, r.ID)
		}
		l.mu.Unlock()
		return
	}
	for _, k := range r.Keys {
		l.drop(k)
	}
	msg, _ := json.Marshal(revocation{From: l.self, ID: r.ID, Ack: true})
	if err := l.rdb.Publish(ctx, l.channel(r.From), msg).Err(); err != nil {
		l.log.DebugContext(ctx, "usage lease revocation not answered; the writer waits for the lease to end", "err", err)
	}
}

// releaseLease ends this replica's lease on a counter, if it still holds it.
var releaseLease = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// release stops answering from leases and gives them back, so that other
// replicas' writes do not wait for them to run out.
func (l *counterLeases) release() {
	l.closed.Store(true)
	l.listening.Store(false)
	keys := l.owned.Keys()
	if len(keys) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	pipe := l.rdb.Pipeline()
	for _, k := range keys {
		l.drop(k)
		releaseLease.Eval(ctx, pipe, []string{leaseKey(k)}, l.self)
	}
	// What is not given back runs out within ttl.
	_, _ = pipe.Exec(ctx)
}
