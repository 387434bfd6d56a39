package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tollgate-billing/tollgate/internal/app"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/config"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// The benchmark's organisations are on a plan of their own: enterprise's
// unlimited meters with a rate limit no phase can reach. Enterprise itself
// allows 2,000 req/s, which the fixed-rate phase sits exactly on and the
// saturation phase exceeds, so the figures would measure the limiter's 429s.
const (
	benchPlanID    = "bench"
	benchRateLimit = 1_000_000
)

// bench is a running Tollgate on a private database, and what the phases
// need of it.
type bench struct {
	app     *app.App
	baseURL string
	// runID makes every organisation and idempotency key of this run new,
	// so nothing collides with other runs on the shared Redis.
	runID  string
	orgIDs []string
	// PlanNote says how throttling was avoided, for the report.
	PlanNote string
	DBName   string
	// env is Tollgate's configuration, and dbURL its database, for the
	// server process the ingest section starts.
	env   map[string]string
	dbURL string
	// serverProfile is where the server process writes a CPU profile
	// (-server-cpuprofile), empty for none.
	serverProfile string
	// serverPprof is where the server process serves net/http/pprof
	// (-server-pprof), empty for nowhere.
	serverPprof string
	// serverTrace is where the server process writes an execution trace
	// around its first request slower than serverTraceAfter (-server-trace),
	// empty for none.
	serverTrace      string
	serverTraceAfter time.Duration
}

// start creates the database, writes the plans file, starts Tollgate behind
// a loopback HTTP server and returns the function that undoes all of it.
func start(ctx context.Context, o options, log *slog.Logger) (_ *bench, stop func(), err error) {
	var undo []func()
	stop = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()

	runID := fmt.Sprint(time.Now().Unix())
	b := &bench{runID: runID, DBName: "tollgate_bench_" + runID, serverProfile: o.serverProfile, serverPprof: o.serverPprof,
		serverTrace: o.serverTrace, serverTraceAfter: o.serverTraceAft}
	dbURL, drop, err := createDatabase(ctx, o.dbURL, b.DBName)
	if err != nil {
		return nil, stop, err
	}
	undo = append(undo, func() {
		if o.keepDB {
			log.Warn("benchmark database kept (-keep-db); drop it when done", "url", dbURL)
			return
		}
		if err := drop(); err != nil {
			log.Error("drop benchmark database", "db", b.DBName, "err", err)
		}
	})

	dir, err := os.MkdirTemp("", "tollgate-bench-")
	if err != nil {
		return nil, stop, err
	}
	undo = append(undo, func() { os.RemoveAll(dir) })
	plansFile, err := writePlans(dir)
	if err != nil {
		return nil, stop, err
	}
	b.PlanNote = fmt.Sprintf("orgs on plan %q from a bench PLANS_FILE (default meters and plans, plus a copy of "+
		"enterprise with rate_limit_per_second %d), assigned with orgs.SetPlan; "+
		"enterprise's own 2,000 req/s would throttle the saturation phase (probed in section 1)", benchPlanID, benchRateLimit)

	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, stop, err
	}
	env := map[string]string{
		"TOLLGATE_ENV":      "dev",
		"TOLLGATE_DATA_DIR": dir,
		"DATABASE_URL":      dbURL,
		"REDIS_URL":         o.redisURL,
		"JWT_SECRET":        hex.EncodeToString(secret),
		"PLANS_FILE":        plansFile,
		"LOG_LEVEL":         "warn",
		// The API's own limit would cap the saturation phase at 1,000
		// a second per token; kept on (it costs what it costs in
		// production) but out of reach.
		"API_RATE_LIMIT_PER_CREDENTIAL": "1000000", "API_RATE_LIMIT_PER_ORGANIZATION": "1000000",
	}
	b.env, b.dbURL = env, dbURL
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		return nil, stop, err
	}
	app.TuneGC() // as the tollgate binary does
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return nil, stop, fmt.Errorf("start tollgate: %w", err)
	}
	b.app = a
	undo = append(undo, a.Close)
	if err := a.Redis.Ping(ctx).Err(); err != nil {
		return nil, stop, fmt.Errorf("redis at %s: %w", o.redisURL, err)
	}
	undo = append(undo, func() { b.forgetRedisKeys(log) })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, stop, err
	}
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	undo = append(undo, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	b.baseURL = "http://" + ln.Addr().String()
	return b, stop, nil
}

// createDatabase makes an empty database beside the one dbURL names and
// returns its URL and how to drop it.
func createDatabase(ctx context.Context, dbURL, name string) (string, func() error, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", nil, fmt.Errorf("-db-url: %w", err)
	}
	admin, err := store.Open(ctx, store.Options{URL: dbURL, MaxOpenConns: 1})
	if err != nil {
		return "", nil, err
	}
	// name is built from a timestamp, so it needs no quoting.
	if err := admin.WithContext(ctx).Exec("CREATE DATABASE " + name).Error; err != nil {
		admin.Close()
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop := func() error {
		defer admin.Close()
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return admin.WithContext(dctx).Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)").Error
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

// writePlans writes the default catalogue plus the benchmark plan.
func writePlans(dir string) (string, error) {
	def := plans.Default()
	ent, ok := def.ByID("enterprise")
	if !ok {
		return "", errors.New("the default plans have no enterprise plan to copy")
	}
	p := ent
	p.ID, p.Name, p.RateLimitPerSecond = benchPlanID, "Benchmark", benchRateLimit
	f := struct {
		Meters []plans.Meter `yaml:"meters"`
		Plans  []plans.Plan  `yaml:"plans"`
	}{def.Meters(), append(slices.Clone(def.Plans()), p)}
	raw, err := yaml.Marshal(f)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "plans.yaml")
	return path, os.WriteFile(path, raw, 0o600)
}

// org creates an organisation of this run on a plan and returns its id and
// a token carrying every scope.
func (b *bench) org(ctx context.Context, name, planID string) (id, token string, err error) {
	ext := "bench-" + b.runID + "-" + name
	id, err = b.app.Orgs.Ensure(ctx, ext, "Benchmark "+name, "")
	if err != nil {
		return "", "", err
	}
	b.orgIDs = append(b.orgIDs, id)
	if err := orgs.SetPlan(ctx, b.app.DB.DB, id, planID, b.app.Clock.Now()); err != nil {
		return "", "", fmt.Errorf("put org %s on plan %s: %w", id, planID, err)
	}
	b.app.Usage.InvalidatePlan(id)
	token, err = b.app.Token(ext, auth.AllScopes, 2*time.Hour)
	return id, token, err
}

// forgetRedisKeys deletes the keys of this run's organisations (usage
// counters, rate-limit state). Their ids are fresh UUIDs, so the pattern can
// match nothing else on the shared server.
func (b *bench) forgetRedisKeys(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, id := range b.orgIDs {
		iter := b.app.Redis.Scan(ctx, 0, "*"+id+"*", 1000).Iterator()
		for iter.Next(ctx) {
			b.app.Redis.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			log.Warn("delete benchmark redis keys", "org", id, "err", err)
		}
	}
}
