package redisconn_test

import (
	"context"
	"slices"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func TestAClusterURLOpensAClusterClientAndAPlainOneAServer(t *testing.T) {
	cases := []struct {
		url     string
		cluster bool
		bad     bool
	}{
		{"redis://127.0.0.1:6379/3", false, false},
		{"rediss://cache.example:6380", false, false},
		{"redis://h1:6379?addr=h2:6379&addr=h3:6379", true, false},
		{"rediss://user:pw@h1:6379?addr=h2:6379", true, false},
		{"redis://cfg:6379?addr=cfg:6379", true, false},
		{"redis://h1:6379/2?addr=h2:6379", true, true}, // a cluster has only database 0
		{"redis://h1:6379?addr=h2", true, true},        // an addr without a port
		{"redis://h1:6379/0?colour=blue", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.url, func(t *testing.T) {
			if got := redisconn.IsClusterURL(tc.url); got != tc.cluster {
				t.Fatalf("IsClusterURL = %v, want %v", got, tc.cluster)
			}
			c, err := redisconn.Open(tc.url, redisconn.DefaultPrefix, redisconn.Tuning{})
			if tc.bad {
				if err == nil {
					c.Close()
					t.Fatal("accepted")
				}
				if redisconn.CheckURL(tc.url) == nil {
					t.Fatal("CheckURL accepted what Open refused")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Cluster() != tc.cluster {
				t.Fatalf("Cluster() = %v, want %v", c.Cluster(), tc.cluster)
			}
		})
	}
}

func TestEveryMasterOfAClusterIsAShardWithATagOfItsOwn(t *testing.T) {
	c := testenv.RedisClusterClient(t)
	ctx := context.Background()
	shards, err := c.Shards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) != 3 {
		t.Fatalf("%d shards, want the 3 masters: %+v", len(shards), shards)
	}
	var addrs []string
	for _, sh := range shards {
		addrs = append(addrs, sh.Addr)
		// A key under the tag, written through the cluster client, is on
		// the shard's own master.
		key := c.Key("probe:" + sh.Tag)
		if err := c.Set(ctx, key, sh.Addr, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if got, err := sh.Node.Get(ctx, key).Result(); err != nil || got != sh.Addr {
			t.Fatalf("key tagged %s is not on master %s: %q, %v", sh.Tag, sh.Addr, got, err)
		}
	}
	slices.Sort(addrs)
	if len(slices.Compact(addrs)) != 3 {
		t.Fatalf("shards %v are not three masters", addrs)
	}
}

// TestTheWatcherNoticesOneMasterOfAClusterRestarting: one master killed and
// started again empty is a restart, seen once; the looks meanwhile fail for
// that master alone, and a cluster that answers as before is no restart.
func TestTheWatcherNoticesOneMasterOfAClusterRestarting(t *testing.T) {
	cl := testenv.StartRedisCluster(t)
	c := cl.Client(t)
	w := redisconn.NewWatcher(c, quiet())
	n := restarts(w)
	heard := 0
	w.OnChange("plans", func(_ context.Context, _ []string, all bool) {
		if all {
			heard++
		}
	})
	look(t, w)
	look(t, w)
	if *n != 0 {
		t.Fatalf("%d restarts reported by a cluster that answered as before", *n)
	}
	heard = 0

	cl.Kill(1)
	if err := w.Check(context.Background()); err == nil {
		t.Fatal("a look with a master down succeeded")
	}
	if *n != 0 {
		t.Fatalf("%d restarts reported while a master was down; it has not come back yet", *n)
	}
	if err := cl.Restart(1); err != nil {
		t.Fatal(err)
	}
	look(t, w)
	look(t, w)
	if *n != 1 {
		t.Fatalf("%d restarts reported after a master came back empty, want 1", *n)
	}
	if heard != 1 {
		t.Fatalf("announcement handlers told \"everything changed\" %d times after the restart, want 1", heard)
	}
}

// TestTheWatcherNoticesAFailoverToAReplica: a replica promoted in a
// master's place serves the same slots, so it is watched under the same
// tag, and its other run_id is a restart, reported once, within a few looks
// (go-redis learns the new layout from the first redirect).
func TestTheWatcherNoticesAFailoverToAReplica(t *testing.T) {
	cl := testenv.StartRedisCluster(t)
	replica := cl.AddReplica(t, 1)
	c := cl.Client(t)
	w := redisconn.NewWatcher(c, quiet())
	n := restarts(w)
	look(t, w)
	look(t, w)

	cl.Failover(t, replica)
	for range 4 {
		if *n > 0 {
			break
		}
		_ = w.Check(context.Background()) // the first look may meet the old layout
	}
	if *n != 1 {
		t.Fatalf("%d restarts reported within four looks after a failover, want 1", *n)
	}
	look(t, w)
	if *n != 1 {
		t.Fatalf("the failover was reported again: %d restarts", *n)
	}
}
