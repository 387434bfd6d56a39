// Package app assembles Tollgate from its configuration: it opens the
// database and Redis, builds every domain service, and mounts the HTTP
// routes. server.go and the end-to-end tests start Tollgate through it, so
// both run the same wiring.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"
	"github.com/stripe/stripe-go/v76/client"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/config"
	"github.com/tollgate-billing/tollgate/internal/invoices"
	"github.com/tollgate-billing/tollgate/internal/jobs"
	"github.com/tollgate-billing/tollgate/internal/observe"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/outbound"
	"github.com/tollgate-billing/tollgate/internal/overage"
	"github.com/tollgate-billing/tollgate/internal/plans"
	"github.com/tollgate-billing/tollgate/internal/ratelimit"
	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/signing"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient"
	"github.com/tollgate-billing/tollgate/internal/stripehook"
	"github.com/tollgate-billing/tollgate/internal/usage"
)

// App is a running Tollgate's parts.
type App struct {
	Config  config.Config
	Log     *slog.Logger
	Clock   clock.Clock
	DB      *store.DB
	Redis   *redisconn.Client
	Catalog *plans.Catalog

	Orgs     *orgs.Service
	Keys     *auth.Keys
	Billing  *billing.Service
	Invoices *invoices.Service
	Usage    *usage.Service
	// Overage bills usage past soft limits on Stripe's cycle invoices.
	Overage *overage.Service
	Limiter *ratelimit.Limiter
	// API protects Tollgate's own endpoint, per credential and address.
	API  *ratelimit.API
	Auth *auth.Authenticator
	// Jobs runs background work (River); Webhooks delivers events to the
	// host through it.
	Jobs     *jobs.Runner
	Webhooks *outbound.Service
	// Stripe is nil when STRIPE_SECRET_KEY is unset.
	Stripe *client.API

	jwtSecret []byte
	// background lives as long as the app: the context of its loops.
	background context.Context
	closers    []func()
}

// Option adjusts how New builds the app (tests inject a clock).
type Option func(*App)

// WithClock replaces the wall clock.
func WithClock(c clock.Clock) Option { return func(a *App) { a.Clock = c } }

// WithDB uses an open, migrated database instead of DATABASE_URL. The caller
// keeps ownership and closes it.
func WithDB(db *store.DB) Option { return func(a *App) { a.DB = db } }

// WithRedis uses a connected client, with its key prefix, instead of
// REDIS_URL and REDIS_KEY_PREFIX. The caller keeps ownership and closes it.
func WithRedis(c *redisconn.Client) Option { return func(a *App) { a.Redis = c } }

// New builds Tollgate. On error everything opened so far is closed.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts ...Option) (_ *App, err error) {
	a := &App{Config: cfg, Log: log, Clock: clock.Real{}}
	for _, o := range opts {
		o(a)
	}
	// go-redis has one logger per process; it would otherwise print a raw
	// stderr line per failed dial.
	redis.SetLogger(observe.RedisLogger{Log: log})
	defer func() {
		if err != nil {
			a.Close()
		}
	}()

	if a.Catalog, err = plans.Load(cfg.PlansFile); err != nil {
		return nil, &config.Error{Var: "PLANS_FILE", Problem: err.Error()}
	}
	// The secret before the database: a data directory that cannot hold
	// it stops start-up before anything is migrated.
	if a.jwtSecret, err = JWTSecret(cfg, true); err != nil {
		return nil, err
	}
	if a.DB == nil {
		if err := a.openDB(ctx); err != nil {
			return nil, err
		}
	}
	if a.Redis == nil {
		if err := a.openRedis(ctx); err != nil {
			return nil, err
		}
	}
	return a, a.build(ctx)
}

