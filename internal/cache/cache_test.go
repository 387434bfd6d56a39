package cache_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/cache"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestAnEntryLivesForItsTTLOnTheInjectedClock(t *testing.T) {
	clk := clock.NewFake(t0)
	c := cache.New[string, int](10, 3*time.Second, clk)
	c.Put("org", 1)
	clk.Advance(3*time.Second - time.Nanosecond)
	if v, ok := c.Get("org"); !ok || v != 1 {
		t.Fatalf("just before the TTL: %d, %t; want 1", v, ok)
	}
	clk.Advance(time.Nanosecond)
	if _, ok := c.Get("org"); ok {
		t.Fatal("the entry outlived its TTL")
	}
}

func TestWithoutATTLOnlyEvictionForgets(t *testing.T) {
	clk := clock.NewFake(t0)
	c := cache.New[string, int](2, 0, clk)
	c.Put("a", 1)
	c.Put("b", 2)
	clk.Advance(24 * 365 * time.Hour)
	c.Get("a") // a is now used more recently than b
	c.Put("c", 3)
	if _, ok := c.Get("b"); ok {
		t.Fatal("the least recently used entry was kept beyond the bound")
	}
	for _, k := range []string{"a", "c"} {
		if _, ok := c.Get(k); !ok {
			t.Fatalf("%s was forgotten; only b should be", k)
		}
	}
	if c.Len() != 2 {
		t.Fatalf("%d entries held, want at most 2", c.Len())
	}
}

// A value read from its source before an invalidation may predate what the
// invalidation announced: it must not be cached after it.
func TestAReadThatRacedAnInvalidationIsNotCached(t *testing.T) {
	cases := []struct {
		name       string
		invalidate func(c *cache.Cache[string, string])
	}{
		{"Remove", func(c *cache.Cache[string, string]) { c.Remove("org") }},
		{"Clear", func(c *cache.Cache[string, string]) { c.Clear() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cache.New[string, string](10, time.Minute, clock.NewFake(t0))
			gen := c.Generation()
			tc.invalidate(c) // the change commits while the old plan is read
			c.PutIfUnchanged("org", "old plan", gen)
			if v, ok := c.Get("org"); ok {
				t.Fatalf("cached %q read before the invalidation", v)
			}
			c.PutIfUnchanged("org", "new plan", c.Generation())
			if v, _ := c.Get("org"); v != "new plan" {
				t.Fatalf("a read after the invalidation was not cached: %q", v)
			}
		})
	}
}

// Of many callers claiming one key at once, one stores its value; the key
// can be claimed again once that value has expired.
func TestPutIfAbsentLetsOneOfConcurrentCallersIn(t *testing.T) {
	clk := clock.NewFake(t0)
	c := cache.New[string, int](10, time.Minute, clk)
	var stored atomic.Int64
	testenv.AtOnce(64, func(i int) {
		if c.PutIfAbsent("key", i) {
			stored.Add(1)
		}
	})
	if n := stored.Load(); n != 1 {
		t.Fatalf("%d of 64 concurrent callers stored a value, want 1", n)
	}
	clk.Advance(time.Minute - time.Nanosecond)
	if c.PutIfAbsent("key", 1) {
		t.Fatal("a live value was replaced")
	}
	clk.Advance(time.Nanosecond)
	if !c.PutIfAbsent("key", 1) {
		t.Fatal("an expired value kept the key claimed")
	}
}
