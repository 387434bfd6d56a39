// Package testenv gives tests the real parts Tollgate runs on: a fresh
// migrated database on Postgres and on SQLite, a Redis, and stripe-mock.
//
// Postgres and Redis are used when reachable (TEST_DATABASE_URL,
// TEST_REDIS_URL, defaulting to the local servers) and otherwise replaced by
// SQLite and miniredis, so `go test ./...` passes on a bare machine. With
// TOLLGATE_REQUIRE_SERVICES=1 (set by .ci/run) an unreachable service fails
// the test instead.
package testenv

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// Required reports whether missing services must fail tests.
func Required() bool {
	v := os.Getenv("TOLLGATE_REQUIRE_SERVICES")
	return v == "1" || strings.EqualFold(v, "true")
}

func unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if Required() {
		t.Fatalf("%s is required (TOLLGATE_REQUIRE_SERVICES=1) but unreachable: %v", what, err)
	}
	t.Skipf("%s unreachable, skipping: %v", what, err)
}

// PostgresAdminURL is the server tests create their databases on.
func PostgresAdminURL() string {
	if v := os.Getenv("TEST_DATABASE_URL"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// PostgresURL creates an empty database for this test and returns its URL;
// the database is dropped when the test ends. It skips (or fails, when
// services are required) if Postgres is unreachable.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin := PostgresAdminURL()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		unavailable(t, "Postgres", err)
	}
	name := fmt.Sprintf("tollgate_test_%d_%s", time.Now().UnixNano(), strings.ReplaceAll(store.NewID()[:8], "-", ""))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		conn.Close(ctx)
		t.Fatalf("create test database: %v", err)
	}
	conn.Close(ctx)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, admin); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// OpenDB returns a fresh, migrated database of the given dialect.
func OpenDB(t testing.TB, d store.Dialect) *store.DB {
	t.Helper()
	opts := store.Options{}
	if d == store.Postgres {
		opts.URL = PostgresURL(t)
	} else {
		opts.SQLitePath = filepath.Join(t.TempDir(), "tollgate.db")
	}
	db, err := store.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open %s: %v", d, err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.MigrateUp(context.Background()); err != nil {
		t.Fatalf("migrate %s: %v", d, err)
	}
	return db
}

// Dialects are the databases every store test runs on.
var Dialects = []store.Dialect{store.Postgres, store.SQLite}

// EachDialect runs fn as a subtest on a fresh database of each dialect.
func EachDialect(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	for _, d := range Dialects {
		t.Run(string(d), func(t *testing.T) {
			fn(t, OpenDB(t, d))
		})
	}
}

// DB returns Postgres when reachable (or required), SQLite otherwise; for
// tests whose subject is not the database itself.
func DB(t testing.TB) *store.DB {
	t.Helper()
	if Required() || postgresReachable() {
		return OpenDB(t, store.Postgres)
	}
	return OpenDB(t, store.SQLite)
}

var (
	pgOnce sync.Once
	pgOK   bool
)

func postgresReachable() bool {
	pgOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, PostgresAdminURL())
		if err == nil {
			pgOK = true
			c.Close(ctx)
		}
	})
	return pgOK
}

// RedisURL is the Redis server tests use.
func RedisURL() string {
	if v := os.Getenv("TEST_REDIS_URL"); v != "" {
		return v
	}
	return "redis://127.0.0.1:6379/0"
}

var (
	redisOnce sync.Once
	redisErr  error
	// run names this test process, so its keys on a shared Redis never
	// meet another run's, nor a Tollgate's (those live under "tollgate:").
	run = fmt.Sprintf("tollgate-test:%d-%s:", os.Getpid(), store.NewID()[:8])
	// seq numbers the prefixes handed out in this process.
	seq atomic.Int64
)

// realRedis reports, once per process, whether the real Redis answers, so
// that a bare machine pays for one refused dial rather than one per test.
func realRedis() error {
	redisOnce.Do(func() {
		opt, err := redis.ParseURL(RedisURL())
		if err != nil {
			redisErr = fmt.Errorf("TEST_REDIS_URL: %w", err)
			return
		}
		opt.MaxRetries, opt.DialerRetries = -1, 1
		c := redis.NewClient(opt)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		redisErr = c.Ping(ctx).Err()
	})
	return redisErr
}

// RedisPrefix is a key prefix no other test, test run or Tollgate uses.
func RedisPrefix() string { return fmt.Sprintf("%s%d:", run, seq.Add(1)) }

// RealRedis is the real Redis's URL and a key prefix for this test, whose
// keys are deleted when it ends, for tests that start a Tollgate binary; the
// test skips, or fails when services are required, if Redis is unreachable.
func RealRedis(t testing.TB) (url, prefix string) {
	t.Helper()
	if err := realRedis(); err != nil {
		unavailable(t, "Redis", err)
	}
	opt, _ := redis.ParseURL(RedisURL())
	c := redisconn.New(redis.NewClient(opt), RedisPrefix())
	t.Cleanup(func() { forget(c) })
	return RedisURL(), c.Prefix()
}

// forget deletes the keys under c's prefix, on every master of a cluster,
// and closes c.
func forget(c *redisconn.Client) {
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shards, err := c.Shards(ctx)
	if err != nil {
		return
	}
	for _, sh := range shards {
		iter := sh.Node.Scan(ctx, 0, c.Prefix()+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		// One key per DEL: on a cluster the keys are in many slots.
		pipe := c.Pipeline()
		for _, k := range keys {
			pipe.Del(ctx, k)
		}
		_, _ = pipe.Exec(ctx)
	}
}

// Redis returns a client for the real Redis when reachable (or required),
// and for a fresh miniredis otherwise. Its keys go under a prefix of this
// test's own (RedisPrefix), deleted when the test ends, so tests can neither
// see nor disturb each other, another test run or a Tollgate on the same
// server. Tests that flush or stop Redis use MiniRedis.
func Redis(t testing.TB) *redisconn.Client {
	t.Helper()
	if err := realRedis(); err != nil {
		if Required() {
			t.Fatalf("Redis is required (TOLLGATE_REQUIRE_SERVICES=1) but unreachable: %v", err)
		}
		return MiniRedis(t)
	}
	opt, _ := redis.ParseURL(RedisURL())
	c := redisconn.New(redis.NewClient(opt), RedisPrefix())
	t.Cleanup(func() { forget(c) })
	return c
}

// MiniRedis returns a client for a private in-process Redis, for tests that
// flush or stop it.
func MiniRedis(t testing.TB) *redisconn.Client {
	t.Helper()
	_, c := MiniRedisServer(t)
	return c
}

// MiniRedisServer is MiniRedis with the server, for tests that look inside
// it, stop it or restore it from a snapshot.
func MiniRedisServer(t testing.TB) (*miniredis.Miniredis, *redisconn.Client) {
	t.Helper()
	m := miniredis.RunT(t)
	c := redisconn.New(redis.NewClient(&redis.Options{Addr: m.Addr()}), RedisPrefix())
	t.Cleanup(func() { c.Close() })
	return m, c
}

// FuzzDB is the database of a fuzz target. A fuzzing run (go test -fuzz)
// gets SQLite: in-process, so the engine's workers run at full speed. The
// seed corpus, which every go test runs, gets DB: Postgres where reachable
// (always in CI), and SQLite on a bare machine (CI's second pass), so the
// seeds run on both.
func FuzzDB(f *testing.F) *store.DB {
	f.Helper()
	if fl := flag.Lookup("test.fuzz"); fl != nil && fl.Value.String() != "" {
		return OpenDB(f, store.SQLite)
	}
	return DB(f)
}