// OpenDatabase opens the configured database (DATABASE_URL, or the embedded
// SQLite file) and nothing else, for commands such as `migrate` that must
// not start the background jobs, which would trip over a schema they are
// about to create. The caller closes it.
func OpenDatabase(ctx context.Context, cfg config.Config, log *slog.Logger) (*store.DB, error) {
	opts := store.Options{URL: cfg.DatabaseURL, Logger: log}
	if opts.URL == "" {
		opts.SQLitePath = filepath.Join(cfg.DataDir, "tollgate.db")
		// The file depends on the directory the server starts in: say which,
		// so a start from another directory (an empty database, and another
		// dev secret) is plain in the first lines.
		where, err := filepath.Abs(opts.SQLitePath)
		if err != nil {
			where = opts.SQLitePath
		}
		log.Info("DATABASE_URL unset: using the embedded SQLite file", "path", where)
	}
	db, err := store.Open(ctx, opts)
	if err != nil {
		// Without DATABASE_URL the database is a file in the data directory:
		// a directory that cannot hold it is that variable's fault.
		if cfg.DatabaseURL == "" {
			return nil, &config.Error{Var: "TOLLGATE_DATA_DIR", Problem: err.Error()}
		}
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	return db, nil
}

func (a *App) openDB(ctx context.Context) error {
	db, err := OpenDatabase(ctx, a.Config, a.Log)
	if err != nil {
		return err
	}
	a.DB = db
	a.closers = append(a.closers, func() { db.Close() })
	if a.Config.Migrate {
		if err := db.MigrateUp(ctx); err != nil {
			return err
		}
	}
	return nil
}

// openRedis connects to REDIS_URL (one server, or a cluster when the URL
// lists addr= nodes), or starts an embedded miniredis so that development
// runs the same code path as production.
func (a *App) openRedis(ctx context.Context) error {
	url := a.Config.RedisURL
	if url == "" {
		m := miniredis.NewMiniRedis()
		if err := m.Start(); err != nil {
			return fmt.Errorf("start embedded redis: %w", err)
		}
		a.closers = append(a.closers, m.Close)
		url = "redis://" + m.Addr()
		a.Log.Info("REDIS_URL unset: using embedded miniredis", "addr", m.Addr())
	}
	// Redis is a cache: fail fast and fall back to the database rather
	// than retry while a request waits.
	rdb, err := redisconn.Open(url, a.Config.RedisKeyPrefix, redisconn.Tuning{
		MaxRetries: 1, DialerRetries: 1,
		DialTimeout: time.Second, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
	})
	if err != nil {
		return &config.Error{Var: "REDIS_URL", Problem: err.Error()}
	}
	a.Redis = rdb
	a.closers = append(a.closers, func() { a.Redis.Close() })
	// Redis is a cache: Tollgate starts without it and falls back to the
	// database, so an unreachable Redis is logged, not fatal. A server that
	// answers but refuses (a database number out of range, a wrong
	// password, a cluster URL for a server without cluster mode) will
	// refuse forever: that is the configuration, and it stops start-up
	// rather than run without rate limits.
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := a.Redis.Ping(pctx).Err(); err != nil {
		if !store.IsUnavailable(err) {
			return &config.Error{Var: "REDIS_URL", Problem: err.Error()}
		}
		a.Log.Warn("redis unreachable at start; serving from the database until it answers", "err", err)
	}
	return nil
}

const devSecretFile = ".tollgate-dev-jwt-secret"

// JWTSecret is the HS256 secret tokens are signed with: JWT_SECRET, or in
// development a generated secret kept in the data directory so dev tokens
// survive restarts. It is nil in production with public keys only. It
// touches nothing else, so `tollgate token` signs without a database.
//
// Only the server creates the dev secret (create). `tollgate token` run in
// another directory used to create a second one there and print a token
// every running server refused (TOKEN_SIGNATURE_INVALID); it now says where
// it looked.
func JWTSecret(cfg config.Config, create bool) ([]byte, error) {
	if cfg.JWTSecret != "" {
		return []byte(cfg.JWTSecret), nil
	}
	if cfg.Env == config.Production {
		return nil, nil // public keys only; config.Load has checked one is set
	}
	dataDir := func(err error) error { return &config.Error{Var: "TOLLGATE_DATA_DIR", Problem: err.Error()} }
	path := filepath.Join(cfg.DataDir, devSecretFile)
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return []byte(strings.TrimSpace(string(b))), nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, dataDir(fmt.Errorf("read dev JWT secret %s: %w", path, err))
	} else if !create {
		where, absErr := filepath.Abs(path)
		if absErr != nil {
			where = path
		}
		return nil, dataDir(fmt.Errorf("no dev JWT secret at %s: the server creates one when it first starts there; "+
			"run token in the server's directory, set TOLLGATE_DATA_DIR to it, or set JWT_SECRET to the server's", where))
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	secret := hex.EncodeToString(b[:])
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, dataDir(err)
	}
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return nil, dataDir(fmt.Errorf("write dev JWT secret %s: %w", path, err))
	}
	return []byte(secret), nil
}

