package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is the harness's own redis-server, so that stopping it
// disturbs nothing else on the machine. It keeps nothing on disk unless told
// to save: a restart comes back empty, as a Redis that lost its data would,
// or from the snapshot save wrote.
type redisServer struct {
	bin, dir string
	port     int
	proc     *child
	starts   int
}

func newRedis(dir string) (*redisServer, error) {
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
	return &redisServer{bin: bin, dir: dir, port: port}, nil
}

func (r *redisServer) url() string { return "redis://127.0.0.1:" + strconv.Itoa(r.port) + "/0" }

// start runs redis-server in the foreground as a child and waits for PING.
func (r *redisServer) start(ctx context.Context) error {
	r.starts++
	proc, err := startChild("redis", filepath.Join(r.dir, "redis.log"), os.Environ(),
		r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--protected-mode", "yes")
	if err != nil {
		return err
	}
	r.proc = proc
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.port), MaxRetries: -1})
	defer rdb.Close()
	return waitFor("redis", 10*time.Second, proc, func() error {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		return rdb.Ping(pctx).Err()
	})
}

// save writes a snapshot (dump.rdb in its directory) that the next start
// loads, as a Redis restarted from a backup or failed over to a lagging
// replica comes back older than it left.
func (r *redisServer) save(ctx context.Context) error {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.port)})
	defer rdb.Close()
	if err := rdb.Save(ctx).Err(); err != nil {
		return fmt.Errorf("redis SAVE: %w", err)
	}
	return nil
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
