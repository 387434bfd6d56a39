// Tollgate is a GraphQL billing service: plans, Stripe subscriptions,
// usage metering and quotas for a SaaS.
//
//	go run .                          serve on :8080 (PORT overrides)
//	go run . migrate up|down|status   manage the database schema by hand
//	go run . stripe sync [--org ID]   re-read Stripe and apply what webhooks missed
//	go run . token [org]              print a development token
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/tollgate-billing/tollgate/internal/app"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/config"
	"github.com/tollgate-billing/tollgate/internal/observe"
	"github.com/tollgate-billing/tollgate/internal/reconcile"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const usage = `usage: tollgate [command]
  (none), serve                 run the server
  migrate up|down|status        apply, roll back one, or list migrations
  stripe sync [--org ID]        re-read subscriptions and invoices from Stripe and apply what changed
  token [org]                   print a development token for org (default "demo")
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate: configuration: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	switch cmd {
	case "serve":
		err = serve(ctx, cfg, log, stderr)
	case "migrate":
		err = migrate(ctx, cfg, log, args[1:], stdout)
	case "stripe":
		err = stripeSync(ctx, cfg, log, args[1:], stdout)
	case "token":
		err = token(ctx, cfg, log, args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "tollgate: configuration: %v\n", ce)
			return 2
		}
		fmt.Fprintf(stderr, "tollgate: %v\n", err)
		return 1
	}
	return 0
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.Env == config.Production {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(observe.ContextHandler{Handler: h})
}

func serve(ctx context.Context, cfg config.Config, log *slog.Logger, out io.Writer) error {
	app.TuneGC()
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()

	ln, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.Port))
	if err != nil {
		return &config.Error{Var: "PORT", Problem: err.Error()}
	}
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	addr := ln.Addr().String()
	log.Info("tollgate listening", "addr", addr, "env", cfg.Env, "database", a.DB.Dialect, "graphiql", cfg.Playground)
	if cfg.Env == config.Dev {
		// Printed plainly, not through the logger, so it can be pasted as is.
		if tok, err := a.Token("demo", auth.AllScopes, 30*24*time.Hour); err == nil {
			printDevToken(out, ln.Addr().(*net.TCPAddr).Port, tok, cfg.BillingPage)
		}
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: draining requests")
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// printDevToken prints the development token and ready links for the port
// Tollgate actually listens on.
func printDevToken(out io.Writer, port int, tok string, billingPage bool) {
	fmt.Fprintf(out, "\nDevelopment token for organisation \"demo\" (all scopes, 30 days). GraphiQL: http://localhost:%d/ — paste into its headers:\n\n  {\"Authorization\": \"Bearer %s\"}\n\n", port, tok)
	if billingPage {
		fmt.Fprintf(out, "Billing page: http://localhost:%d/billing#token=%s\n\n", port, tok)
	}
}

func migrate(ctx context.Context, cfg config.Config, log *slog.Logger, args []string, out io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: tollgate migrate up|down|status")
	}
	cfg.Migrate = false
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	switch args[0] {
	case "up":
		if err := a.DB.MigrateUp(ctx); err != nil {
			return err
		}
	case "down":
		if err := a.DB.MigrateDown(ctx); err != nil {
			return err
		}
	case "status":
	default:
		return errors.New("usage: tollgate migrate up|down|status")
	}
	return a.DB.MigrationStatus(ctx, out)
}

func token(ctx context.Context, cfg config.Config, log *slog.Logger, args []string, out io.Writer) error {
	if cfg.Env == config.Production {
		return errors.New("token is for development; production tokens come from your identity provider")
	}
	org := "demo"
	if len(args) > 0 {
		org = args[0]
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	tok, err := a.Token(org, auth.AllScopes, 30*24*time.Hour)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, tok)
	return nil
}

// stripeSync heals what webhooks missed: Stripe stops retrying a delivery
// after three days. It applies Stripe's objects through the same code path
// as webhooks and prints what changed.
func stripeSync(ctx context.Context, cfg config.Config, log *slog.Logger, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("stripe sync", flag.ContinueOnError)
	org := fs.String("org", "", "organisation id or external id (default: every organisation with a Stripe customer)")
	if len(args) == 0 || args[0] != "sync" {
		return errors.New("usage: tollgate stripe sync [--org ID]")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if !cfg.StripeEnabled() {
		return &config.Error{Var: "STRIPE_SECRET_KEY", Problem: "is required for stripe sync"}
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	return reconcile.New(a.DB, a.Billing, a.Invoices, a.Stripe, a.Clock, a.Log).Sync(ctx, *org, out)
}
