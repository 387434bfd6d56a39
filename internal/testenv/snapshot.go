package testenv

import (
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// SnapshotRedis copies what m holds now (strings, lists and hashes, with
// their TTLs: all Tollgate keeps) and returns a function that puts m back to that
// copy, as a Redis restarted from an older snapshot, or failed over to a
// lagging replica, would be.
func SnapshotRedis(t testing.TB, m *miniredis.Miniredis) (restore func()) {
	t.Helper()
	type entry struct {
		typ  string
		str  string
		hash []string // a hash's fields and values, or a list's items
		ttl  time.Duration
	}
	saved := map[string]entry{}
	for _, k := range m.Keys() {
		e := entry{typ: m.Type(k), ttl: m.TTL(k)}
		switch e.typ {
		case "string":
			e.str, _ = m.Get(k)
		case "list":
			e.hash, _ = m.List(k)
		case "hash":
			fields, _ := m.HKeys(k)
			for _, f := range fields {
				e.hash = append(e.hash, f, m.HGet(k, f))
			}
		default:
			t.Fatalf("snapshot: key %s is a %s; only strings, lists and hashes are copied", k, e.typ)
		}
		saved[k] = e
	}
	return func() {
		m.FlushAll()
		for k, e := range saved {
			var err error
			switch e.typ {
			case "string":
				err = m.Set(k, e.str)
			case "list":
				_, err = m.Push(k, e.hash...)
			default:
				m.HSet(k, e.hash...)
			}
			if err != nil {
				t.Fatalf("restore %s: %v", k, err)
			}
			if e.ttl > 0 {
				m.SetTTL(k, e.ttl)
			}
		}
	}
}
