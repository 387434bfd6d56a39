package usage

import (
	"context"
	"strconv"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// TestTheGateStopsLyingOnceARestoredClusterMasterIsNoticed: one master of a
// cluster comes back from a snapshot older than the database, holding an
// organisation's counter behind its rollup. Once the watcher has looked at
// every master, the gate answers the database's count again and the counter
// is rebuilt from the rollups; the other masters' counters never lied.
func TestTheGateStopsLyingOnceARestoredClusterMasterIsNoticed(t *testing.T) {
	cl := testenv.StartRedisCluster(t)
	rdb := cl.Client(t)
	f := newFixture(t, testenv.DB(t), rdb)
	w := redisconn.NewWatcher(rdb, f.svc.log)
	w.OnRestart(f.svc.RedisRestarted)
	look := func() {
		t.Helper()
		if err := w.Check(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	look()
	counter := func(org string) string {
		return f.svc.counters.key(counterID{org, keyOf("api_calls", periodStart("monthly", testNow))})
	}
	// Organisations until one's counter is on master 1, the one restored.
	org := f.org(t, "free")
	for cl.MasterOf(t, counter(org)) != 1 {
		org = f.org(t, "free")
	}
	limit := f.gate(t, org, "api_calls").Limit.Limit
	early := limit * 9 / 10
	f.record(t, org, ev("api_calls", early, "early"))
	cl.Save(t, 1)
	f.record(t, org, ev("api_calls", limit-early, "late"))
	if g := f.gate(t, org, "api_calls"); g.Used != limit || g.Allowed {
		t.Fatalf("before the restore: gate %d (allowed %t), want %d and refused", g.Used, g.Allowed, limit)
	}

	cl.Kill(1)
	if err := cl.Restart(1); err != nil {
		t.Fatal(err)
	}
	if g := f.gate(t, org, "api_calls"); g.Used != early {
		t.Fatalf("the restored master answered %d; the test shows nothing unless it answers the snapshot's %d", g.Used, early)
	}
	look()
	if g := f.gate(t, org, "api_calls"); g.Used != limit || g.Allowed {
		t.Fatalf("after the restart was noticed: gate %d (allowed %t), want %d and refused", g.Used, g.Allowed, limit)
	}
	if got, err := rdb.HGet(context.Background(), counter(org), "u").Result(); err != nil || got != strconv.FormatInt(limit, 10) {
		t.Fatalf("the rebuilt counter holds %q (%v), want the database's %d", got, err, limit)
	}
}