func (a *App) build(ctx context.Context) error {
	production := a.Config.Env == config.Production
	var pubKeys *auth.PublicKeys
	if a.Config.JWTPublicKeys != "" {
		keys, err := auth.LoadPublicKeys(a.Config.JWTPublicKeys)
		if err != nil {
			return &config.Error{Var: "JWT_PUBLIC_KEYS_FILE", Problem: err.Error()}
		}
		pubKeys = keys
	}
	verifier, err := auth.NewVerifier(a.jwtSecret, pubKeys, Binding(a.Config), a.Clock)
	if err != nil {
		return &config.Error{Var: "JWT_SECRET", Problem: err.Error()}
	}
	a.Orgs = orgs.NewService(a.DB, a.Clock)
	a.Keys = auth.NewKeys(a.DB, a.Clock, production)
	a.Keys.ShareChanges(a.Redis, a.Log)
	a.Stripe = stripeclient.New(stripeclient.Options{
		SecretKey: a.Config.StripeSecretKey, APIBase: a.Config.StripeAPIBase, Logger: a.Log,
	})
	a.Billing = billing.NewService(a.DB, a.Catalog, a.Clock, a.Stripe, a.Log)
	a.Invoices = invoices.NewService(a.DB, a.Clock, a.Log)
	// Billing is usage's plan source and its plan history (back-dated
	// events are judged by the plans in force at their time).
	var _ usage.PlanHistory = a.Billing
	a.Usage = usage.NewService(a.DB, a.Redis, a.Catalog, a.Billing, a.Clock, a.Log)
	// Overage of closed months goes on each draft cycle invoice. The lead
	// wires a.Overage.OnBilled to the outbound `overage.billed` event.
	a.Overage = overage.NewService(a.DB, a.Usage, a.Billing, a.Stripe, a.Clock, a.Log)
	a.Billing.OnCycleInvoice(a.Overage.InvoiceCreated)
	// An ended subscription's outstanding overage goes on a final invoice.
	a.Billing.OnSubscriptionEnded(a.Overage.SubscriptionEnded)
	// One limiter, two budgets: the plan's rate is answered as data by
	// usageGate and consumeUsage; the API's own is HTTP 429.
	a.Limiter = ratelimit.New(a.Redis, a.Log)
	a.Usage.LimitRate(a.Limiter)
	a.Usage.LeaseGates(a.Config.UsageGateLease)
	a.Usage.CapEndpoints(a.Config.UsageEndpointsPerMeter)
	a.API = ratelimit.NewAPI(a.Limiter, ratelimit.APILimits{
		PerCredential: a.Config.APIRatePerCredential, PerOrganization: a.Config.APIRatePerOrganization,
		PerAddress: a.Config.APIRatePerAddress,
	})
	signatures := signing.NewVerifier(a.Redis, a.Clock, a.Log)
	bg, stop := context.WithCancel(context.Background())
	a.watchRedis(bg, signatures)
	// Usage repairs Redis counters that a failed write left stale, for as
	// long as the app lives.
	go a.Usage.Run(bg)
	go a.Keys.Run(bg)
	a.background = bg
	a.closers = append(a.closers, stop)
	a.Auth = &auth.Authenticator{
		Verifier: verifier, Keys: a.Keys, Orgs: a.Orgs, Log: a.Log,
		Signatures: signatures,
	}
	return a.buildJobs(ctx)
}

