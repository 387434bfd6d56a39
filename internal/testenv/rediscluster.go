package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-billing/tollgate/internal/redisconn"
)

// RedisCluster is a Redis Cluster of three masters started from the
// redis-server binary on loopback ports, each in a temporary directory of
// its own, without persistence. It serves its slots while a master is down
// (cluster-require-full-coverage no), so a test can stop one master and see
// the others carry on.
type RedisCluster struct {
	dir   string
	nodes []*clusterNode
}

type clusterNode struct {
	bin       string // redis-server
	port, bus int
	dir       string
	cmd       *exec.Cmd
	exited    chan error // receives cmd's end
}

// clusterMasters is how many masters a test cluster has.
const clusterMasters = 3

var (
	clusterOnce   sync.Once
	sharedCluster *RedisCluster
	clusterErr    error
)

// RedisClusterClient returns a client for the Redis Cluster shared by this
// test binary (started on first use, stopped by Main), under a key prefix of
// this test's own whose keys are deleted when it ends. Without redis-server
// the test skips, or fails when services are required. Tests that stop a
// master start their own with StartRedisCluster.
func RedisClusterClient(t testing.TB) *redisconn.Client {
	t.Helper()
	clusterOnce.Do(func() {
		sharedCluster, clusterErr = startRedisCluster()
	})
	if clusterErr != nil {
		unavailable(t, "Redis Cluster (redis-server)", clusterErr)
	}
	return sharedCluster.Client(t)
}

// StartRedisCluster starts a Redis Cluster for this test alone, stopped when
// it ends; without redis-server the test skips, or fails when services are
// required.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	c, err := startRedisCluster()
	if err != nil {
		unavailable(t, "Redis Cluster (redis-server)", err)
	}
	t.Cleanup(c.Stop)
	return c
}

// StopRedisCluster stops the shared cluster; Main calls it.
func StopRedisCluster() {
	if sharedCluster != nil {
		sharedCluster.Stop()
	}
}

// URL is REDIS_URL for the cluster: every master, in the addr= form.
func (c *RedisCluster) URL() string {
	u := "redis://" + c.addr(0)
	for i := 1; i < len(c.nodes); i++ {
		if i == 1 {
			u += "?"
		} else {
			u += "&"
		}
		u += "addr=" + c.addr(i)
	}
	return u
}

func (c *RedisCluster) addr(i int) string { return "127.0.0.1:" + strconv.Itoa(c.nodes[i].port) }

// Addr is master i's address.
func (c *RedisCluster) Addr(i int) string { return c.addr(i) }

// Client returns a client for the cluster under a key prefix of this test's
// own, whose keys are deleted when the test ends.
func (c *RedisCluster) Client(t testing.TB) *redisconn.Client {
	t.Helper()
	rdb, err := redisconn.Open(c.URL(), RedisPrefix(), redisconn.Tuning{DialTimeout: time.Second})
	if err != nil {
		t.Fatalf("open the test cluster: %v", err)
	}
	t.Cleanup(func() { forget(rdb) })
	return rdb
}

// MasterOf is the index of the master that holds key.
func (c *RedisCluster) MasterOf(t testing.TB, key string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rdb := c.nodes[0].client()
	defer rdb.Close()
	slot, err := rdb.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatalf("slot of %s: %v", key, err)
	}
	return min(int(slot)/(16384/clusterMasters), clusterMasters-1)
}

// Save writes master i's snapshot (SAVE): a Restart after Kill loads it, so
// the master comes back older than it left, as from a backup.
func (c *RedisCluster) Save(t testing.TB, i int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.nodes[i].do(ctx, "SAVE"); err != nil {
		t.Fatalf("snapshot master %d: %v", i, err)
	}
}

// AddReplica starts a node that replicates master i and returns its index,
// once it has synchronised. Kill, Restart and Failover take that index.
func (c *RedisCluster) AddReplica(t testing.TB, i int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	r := &clusterNode{bin: c.nodes[i].bin, port: ports[0], bus: ports[1], dir: filepath.Join(c.dir, strconv.Itoa(len(c.nodes)))}
	if err := os.Mkdir(r.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c.nodes = append(c.nodes, r)
	if err := r.start(); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[0].do(ctx, "CLUSTER", "MEET", "127.0.0.1", r.port, r.bus); err != nil {
		t.Fatalf("meet the replica: %v", err)
	}
	master := c.nodes[i].client()
	defer master.Close()
	id, err := master.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatal(err)
	}
	rc := r.client()
	defer rc.Close()
	// The replica can follow the master only once it has heard of it.
	if err := pollUntil(ctx, func() error { return rc.Do(ctx, "CLUSTER", "REPLICATE", id).Err() }); err != nil {
		t.Fatalf("replicate master %d: %v", i, err)
	}
	if err := pollUntil(ctx, func() error {
		info, err := rc.Info(ctx, "replication").Result()
		if err == nil && !strings.Contains(info, "master_link_status:up") {
			err = errors.New("not in sync yet")
		}
		return err
	}); err != nil {
		t.Fatalf("replica of master %d: %v", i, err)
	}
	if err := c.waitHealthy(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	return len(c.nodes) - 1
}

// Failover promotes replica r to master in the place of the master it
// follows (CLUSTER FAILOVER), as an operator or a crash would, and returns
// once it serves that master's slots.
func (c *RedisCluster) Failover(t testing.TB, r int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc := c.nodes[r].client()
	defer rc.Close()
	if err := rc.Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
		t.Fatalf("failover to node %d: %v", r, err)
	}
	if err := pollUntil(ctx, func() error {
		info, err := rc.Info(ctx, "replication").Result()
		if err == nil && !strings.Contains(info, "role:master") {
			err = errors.New("still a replica")
		}
		return err
	}); err != nil {
		t.Fatalf("failover to node %d: %v", r, err)
	}
	if err := c.waitHealthy(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// pollUntil calls try until it succeeds or ctx ends.
func pollUntil(ctx context.Context, try func() error) error {
	for {
		err := try()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond): // polling a server we do not control
		}
	}
}

