package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisBackend is the Redis every Tollgate process shares: one server, or a
// cluster of three masters (-redis cluster).
type redisBackend interface {
	// url is REDIS_URL for the processes.
	url() string
	describe() string
	// outage is phase 1's Redis fault: the server (or one master) goes
	// down for d and comes back empty. It returns what it did.
	outage(ctx context.Context, d time.Duration) (string, error)
	// stopAll and startAll take every server down and bring them back
	// empty: Redis is unreachable in between, whatever the key.
	stopAll()
	startAll(ctx context.Context) error
	// snapshot saves every server's data; restoreSnapshot then restarts a
	// server (in a cluster, the master that took a new nonce key since the
	// snapshot) from it, so it comes back older than it left, and says
	// which.
	snapshot(ctx context.Context) error
	restoreSnapshot(ctx context.Context) (string, error)
	close()
}

func newRedisBackend(ctx context.Context, mode, dir string) (redisBackend, error) {
	switch mode {
	case "single":
		r, err := newRedis(filepath.Join(dir, "redis"), false)
		if err != nil {
			return nil, err
		}
		return &singleRedis{r}, r.start(ctx)
	case "cluster":
		return newRedisCluster(ctx, dir)
	}
	return nil, fmt.Errorf("-redis must be single or cluster, not %q", mode)
}

// redisServer is one of the harness's own redis-servers, so that stopping it
// disturbs nothing else on the machine. It keeps nothing on disk unless told
// to save: a restart comes back empty, as a Redis that lost its data would,
// or from the snapshot save wrote. A cluster node also keeps its
// nodes.conf, so it comes back owning its slots.
type redisServer struct {
	bin, dir string
	port     int
	cluster  bool
	proc     *child
	starts   int
}

func newRedis(dir string, cluster bool) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server is not installed: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &redisServer{bin: bin, dir: dir, port: port, cluster: cluster}, nil
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *redisServer) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: r.addr(), MaxRetries: -1})
}

// start runs redis-server in the foreground as a child and waits for PING
// (and, in a cluster, for the node to see the cluster whole).
func (r *redisServer) start(ctx context.Context) error {
	r.starts++
	args := []string{r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--protected-mode", "yes"}
	if r.cluster {
		// Without replicas a master that is down is a per-shard outage; the
		// other masters keep serving their slots meanwhile.
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000", "--cluster-require-full-coverage", "no")
	}
	proc, err := startChild("redis", filepath.Join(r.dir, "redis.log"), os.Environ(), args...)
	if err != nil {
		return err
	}
	r.proc = proc
	rdb := r.client()
	defer rdb.Close()
	return waitFor("redis "+r.addr(), 10*time.Second, proc, func() error {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		return rdb.Ping(pctx).Err()
	})
}

// save writes a snapshot (dump.rdb in its directory) that the next start
// loads, as a Redis restarted from a backup or failed over to a lagging
// replica comes back older than it left.
func (r *redisServer) save(ctx context.Context) error {
	rdb := r.client()
	defer rdb.Close()
	if err := rdb.Save(ctx).Err(); err != nil {
		return fmt.Errorf("redis SAVE on %s: %w", r.addr(), err)
	}
	return nil
}

// keys lists the keys containing part (SCAN, not KEYS: the server is live).
func (r *redisServer) keys(ctx context.Context, part string) (map[string]struct{}, error) {
	rdb := r.client()
	defer rdb.Close()
	out := map[string]struct{}{}
	it := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for it.Next(ctx) {
		if strings.Contains(it.Val(), part) {
			out[it.Val()] = struct{}{}
		}
	}
	return out, it.Err()
}

// dropSnapshot deletes the snapshot once loaded, so later restarts come
// back empty again.
func (r *redisServer) dropSnapshot() error {
	if err := os.Remove(filepath.Join(r.dir, "dump.rdb")); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

func (r *redisServer) stop() {
	if r.proc != nil {
		r.proc.stop(5 * time.Second)
	}
}

// kill ends the server at once, as a crash would.
func (r *redisServer) kill() {
	if r.proc != nil {
		r.proc.kill()
	}
}

// singleRedis is the default: one redis-server.
type singleRedis struct{ r *redisServer }

func (s *singleRedis) url() string { return "redis://" + s.r.addr() + "/0" }

func (s *singleRedis) describe() string { return "private redis-server on " + s.r.addr() }

func (s *singleRedis) outage(ctx context.Context, d time.Duration) (string, error) {
	s.r.stop()
	if err := sleepCtx(ctx, d); err != nil {
		return "", err
	}
	if err := s.r.start(ctx); err != nil {
		return "", fmt.Errorf("restart redis: %w", err)
	}
	return "redis stopped, started again (empty)", nil
}

func (s *singleRedis) stopAll()                           { s.r.stop() }
func (s *singleRedis) startAll(ctx context.Context) error { return s.r.start(ctx) }
func (s *singleRedis) snapshot(ctx context.Context) error { return s.r.save(ctx) }
func (s *singleRedis) close()                             { s.r.stop() }

func (s *singleRedis) restoreSnapshot(ctx context.Context) (string, error) {
	s.r.stop() // --save "": shutting down writes nothing, the snapshot stays
	if err := s.r.start(ctx); err != nil {
		return "", fmt.Errorf("restart redis from the snapshot: %w", err)
	}
	return "redis", s.r.dropSnapshot()
}

// sleepCtx waits d unless ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
