// Command bench measures Tollgate's usage metering against real Postgres and
// Redis: the usage gate, recordUsage and the usage report, each beside a
// floor measured in the same run on the same machine, and prints the figures
// against the targets of the usage-metering issue.
//
// It is a benchmark, not a test: it exits 0 whether targets are met or not,
// and 1 only when something failed to run (including any failed request,
// since a failure must never be counted as a fast answer).
//
//	go run ./cmd/bench [-duration 8s] [-skip-1m] [-only ingest] [-cpuprofile gate.pprof]
//
// Tollgate runs in this process behind a real HTTP server on loopback, and
// the load generator shares the machine's cores with it, as a co-located
// host app would; the ingest section instead starts Tollgate in a server
// process of its own, so its memory is measured alone. The figures are also
// written as JSON (-json) so runs can be compared.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	dbURL, redisURL string
	duration        time.Duration
	warmup          time.Duration
	rate            int
	workers         int
	recordWorkers   int
	seedWorkers     int
	queries         int
	smallHistory    int
	largeHistory    int
	skip1M          bool
	cpuprofile      string
	serverProfile   string
	serverPprof     string
	serverTrace     string
	serverTraceAft  time.Duration
	ingestParts     map[string]bool
	memprofile      string
	stallProbe      bool
	keepDB          bool
	jsonPath        string
	only            map[string]bool
}

// phases are the sections of the report, in order.
var phases = []string{"gate", "record", "history", "ingest"}

// ingestParts are the parts of the ingest section, in order.
var ingestParts = []string{"one", "batch", "gate"}

// ingests reports whether a part of the ingest section is selected.
func (o options) ingests(part string) bool { return len(o.ingestParts) == 0 || o.ingestParts[part] }

// runs reports whether a phase is selected.
func (o options) runs(phase string) bool { return len(o.only) == 0 || o.only[phase] }

func parseFlags() options {
	var o options
	flag.StringVar(&o.dbURL, "db-url", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
		"Postgres to run on; a private database tollgate_bench_<unix> is created beside it and dropped at the end")
	flag.StringVar(&o.redisURL, "redis-url", "redis://127.0.0.1:6379/0",
		"Redis to run on; only keys of this run's new organisations are written (and deleted at the end)")
	flag.DurationVar(&o.duration, "duration", 8*time.Second, "length of each timed phase")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "untimed warm-up before each timed phase")
	flag.IntVar(&o.rate, "rate", 2000, "requests per second of the fixed-rate gate phase")
	flag.IntVar(&o.workers, "workers", 32, "concurrent clients of the saturation phase")
	flag.IntVar(&o.recordWorkers, "record-workers", 4, "concurrent clients of the recordUsage and raw INSERT phases")
	flag.IntVar(&o.seedWorkers, "seed-workers", 4, "concurrent Record callers seeding the usage history")
	flag.IntVar(&o.queries, "queries", 1000, "usage queries timed per history size and state")
	flag.IntVar(&o.smallHistory, "small-history", 10_000, "events in the smaller usage history")
	flag.IntVar(&o.largeHistory, "large-history", 1_000_000, "events in the larger usage history")
	flag.BoolVar(&o.skip1M, "skip-1m", false, "skip growing the history to -large-history events")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the HTTP usageGate phases (server and load generator together) to this file")
	flag.StringVar(&o.serverProfile, "server-cpuprofile", "", "write a CPU profile of the ingest section's server process to this file")
	flag.StringVar(&o.serverPprof, "server-pprof", "", "serve net/http/pprof from the ingest section's server process on this loopback address (e.g. 127.0.0.1:6061)")
	flag.StringVar(&o.serverTrace, "server-trace", "", "write an execution trace of the ingest section's server process, around its first request slower than -server-trace-after, to this file")
	flag.DurationVar(&o.serverTraceAft, "server-trace-after", 25*time.Millisecond, "the request duration that triggers -server-trace")
	flag.StringVar(&o.memprofile, "memprofile", "", "write an allocation profile (server and load generator, since the start; use with -only gate) to this file")
	flag.BoolVar(&o.stallProbe, "stall-probe", true, "run the machine-stall probe beside the fixed-rate gate phases")
	flag.BoolVar(&o.keepDB, "keep-db", false, "leave the benchmark database in place for inspection instead of dropping it")
	flag.StringVar(&o.jsonPath, "json", "bench-results/latest.json", "write the figures as JSON to this file (empty: don't)")
	only := flag.String("only", "", "comma-separated phases to run ("+strings.Join(phases, ",")+"); default all")
	parts := flag.String("ingest-parts", "", "comma-separated parts of the ingest section to run ("+strings.Join(ingestParts, ",")+"); default all")
	flag.Parse()
	o.ingestParts = pickList("ingest-parts", *parts, ingestParts)
	o.only = pickList("only", *only, phases)
	return o
}

