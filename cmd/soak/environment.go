package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// environment is everything the phases run against: three Tollgate
// processes (a, b and c) sharing one Postgres database and one Redis (a
// server or a cluster), and a receiver for Tollgate's outbound webhooks, all
// owned by the harness.
type environment struct {
	dir   string
	runID string
	keep  bool
	log   *slog.Logger

	pg    *postgres
	redis redisBackend
	procs []*tollgate
	hooks *receiver
	// alerts is what phase 1 leaves for the alert check at the end.
	alerts  *alertCheck
	catalog *plans.Catalog
	// db is the harness's own connection, for checking what was stored.
	db *pgxpool.Pool
	// store is the same database as the services open it, for the one
	// record the harness makes through a service (billing's record of a
	// Checkout it stands in for).
	store *store.DB

	jwtSecret     []byte
	webhookSecret string
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newEnvironment starts everything. On error it returns what it started, so
// the caller's close stops it.
func newEnvironment(ctx context.Context, o options, log *slog.Logger) (*environment, error) {
	dir, err := os.MkdirTemp("", "tollgate-soak-")
	if err != nil {
		return nil, err
	}
	e := &environment{
		dir: dir, runID: randomHex(4), keep: o.keep, log: log,
		jwtSecret: []byte(randomHex(32)), webhookSecret: "whsec_soak_" + randomHex(16),
	}
	// The private cluster runs as the postgres user, which must reach its
	// directory inside this one.
	if err := os.Chmod(dir, 0o755); err != nil {
		return e, err
	}
	log.Info("soak: working directory", "dir", dir)

	if e.catalog, err = writePlans(filepath.Join(dir, "plans.yaml")); err != nil {
		return e, err
	}
	log.Info("soak: building tollgate")
	bin, err := buildTollgate(ctx, dir)
	if err != nil {
		return e, err
	}
	log.Info("soak: starting postgres")
	if e.pg, err = newPostgres(ctx, dir, o, log); err != nil {
		return e, err
	}
	log.Info("soak: starting redis", "mode", o.redisMode)
	if e.redis, err = newRedisBackend(ctx, o.redisMode, dir); err != nil {
		return e, err
	}
	if e.hooks, err = newReceiver(); err != nil {
		return e, err
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"TOLLGATE_ENV=dev", "LOG_LEVEL=info",
		"DATABASE_URL=" + e.pg.url(), "REDIS_URL=" + e.redis.url(),
		"JWT_SECRET=" + string(e.jwtSecret), "STRIPE_WEBHOOK_SECRET=" + e.webhookSecret,
		"PLANS_FILE=" + filepath.Join(dir, "plans.yaml"),
		// Like every plan's rate (soakRateLimit), the API's own limits are
		// kept out of reach of the load: per credential, and per address,
		// which is what a refused replay (no valid credential) is charged
		// to; a 429 there would hide whether the nonce refused it.
		"API_RATE_LIMIT_PER_CREDENTIAL=1000000",
		"API_RATE_LIMIT_PER_ORGANIZATION=1000000",
		"API_RATE_LIMIT_PER_ADDRESS=1000000",
		// No STRIPE_SECRET_KEY: nothing in the soak may call Stripe.
	}
	// a migrates the fresh database alone; b and c start on the migrated
	// schema.
	log.Info("soak: starting tollgate a, b and c")
	for _, name := range []string{"a", "b", "c"} {
		t, err := startTollgate(ctx, name, bin, dir, env)
		if err != nil && o.redisMode == "cluster" {
			return e, fmt.Errorf("%w (-redis cluster needs a Tollgate that reads REDIS_URL in go-redis's ParseClusterURL form)", err)
		}
		if err != nil {
			return e, err
		}
		e.procs = append(e.procs, t)
	}
	if e.db, err = pgxpool.New(ctx, e.pg.url()); err != nil {
		return e, err
	}
	if e.store, err = store.Open(ctx, store.Options{URL: e.pg.url(), MaxOpenConns: 4}); err != nil {
		return e, err
	}
	return e, nil
}

func (e *environment) describe() []string {
	at := make([]string, len(e.procs))
	for i, t := range e.procs {
		at[i] = t.name + " at " + t.url
	}
	return []string{
		"postgres: " + e.pg.describe(),
		"redis:    " + e.redis.describe(),
		"tollgate: " + strings.Join(at, ", ") + " (one binary, shared database and Redis)",
		"webhooks: receiver at " + e.hooks.url(""),
	}
}

// processes are the Tollgates, for spreading load.
func (e *environment) processes() []*tollgate { return e.procs }

// proc is process i, counting round: proc(i) and proc(i+1) always differ.
func (e *environment) proc(i int) *tollgate { return e.procs[i%len(e.procs)] }

// token mints a JWT for an organisation's external id, as its identity
// provider would.
func (e *environment) token(org string) string {
	now := time.Now()
	c := auth.Claims{Org: org, Scope: "billing:read billing:write usage:write"}
	c.Subject = "soak@" + org
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(2 * time.Hour))
	tok, err := auth.Mint(e.jwtSecret, c)
	if err != nil {
		panic(err) // HS256 over a fixed secret cannot fail
	}
	return tok
}

// close stops everything in reverse order and removes the directory unless
// asked to keep it or the run failed (its logs are the evidence).
func (e *environment) close(failed bool) {
	if e.db != nil {
		e.db.Close()
	}
	if e.store != nil {
		_ = e.store.Close()
	}
	for i := len(e.procs) - 1; i >= 0; i-- {
		e.procs[i].stop()
	}
	if e.hooks != nil {
		e.hooks.close()
	}
	if e.redis != nil {
		e.redis.close()
	}
	if e.pg != nil {
		e.pg.close()
	}
	switch {
	case e.keep:
		e.log.Info("soak: kept working directory", "dir", e.dir)
	case failed:
		e.log.Warn("soak: run failed; kept working directory with the logs", "dir", e.dir)
	default:
		_ = os.RemoveAll(e.dir)
	}
}