// buildJobs builds River and the services with workers on it. Jobs are
// worked once StartJobs is called: `serve` does, while one-off commands
// (migrate, stripe sync) only insert. The ticker loops above could become
// River periodic jobs; they stay as they are until their owners move them.
func (a *App) buildJobs(ctx context.Context) error {
	var err error
	if a.Jobs, err = jobs.New(ctx, a.DB, jobs.Config{Logger: a.Log}); err != nil {
		return err
	}
	a.Webhooks = outbound.NewService(outbound.Options{
		DB: a.DB, Jobs: a.Jobs, Plans: a.Billing, Clock: a.Clock, Log: a.Log,
		Production: a.Config.Env == config.Production, AllowedNetworks: a.Config.WebhookAllowedNetworks,
	})
	// The host hears of each overage charge in the transaction that
	// records it billed.
	a.Overage.OnBilled = func(ctx context.Context, tx *gorm.DB, c overage.Charge) error {
		invoice := ""
		if c.StripeInvoiceID != nil {
			invoice = *c.StripeInvoiceID
		}
		return a.Webhooks.Emit(ctx, tx, c.OrgID, outbound.OverageBilled, outbound.OverageBilledData{
			Meter: c.Meter, Period: c.Period, Quantity: c.Quantity, Amount: c.Amount,
			Currency: c.Currency, InvoiceID: outbound.Optional(invoice),
		})
	}
	// Plan, status and invoice changes are announced to the organisation's
	// endpoints, in the transactions that make them.
	a.Billing.EmitTo(a.Webhooks)
	a.Invoices.EmitTo(a.Webhooks)
	// Events, deliveries and attempts are kept for outbound.Retention.
	a.Webhooks.SchedulePrune(0)
	// Finished Checkout sessions and revoked API keys are kept for
	// CHECKOUT_SESSIONS_RETENTION and REVOKED_API_KEYS_RETENTION.
	a.Billing.KeepCheckouts(a.Jobs, time.Duration(a.Config.CheckoutSessionsRetentionDays)*24*time.Hour, 0)
	a.Keys.KeepRevoked(a.Jobs, time.Duration(a.Config.RevokedAPIKeysRetentionDays)*24*time.Hour, 0, a.Log)
	// Usage history partitions are made ahead and dropped past
	// USAGE_EVENTS_RETENTION.
	a.Usage.KeepHistory(a.Jobs, a.Config.UsageEventsRetentionMonths, 0)
	// The host hears of each usage alert in the transaction that counts
	// the usage crossing it: 100% of a hard limit is usage.limit_reached.
	a.Usage.OnAlert = func(ctx context.Context, tx *gorm.DB, al usage.Alert) error {
		kind := outbound.UsageThresholdReached
		if al.LimitReached() {
			kind = outbound.UsageLimitReached
		}
		return a.Webhooks.Emit(ctx, tx, al.OrgID, kind, outbound.UsageThresholdData{
			Meter: al.Meter, Period: outbound.Optional(al.Period()), Percent: al.Percent, Used: al.Used, Limit: al.Limit,
		})
	}
	// Stopped before the database closes: running deliveries finish or
	// are retried later.
	a.closers = append(a.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Jobs.Stop(ctx); err != nil {
			a.Log.Warn("jobs did not stop cleanly", "err", err)
		}
	})
	return nil
}

