// Tollgate is a GraphQL billing service: plans, Stripe subscriptions,
// usage metering and quotas for a SaaS.
//
//	go run .                          serve on :8080 (PORT overrides)
//	go run . migrate up|down|status   manage the database schema by hand
//	go run . stripe sync [--org ID]   re-read Stripe and apply what webhooks missed
//	go run . token [org]              print a development token
//	go run . version                  print the build's version and commit
//	go run . COMMAND --help           describe one command
package main

import (
	"cmp"
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
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tollgate-billing/tollgate/internal/app"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/config"
	"github.com/tollgate-billing/tollgate/internal/observe"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/reconcile"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const usage = `usage: tollgate [command] [flags]
  (none), serve                 run the server
  migrate up|down|status        apply, roll back one, or list migrations
  stripe sync [--org ID]        re-read subscriptions and invoices from Stripe and apply what changed
  token [org]                   print a development token for org (default "demo")
  version                       print the version, the commit it was built from and the Go version

"tollgate COMMAND --help" describes one command.
`

// command is one CLI subcommand. Its flags and arguments are parsed, and
// --help answered, before the configuration is read, so help works without
// one and a mistyped command never starts anything.
type command struct {
	use  string // synopsis after "tollgate "
	help string
	// minArgs and maxArgs bound the positional arguments.
	minArgs, maxArgs int
	flags            func(fs *flag.FlagSet) // may be nil
	// check refuses positional arguments the command cannot use, and
	// checkFlags flag values; either may be nil.
	check      func(args []string) error
	checkFlags func(fs *flag.FlagSet) error
	run        func(ctx context.Context, cfg config.Config, log *slog.Logger, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error
	// plain, when set, runs instead of run, without reading the
	// configuration: it answers even where the configuration is wrong.
	plain func(stdout io.Writer)
}

var commands = map[string]*command{
	"serve": {
		use:  "serve",
		help: "Run the server on PORT (default 8080), applying migrations first unless TOLLGATE_MIGRATE=false.",
		run: func(ctx context.Context, cfg config.Config, log *slog.Logger, _ *flag.FlagSet, _ []string, _, stderr io.Writer) error {
			return serve(ctx, cfg, log, stderr)
		},
	},
	"migrate": {
		use:     "migrate up|down|status",
		help:    "Apply every pending migration (up), roll back the latest one (down), or list them (status).",
		minArgs: 1, maxArgs: 1,
		check: oneOf("up", "down", "status"),
		run: func(ctx context.Context, cfg config.Config, log *slog.Logger, _ *flag.FlagSet, args []string, stdout, _ io.Writer) error {
			return migrate(ctx, cfg, log, args[0], stdout)
		},
	},
	"stripe": {
		use:     "stripe sync [--org ID]",
		help:    "Re-read subscriptions and invoices from Stripe and apply what webhooks missed; prints what changed.",
		minArgs: 1, maxArgs: 1,
		flags: func(fs *flag.FlagSet) {
			fs.String("org", "", "organisation `ID` or external id, once (default: every organisation with a Stripe customer)")
		},
		check: oneOf("sync"),
		checkFlags: func(fs *flag.FlagSet) error {
			// Set but empty would mean every organisation: say so instead.
			var err error
			fs.Visit(func(f *flag.Flag) {
				if f.Name == "org" && strings.TrimSpace(f.Value.String()) == "" {
					err = errors.New("--org must not be empty (leave it out to sync every organisation)")
				}
			})
			return err
		},
		run: func(ctx context.Context, cfg config.Config, log *slog.Logger, fs *flag.FlagSet, _ []string, stdout, _ io.Writer) error {
			return stripeSync(ctx, cfg, log, fs.Lookup("org").Value.String(), stdout)
		},
	},
	"token": {
		use:     "token [org]",
		help:    "Print a development token (all scopes, valid 30 days) for the organisation org (default \"demo\").",
		maxArgs: 1,
		check: func(args []string) error {
			if len(args) == 0 {
				return nil
			}
			// The same rule the token will meet when it is used,
			// said of the argument rather than of a claim.
			if problem := orgs.ExternalIDProblem(args[0], "org"); problem != "" {
				return errors.New(problem)
			}
			return nil
		},
		run: func(ctx context.Context, cfg config.Config, log *slog.Logger, _ *flag.FlagSet, args []string, stdout, _ io.Writer) error {
			org := "demo"
			if len(args) > 0 {
				org = args[0]
			}
			return token(cfg, org, stdout)
		},
	},
	"version": {
		use:   "version",
		help:  "Print Tollgate's version, the commit it was built from (with +modified for uncommitted changes) and the Go version.",
		plain: printVersion,
	},
}

// printVersion says which build this is, from what the Go toolchain stamped
// into the binary: an operator comparing replicas, or quoting a bug, needs
// the commit.
func printVersion(stdout io.Writer) {
	info, _ := debug.ReadBuildInfo()
	fmt.Fprintln(stdout, versionLine(info))
}

// versionLine describes a build. `go run`, test binaries and builds with
// -buildvcs=false carry no commit, and say so rather than print nothing.
func versionLine(info *debug.BuildInfo) string {
	version, commit, when, modified, goVersion := "(devel)", "", "", false, runtime.Version()
	if info != nil {
		version, goVersion = cmp.Or(info.Main.Version, version), cmp.Or(info.GoVersion, goVersion)
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	switch {
	case commit == "":
		commit = "commit unknown (built without version control information: go run, or -buildvcs=false)"
	case modified:
		commit = "commit " + commit + "+modified"
	default:
		commit = "commit " + commit
	}
	if when != "" {
		commit += " of " + when
	}
	return fmt.Sprintf("tollgate %s, %s, %s", version, commit, goVersion)
}

// oneOf accepts a first argument that is one of words.
func oneOf(words ...string) func(args []string) error {
	return func(args []string) error {
		if !slices.Contains(words, args[0]) {
			return fmt.Errorf("unknown action %q (want %s)", args[0], strings.Join(words, ", "))
		}
		return nil
	}
}

// callIf calls check with v unless check is nil.
func callIf[T any](check func(T) error, v T) error {
	if check == nil {
		return nil
	}
	return check(v)
}

// onceValue refuses a flag given twice: "--org=demo --org=x" silently kept
// the last, so a pasted command could act on another organisation than the
// one read first.
type onceValue struct {
	flag.Value
	set bool
}

func (v *onceValue) Set(s string) error {
	if v.set {
		return errors.New("given more than once")
	}
	v.set = true
	return v.Value.Set(s)
}

// String is the value's; flag.PrintDefaults also calls it on a zero
// onceValue to find the default.
func (v *onceValue) String() string {
	if v == nil || v.Value == nil {
		return ""
	}
	return v.Value.String()
}

// IsBoolFlag keeps a boolean flag usable without a value.
func (v *onceValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// parseInterleaved parses fs's flags wherever they stand among the
// positional arguments, which it returns in order: the flag package stops at
// the first argument that is not a flag, so "token acme --help" read
// "--help" as a second org while "migrate up --help" printed help, and
// "stripe sync --org x" worked only because the action word was split off
// by hand. "--" still ends the flags: what follows it is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	name := "serve"
	if len(args) > 0 {
		name, args = args[0], args[1:]
	}
	switch name {
	case "-version", "--version":
		name = "version"
	case "-h", "-help", "--help", "help":
		// "help token" and "--help token" describe token.
		if len(args) == 0 {
			fmt.Fprint(stdout, usage)
			return 0
		}
		if len(args) > 1 {
			fmt.Fprintf(stderr, "tollgate %s: unexpected argument %q\n%s", name, args[1], usage)
			return 2
		}
		name, args = args[0], []string{"--help"}
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "tollgate: unknown command %q\n%s", name, usage)
		return 2
	}
	fs := flag.NewFlagSet("tollgate "+name, flag.ContinueOnError)
	// Parse prints nothing: its error is printed below with the command's
	// name; help goes to stdout when asked for, to stderr after a mistake.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	printUsage := func(w io.Writer) {
		fmt.Fprintf(w, "usage: tollgate %s\n  %s\n", cmd.use, cmd.help)
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	fs.VisitAll(func(f *flag.Flag) { f.Value = &onceValue{Value: f.Value} })
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "tollgate %s: %v\n", name, err)
		printUsage(stderr)
		return 2
	}
	if len(rest) < cmd.minArgs || len(rest) > cmd.maxArgs {
		what := "missing argument"
		if len(rest) > cmd.maxArgs {
			what = fmt.Sprintf("unexpected argument %q", rest[cmd.maxArgs])
		}
		fmt.Fprintf(stderr, "tollgate %s: %s\n", name, what)
		printUsage(stderr)
		return 2
	}
	for _, check := range []func() error{
		func() error { return callIf(cmd.check, rest) },
		func() error { return callIf(cmd.checkFlags, fs) },
	} {
		if err := check(); err != nil {
			fmt.Fprintf(stderr, "tollgate %s: %v\n", name, err)
			printUsage(stderr)
			return 2
		}
	}

	if cmd.plain != nil {
		cmd.plain(stdout)
		return 0
	}

	// Every line says which command failed; the server's is plain
	// "tollgate", as the README shows it.
	prefix := "tollgate " + name
	if name == "serve" {
		prefix = "tollgate"
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "%s: configuration: %v\n", prefix, err)
		return 2
	}
	log := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if err := cmd.run(ctx, cfg, log, fs, rest, stdout, stderr); err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "%s: configuration: %v\n", prefix, ce)
			return 2
		}
		fmt.Fprintf(stderr, "%s: %v\n", prefix, err)
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
	// The port first: a port in use stops start-up before migrations run
	// and background jobs start. Connections wait in the backlog until
	// Serve.
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.Port))
	if err != nil {
		return &config.Error{Var: "PORT", Problem: err.Error()}
	}
	defer ln.Close()
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	// Not ctx itself: its cancellation would abort running jobs; Close
	// stops them gracefully after the HTTP server drains.
	if err := a.StartJobs(context.WithoutCancel(ctx)); err != nil {
		return err
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

// migrate opens only the database: the full app would start background
// jobs that query tables a fresh database does not have yet.
func migrate(ctx context.Context, cfg config.Config, log *slog.Logger, action string, out io.Writer) error {
	db, err := app.OpenDatabase(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	switch action {
	case "up":
		if err := db.MigrateUp(ctx); err != nil {
			return err
		}
	case "down":
		if err := db.MigrateDown(ctx); err != nil {
			return err
		}
	}
	return db.MigrationStatus(ctx, out)
}

func token(cfg config.Config, org string, out io.Writer) error {
	if cfg.Env == config.Production {
		return errors.New("token is for development; production tokens come from your identity provider")
	}
	// Signing needs the secret only: no database, no Redis, no migration.
	// It reads the server's dev secret and never makes one of its own.
	secret, err := app.JWTSecret(cfg, false)
	if err != nil {
		return err
	}
	tok, err := app.MintToken(secret, app.Binding(cfg), clock.Real{}, org, auth.AllScopes, 30*24*time.Hour)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, tok)
	return nil
}

// stripeSync heals what webhooks missed: Stripe stops retrying a delivery
// after three days. It applies Stripe's objects through the same code path
// as webhooks and prints what changed.
func stripeSync(ctx context.Context, cfg config.Config, log *slog.Logger, org string, out io.Writer) error {
	if !cfg.StripeEnabled() {
		return &config.Error{Var: "STRIPE_SECRET_KEY", Problem: "is required for stripe sync"}
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	return reconcile.New(a.DB, a.Billing, a.Invoices, a.Stripe, a.Clock, a.Log).WithOverage(a.Overage).Sync(ctx, org, out)
}