// Kill stops master i at once, as a crash would.
func (c *RedisCluster) Kill(i int) {
	n := c.nodes[i]
	if n.cmd != nil {
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
	n.cmd = nil
}

// Restart starts master i again on its ports after Kill, with its node id
// and slots (nodes.conf): empty, or as of its last Save. It returns once
// every master sees the cluster whole again.
func (c *RedisCluster) Restart(i int) error {
	if err := c.nodes[i].start(); err != nil {
		return err
	}
	return c.waitHealthy(30 * time.Second)
}

// Stop stops every master and removes their directories.
func (c *RedisCluster) Stop() {
	for i := range c.nodes {
		c.Kill(i)
	}
	_ = os.RemoveAll(c.dir)
}

func startRedisCluster() (_ *RedisCluster, err error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found on PATH (install the Debian package redis-server)")
	}
	dir, err := os.MkdirTemp("", "tollgate-redis-cluster-")
	if err != nil {
		return nil, err
	}
	c := &RedisCluster{dir: dir}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	for i := range clusterMasters {
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		n := &clusterNode{bin: bin, port: ports[0], bus: ports[1], dir: filepath.Join(dir, strconv.Itoa(i))}
		if err := os.Mkdir(n.dir, 0o700); err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, n)
		if err := n.start(); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Slots split evenly, then every master meets the first.
	per := 16384 / clusterMasters
	for i, n := range c.nodes {
		lo, hi := i*per, (i+1)*per-1
		if i == clusterMasters-1 {
			hi = 16383
		}
		if err := n.do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi); err != nil {
			return nil, fmt.Errorf("assign slots %d-%d: %w", lo, hi, err)
		}
		if i > 0 {
			if err := c.nodes[0].do(ctx, "CLUSTER", "MEET", "127.0.0.1", n.port, n.bus); err != nil {
				return nil, fmt.Errorf("meet: %w", err)
			}
		}
	}
	return c, c.waitHealthy(30 * time.Second)
}

// waitHealthy returns once every master reports the cluster ok, with every
// slot assigned and no master failing, or errs at the deadline.
func (c *RedisCluster) waitHealthy(within time.Duration) error {
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		if last = c.healthy(); last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond) // polling a server we do not control
	}
	return fmt.Errorf("redis cluster not healthy within %s: %w", within, last)
}

func (c *RedisCluster) healthy() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, n := range c.nodes {
		rdb := n.client()
		info, err := rdb.ClusterInfo(ctx).Result()
		var nodes string
		if err == nil {
			nodes, err = rdb.ClusterNodes(ctx).Result()
		}
		rdb.Close()
		if err != nil {
			return fmt.Errorf("master on %d: %w", n.port, err)
		}
		for _, want := range []string{"cluster_state:ok", "cluster_slots_assigned:16384", "cluster_slots_ok:16384", "cluster_known_nodes:" + strconv.Itoa(len(c.nodes))} {
			if !strings.Contains(info, want+"\r\n") {
				return fmt.Errorf("master on %d lacks %s", n.port, want)
			}
		}
		if strings.Contains(nodes, "fail") {
			return fmt.Errorf("master on %d sees a failing master:\n%s", n.port, nodes)
		}
	}
	return nil
}

func (n *clusterNode) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(n.port), MaxRetries: -1, DialTimeout: time.Second})
}

func (n *clusterNode) do(ctx context.Context, args ...any) error {
	rdb := n.client()
	defer rdb.Close()
	return rdb.Do(ctx, args...).Err()
}

// start runs redis-server for the node and waits until it answers.
func (n *clusterNode) start() error {
	cmd := exec.Command(n.bin,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(n.port),
		"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(n.bus),
		"--cluster-config-file", filepath.Join(n.dir, "nodes.conf"),
		// A master that is down leaves its slots unserved, not the
		// whole cluster; and is noticed within a second.
		"--cluster-require-full-coverage", "no", "--cluster-node-timeout", "1000",
		"--dir", n.dir, "--save", "", "--appendonly", "no",
		"--logfile", filepath.Join(n.dir, "redis.log"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	n.cmd = cmd
	exited := make(chan error, 1)
	n.exited = exited
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			n.cmd = nil
			log, _ := os.ReadFile(filepath.Join(n.dir, "redis.log"))
			return fmt.Errorf("redis-server on port %d exited (%v): %s", n.port, err, log)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := n.do(ctx, "PING")
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond) // polling a process we do not control
	}
	return fmt.Errorf("redis-server on port %d did not answer within 10s", n.port)
}

// freePorts finds n loopback ports free right now.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// EachRedis runs fn as a subtest on each shape of Redis Tollgate runs on:
// one server (Redis) and a cluster of three masters (RedisClusterClient).
func EachRedis(t *testing.T, fn func(t *testing.T, rdb *redisconn.Client)) {
	t.Helper()
	t.Run("server", func(t *testing.T) { fn(t, Redis(t)) })
	t.Run("cluster", func(t *testing.T) { fn(t, RedisClusterClient(t)) })
}