// StartJobs works background jobs (outbound webhook deliveries) in this
// process until Close. A replica started with TOLLGATE_MIGRATE=false on a
// database that is not migrated yet still starts (readiness says why it
// is not ready); its jobs start once the schema is at the latest migration.
func (a *App) StartJobs(ctx context.Context) error {
	start := func() error {
		// Stripe event ids are kept only while a redelivery can come.
		// Pruned even without STRIPE_WEBHOOK_SECRET: ids recorded while it
		// was set would otherwise stay forever, and an empty prune is one
		// indexed query. Started here, with the jobs, so that it never
		// queries a table a schema not yet migrated lacks.
		go stripehook.RunPruner(a.background, a.DB, a.Clock, stripehook.DefaultRetention, a.Log)
		return a.Jobs.Start(ctx)
	}
	pending, err := a.DB.MigrationsPending(ctx)
	if err != nil || !pending {
		return start()
	}
	a.Log.Warn("background jobs wait until the database schema is at the latest migration")
	wait, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	a.closers = append(a.closers, func() { cancel(); <-done })
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-wait.Done():
				return
			case <-t.C:
			}
			if pending, err := a.DB.MigrationsPending(wait); err != nil || pending {
				continue
			}
			if err := start(); err != nil {
				a.Log.Error("background jobs did not start", "err", err)
			} else {
				a.Log.Info("database schema at the latest migration: background jobs started")
			}
			return
		}
	}()
	return nil
}

// plansTopic is where replicas announce an organisation's plan change.
const plansTopic = "plans"

// watchRedis tells every part that keeps state in Redis when Redis restarts,
// fails over or comes back from an older snapshot, and shares plan changes
// between replicas, for as long as ctx lives.
func (a *App) watchRedis(ctx context.Context, signatures *signing.Verifier) {
	w := redisconn.NewWatcher(a.Redis, a.Log)
	w.OnRestart(a.Usage.RedisRestarted)
	w.OnRestart(a.Keys.RedisRestarted)
	w.OnRestart(signatures.RedisRestarted)
	// A plan or status change reaches quotas and rate limits at once in
	// this process, once committed, and on other replicas within a second.
	a.Billing.OnChange(func(orgID string) {
		a.Usage.InvalidatePlan(orgID)
		if err := w.Announce(ctx, plansTopic, orgID); err != nil {
			a.Log.WarnContext(ctx, "could not tell other replicas of a plan change; they see it within the plan cache's lifetime", "org", orgID, "err", err)
		}
	})
	w.OnChange(plansTopic, func(_ context.Context, orgs []string, all bool) {
		if all {
			a.Usage.InvalidateAllPlans()
			return
		}
		for _, id := range orgs {
			a.Usage.InvalidatePlan(id)
		}
	})
	go w.Run(ctx)
}

// Binding is the aud and iss tokens must carry (JWT_AUDIENCE, JWT_ISSUER),
// and the azp of an identity provider's tokens (JWT_AUTHORIZED_PARTY).
func Binding(cfg config.Config) auth.Binding {
	return auth.Binding{Audience: cfg.JWTAudience, Issuer: cfg.JWTIssuer, AuthorizedParty: cfg.JWTAuthorizedParty}
}

// Token mints an HS256 token for an organisation, for development and
// tests. It fails when only public keys are configured.
func (a *App) Token(org string, scopes []auth.Scope, ttl time.Duration) (string, error) {
	return MintToken(a.jwtSecret, Binding(a.Config), a.Clock, org, scopes, ttl)
}

// MintToken signs an HS256 token for org with secret (see JWTSecret), valid
// for ttl from clk's now, naming bind's audience and issuer when set so
// that it passes the verifier they configure.
func MintToken(secret []byte, bind auth.Binding, clk clock.Clock, org string, scopes []auth.Scope, ttl time.Duration) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("no JWT_SECRET: tokens are issued by your identity provider")
	}
	s := make([]string, len(scopes))
	for i, sc := range scopes {
		s[i] = string(sc)
	}
	now := clk.Now()
	c := auth.Claims{Org: org, Scope: strings.Join(s, " ")}
	// The subject names a rate-limit budget within the organisation, so
	// "dev" alone would do; "dev@org" reads better in logs where it fits
	// the sub claim's bound.
	c.Subject = "dev@" + org
	if len(c.Subject) > auth.MaxSubjectLen {
		c.Subject = "dev"
	}
	c.Issuer = bind.Issuer
	if bind.Audience != "" {
		c.Audience = jwt.ClaimStrings{bind.Audience}
	}
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	return auth.Mint(secret, c)
}

// Close releases everything New opened, newest first.
func (a *App) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}
