// Package cache is Tollgate's one in-memory cache: bounded (least recently
// used entries go first, on golang-lru), with an optional lifetime measured
// on the injected clock, so tests move time instead of sleeping.
package cache

import (
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/tollgate-billing/tollgate/internal/clock"
)

// Cache maps keys to values. It is safe for concurrent use.
type Cache[K comparable, V any] struct {
	lru   *lru.Cache[K, entry[V]]
	ttl   time.Duration
	clock clock.Clock

	// gen moves with every Remove and Clear, so that a value read from its
	// source before one of them is not put after it (PutIfUnchanged).
	mu  sync.Mutex
	gen uint64
}

type entry[V any] struct {
	value   V
	expires time.Time // zero: never
}

// New returns a cache of at most size entries, each kept for ttl on clk
// (0: until evicted).
func New[K comparable, V any](size int, ttl time.Duration, clk clock.Clock) *Cache[K, V] {
	l, err := lru.New[K, entry[V]](size)
	if err != nil {
		panic("cache: " + err.Error()) // only for a size below 1: a programming error
	}
	return &Cache[K, V]{lru: l, ttl: ttl, clock: clk}
}

// Get returns the value for k unless it is absent or expired.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	e, ok := c.lru.Get(k)
	if !ok || (!e.expires.IsZero() && !c.clock.Now().Before(e.expires)) {
		var zero V
		return zero, false
	}
	return e.value, true
}

// Put stores v for k.
func (c *Cache[K, V]) Put(k K, v V) {
	c.lru.Add(k, c.entry(v))
}

// PutIfAbsent stores v for k unless k holds a value that has not expired,
// and reports whether it stored v: of concurrent callers for one k, one
// does.
func (c *Cache[K, V]) PutIfAbsent(k K, v V) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.Get(k); ok {
		return false
	}
	c.lru.Add(k, c.entry(v))
	return true
}

// Generation is taken before reading a value from its source, for
// PutIfUnchanged.
func (c *Cache[K, V]) Generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// PutIfUnchanged stores v for k unless Remove or Clear ran since gen was
// taken: v may then predate what they announced.
func (c *Cache[K, V]) PutIfUnchanged(k K, v V, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.lru.Add(k, c.entry(v))
	}
}

// Remove forgets k.
func (c *Cache[K, V]) Remove(k K) {
	c.mu.Lock()
	c.gen++
	c.lru.Remove(k)
	c.mu.Unlock()
}

// Clear forgets everything.
func (c *Cache[K, V]) Clear() {
	c.mu.Lock()
	c.gen++
	c.lru.Purge()
	c.mu.Unlock()
}

// Keys lists the keys held, expired ones included until evicted.
func (c *Cache[K, V]) Keys() []K { return c.lru.Keys() }

// Len is how many entries are held, expired ones included until evicted.
func (c *Cache[K, V]) Len() int { return c.lru.Len() }

func (c *Cache[K, V]) entry(v V) entry[V] {
	e := entry[V]{value: v}
	if c.ttl > 0 {
		e.expires = c.clock.Now().Add(c.ttl)
	}
	return e
}
