package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/plans"
)

// environment is everything the phases run against: two Tollgate processes
// (a and b) sharing one Postgres database and one Redis, all owned by the
// harness.
type environment struct {
	dir   string
	runID string
	keep  bool
	log   *slog.Logger

	pg      *postgres
	redis   *redisServer
	a, b    *tollgate
	catalog *plans.Catalog
	// db is the harness's own connection, for checking what was stored.
	db *pgxpool.Pool

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
	log.Info("soak: starting redis")
	if e.redis, err = newRedis(filepath.Join(dir, "redis")); err != nil {
		return e, err
	}
	if err := e.redis.start(ctx); err != nil {
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
		"API_RATE_LIMIT_PER_ADDRESS=1000000",
		// No STRIPE_SECRET_KEY: nothing in the soak may call Stripe.
	}
	// a migrates the fresh database alone; b starts on the migrated schema.
	log.Info("soak: starting tollgate a and b")
	if e.a, err = startTollgate(ctx, "a", bin, dir, env); err != nil {
		return e, err
	}
	if e.b, err = startTollgate(ctx, "b", bin, dir, env); err != nil {
		return e, err
	}
	if e.db, err = pgxpool.New(ctx, e.pg.url()); err != nil {
		return e, err
	}
	return e, nil
}

func (e *environment) describe() []string {
	return []string{
		"postgres: " + e.pg.describe(),
		"redis:    private redis-server on " + strings.TrimPrefix(e.redis.url(), "redis://"),
		"tollgate: a at " + e.a.url + ", b at " + e.b.url + " (one binary, shared database and Redis)",
	}
}

// processes are the two Tollgates, for spreading load.
func (e *environment) processes() []*tollgate { return []*tollgate{e.a, e.b} }

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
	for _, t := range []*tollgate{e.b, e.a} {
		if t != nil {
			t.stop()
		}
	}
	if e.redis != nil {
		e.redis.stop()
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