// pickList reads a comma-separated flag value naming some of allowed: nil
// when empty (all), and exit 2 on a name not allowed.
func pickList(flagName, value string, allowed []string) map[string]bool {
	if value == "" {
		return nil
	}
	picked := map[string]bool{}
	for v := range strings.SplitSeq(value, ",") {
		if !slices.Contains(allowed, v) {
			fmt.Fprintf(os.Stderr, "bench: -%s: unknown name %q; they are %s\n", flagName, v, strings.Join(allowed, ", "))
			os.Exit(2)
		}
		picked[v] = true
	}
	return picked
}

// startProfile starts the CPU profile when -cpuprofile is set; the returned
// stop ends it and writes the allocation profile when -memprofile is set.
func (o options) startProfile() (stop func() error, err error) {
	stopCPU := func() {}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
		stopCPU = func() { pprof.StopCPUProfile(); f.Close() }
	}
	return func() error {
		stopCPU()
		if o.memprofile == "" {
			return nil
		}
		f, err := os.Create(o.memprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		return pprof.Lookup("allocs").WriteTo(f, 0)
	}, nil
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == stallProbeArg {
		runStallProbe()
		return
	}
	if len(os.Args) == 2 && os.Args[1] == serveArg {
		runServer()
		return
	}
	os.Exit(benchmark())
}

func benchmark() int {
	o := parseFlags()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "bench: %s: %v\n", what, err)
		return 1
	}

	began := time.Now()
	b, stop, err := start(ctx, o, log)
	if err != nil {
		return fail("start", err)
	}
	defer stop()
	printHeader(ctx, b, o)

	var (
		g   *gateResult
		rec []recordRow
		h   *historyResult
		in  *ingestResult
	)
	if o.runs("gate") {
		progress("usageGate over HTTP and in process")
		r, err := gatePhase(ctx, b, o)
		if err != nil {
			return fail("gate phase", err)
		}
		g = &r
		printGate(r, o)
	}
	if o.runs("record") {
		progress("recordUsage and raw INSERT")
		if rec, err = recordPhase(ctx, b, o); err != nil {
			return fail("record phase", err)
		}
		printRecord(rec, o)
	}
	if o.runs("history") {
		progress("usage query with history (seeding through Service.Record)")
		r, err := historyPhase(ctx, b, o)
		if err != nil {
			return fail("history phase", err)
		}
		h = &r
		printHistory(r, o)
	}

	if o.runs("ingest") {
		progress("ingest: one-event recordUsage, batches, the gate and memory against a server process")
		r, err := ingestPhase(ctx, b, o)
		if err != nil {
			return fail("ingest phase", err)
		}
		in = &r
	}

	peak, err := peakRSS()
	if err != nil {
		return fail("peak RSS", err)
	}
	fmt.Printf("\n4. Peak RSS of the process (VmHWM: Tollgate, its load generator and seeding together): %s\n", peak)
	if in != nil {
		printIngest(*in, o)
	}

	failed := printTargets(g, rec, h)
	if err := writeJSON(o.jsonPath, began, g, rec, h, in); err != nil {
		return fail("write JSON", err)
	}
	fmt.Printf("\nTotal run time: %s (GOMAXPROCS %d); load average at the end: %s\n",
		time.Since(began).Round(time.Second), runtime.GOMAXPROCS(0), loadAverage())
	if failed {
		fmt.Fprintln(os.Stderr, "bench: some requests failed; the figures above are not trustworthy")
		return 1
	}
	return 0
}

func progress(what string) {
	fmt.Fprintf(os.Stderr, "%s running: %s\n", time.Now().Format("15:04:05"), what)
}
