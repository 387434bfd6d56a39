// Soak is Tollgate's fault and load harness. It starts its own Redis (one
// server, or with -redis cluster a Redis Cluster of three masters) and
// Postgres (a private cluster when it can), builds Tollgate, runs three
// processes sharing them, and checks four promises under load:
//
//  1. usage recorded by 64 concurrent clients for four organisations,
//     through a Redis outage (in cluster mode: one master killed) and a
//     Postgres restart, is counted exactly once per acknowledged key, and a
//     hard limit filled through consumeUsage is never passed;
//  2. shuffled, duplicated subscription webhooks sent to all processes at
//     once leave every subscription as its last Stripe version;
//  3. a signed request replayed to another process is refused;
//  4. every usage-alert threshold the load crossed fired exactly once, and
//     reached the organisation's webhook endpoint (a receiver the harness
//     runs, which fails some first attempts and is unreachable around the
//     Postgres restart) under exactly one webhook-id, its signature
//     verified with the Standard Webhooks library.
//
// It prints a table of figures and exits 1 if any is off, 2 if it could not
// run. Everything listens on 127.0.0.1 only.
//
//	go run ./cmd/soak [-redis single|cluster] [-duration 60s] [-lifecycles 1000] [-signed 200] [-same-second 0] [-keep]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type options struct {
	duration      time.Duration
	clients       int
	lifecycles    int
	signed        int
	sameSecond    float64
	keep          bool
	sharedPGURL   string
	forceShared   bool
	restartShared bool
	redisMode     string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 60*time.Second, "how long phase 1 records usage (the faults are placed within it)")
	fs.IntVar(&o.clients, "clients", 64, "concurrent usage clients in phase 1")
	fs.IntVar(&o.lifecycles, "lifecycles", 1000, "subscription lifecycles in phase 2")
	fs.Float64Var(&o.sameSecond, "same-second", 0,
		"share of phase 2 lifecycles whose first update has the same `created` second as the creation (Stripe does this; Tollgate orders by that second)")
	fs.IntVar(&o.signed, "signed", 200, "signed requests (each replayed once) in phase 3")
	fs.StringVar(&o.redisMode, "redis", "single",
		"single: one private redis-server; cluster: a private Redis Cluster of three masters (REDIS_URL in go-redis's ParseClusterURL form)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs, data) after the run")
	fs.StringVar(&o.sharedPGURL, "shared-postgres-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"server to make a private database on when a private cluster cannot be started")
	fs.BoolVar(&o.forceShared, "shared-postgres", false, "use a private database on the shared server even when a private cluster could be started")
	fs.BoolVar(&o.restartShared, "restart-shared-postgres", false,
		"in shared-server mode, restart the machine's Postgres cluster in phase 1 (disturbs everything using it)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.duration < 20*time.Second || o.clients < 1 || o.lifecycles < 1 || o.signed < 1 {
		fmt.Fprintln(stderr, "soak: -duration must be at least 20s (the faults need room) and the counts positive")
		return 2
	}
	if o.redisMode != "single" && o.redisMode != "cluster" {
		fmt.Fprintln(stderr, "soak: -redis must be single or cluster")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	rep := &report{}
	err := soak(ctx, o, rep, log)
	rep.print(stdout)
	switch {
	case err != nil && errors.Is(ctx.Err(), context.Canceled):
		fmt.Fprintln(stderr, "soak: interrupted")
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "soak: %v\n", err)
		return 2
	case !rep.ok():
		fmt.Fprintln(stderr, "soak: FAILED: figures marked FAIL are off")
		return 1
	}
	fmt.Fprintln(stderr, "soak: all figures as expected")
	return 0
}

// soak sets up the environment, runs the phases and tears everything down,
// whatever happens in between.
func soak(ctx context.Context, o options, rep *report, log *slog.Logger) (err error) {
	env, err := newEnvironment(ctx, o, log)
	if env != nil {
		defer func() {
			interrupted := errors.Is(ctx.Err(), context.Canceled)
			env.close(!interrupted && (err != nil || !rep.ok()))
		}()
	}
	if err != nil {
		return err
	}
	rep.mode = env.describe()

	start := time.Now()
	if err := usagePhase(ctx, env, o, rep, log); err != nil {
		return fmt.Errorf("phase 1 (usage under faults): %w", err)
	}
	if err := webhookPhase(ctx, env, o, rep, log); err != nil {
		return fmt.Errorf("phase 2 (subscription webhooks): %w", err)
	}
	if err := signedPhase(ctx, env, o, rep, log); err != nil {
		return fmt.Errorf("phase 3 (signed replays): %w", err)
	}
	if err := alertPhase(ctx, env, rep, log); err != nil {
		return fmt.Errorf("phase 4 (usage alerts and their webhooks): %w", err)
	}
	rep.elapsed = time.Since(start)
	return nil
}
