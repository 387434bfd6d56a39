package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// redisCluster is three local masters, no replicas, the 16384 slots split
// between them: the smallest Redis Cluster, enough to put every key
// Tollgate writes on one of several shards.
type redisCluster struct {
	nodes []*redisServer
	// victim is the master phase 1's fault kills.
	victim int
	// before holds each master's nonce keys at the snapshot.
	before []map[string]struct{}
}

// clusterSlots splits the slots in three, as redis-cli --cluster create
// does.
var clusterSlots = [][2]int{{0, 5460}, {5461, 10922}, {10923, 16383}}

func newRedisCluster(ctx context.Context, dir string) (*redisCluster, error) {
	c := &redisCluster{victim: 1}
	for i := range clusterSlots {
		n, err := newRedis(filepath.Join(dir, "redis-"+strconv.Itoa(i)), true)
		if err != nil {
			return c, err
		}
		c.nodes = append(c.nodes, n)
		if err := n.start(ctx); err != nil {
			return c, err
		}
	}
	first := c.nodes[0].client()
	defer first.Close()
	for i, n := range c.nodes {
		rdb := n.client()
		err := rdb.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", clusterSlots[i][0], clusterSlots[i][1]).Err()
		rdb.Close()
		if err != nil {
			return c, fmt.Errorf("CLUSTER ADDSLOTSRANGE on %s: %w", n.addr(), err)
		}
		if i > 0 {
			if err := first.ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(n.port)).Err(); err != nil {
				return c, fmt.Errorf("CLUSTER MEET %s: %w", n.addr(), err)
			}
		}
	}
	return c, c.waitOK(ctx, c.nodes...)
}

// waitOK waits until each node says cluster_state:ok and knows all three
// masters.
func (c *redisCluster) waitOK(ctx context.Context, nodes ...*redisServer) error {
	for _, n := range nodes {
		rdb := n.client()
		err := waitFor("redis cluster state on "+n.addr(), 30*time.Second, n.proc, func() error {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			info, err := rdb.ClusterInfo(pctx).Result()
			if err != nil {
				return err
			}
			want := fmt.Sprintf("cluster_known_nodes:%d", len(c.nodes))
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, want) {
				return fmt.Errorf("not ok yet: %s", strings.Join(strings.Fields(info)[:3], " "))
			}
			return nil
		})
		rdb.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// url is the form go-redis's ParseClusterURL reads.
func (c *redisCluster) url() string {
	u := "redis://" + c.nodes[0].addr()
	for i, n := range c.nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + n.addr()
	}
	return u
}

func (c *redisCluster) describe() string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.addr()
	}
	return "private Redis Cluster, three masters, no replicas: " + strings.Join(addrs, ", ")
}

// outage kills one master (SIGKILL, as a crash) and starts it again empty;
// the other two keep their slots and their data.
func (c *redisCluster) outage(ctx context.Context, d time.Duration) (string, error) {
	n := c.nodes[c.victim]
	n.kill()
	if err := sleepCtx(ctx, d); err != nil {
		return "", err
	}
	if err := n.start(ctx); err != nil {
		return "", fmt.Errorf("restart redis master %s: %w", n.addr(), err)
	}
	if err := c.waitOK(ctx, c.nodes...); err != nil {
		return "", err
	}
	return fmt.Sprintf("redis master %s (slots %d-%d) killed, started again (empty)",
		n.addr(), clusterSlots[c.victim][0], clusterSlots[c.victim][1]), nil
}

func (c *redisCluster) stopAll() {
	for _, n := range c.nodes {
		n.stop()
	}
}

func (c *redisCluster) startAll(ctx context.Context) error {
	for _, n := range c.nodes {
		if err := n.start(ctx); err != nil {
			return err
		}
	}
	return c.waitOK(ctx, c.nodes...)
}

func (c *redisCluster) snapshot(ctx context.Context) error {
	c.before = make([]map[string]struct{}, len(c.nodes))
	for i, n := range c.nodes {
		if err := n.save(ctx); err != nil {
			return err
		}
		keys, err := n.keys(ctx, "nonce")
		if err != nil {
			return err
		}
		c.before[i] = keys
	}
	return nil
}

// restoreSnapshot restarts, from its snapshot, the master that took a nonce
// key since the snapshot: that is where the request to replay left its
// mark. The other masters' snapshots are dropped unused.
func (c *redisCluster) restoreSnapshot(ctx context.Context) (string, error) {
	which := -1
	for i, n := range c.nodes {
		keys, err := n.keys(ctx, "nonce")
		if err != nil {
			return "", err
		}
		for k := range keys {
			if _, old := c.before[i][k]; !old {
				which = i
			}
		}
	}
	if which < 0 {
		return "", fmt.Errorf("no master took a new nonce key after the snapshot")
	}
	n := c.nodes[which]
	n.stop()
	if err := n.start(ctx); err != nil {
		return "", fmt.Errorf("restart redis master %s from the snapshot: %w", n.addr(), err)
	}
	if err := c.waitOK(ctx, c.nodes...); err != nil {
		return "", err
	}
	for _, n := range c.nodes {
		if err := n.dropSnapshot(); err != nil {
			return "", err
		}
	}
	return "redis master " + n.addr(), nil
}

func (c *redisCluster) close() { c.stopAll() }
