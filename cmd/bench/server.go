package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served only with -server-pprof
	"os"
	"os/exec"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"sync"
	"time"

	"github.com/tollgate-billing/tollgate/internal/app"
	"github.com/tollgate-billing/tollgate/internal/config"
)

// serveArg makes the bench binary run Tollgate alone (see runServer), so the
// ingest section measures its memory without the load generator's.
const serveArg = "__tollgate-server"

// serverProfileEnv names the file the server process writes its CPU profile
// to (-server-cpuprofile).
const serverProfileEnv = "TOLLGATE_BENCH_SERVER_CPUPROFILE"

// serverPprofEnv is the loopback address the server process serves
// net/http/pprof on (-server-pprof).
const serverPprofEnv = "TOLLGATE_BENCH_SERVER_PPROF"

// serverTraceEnv names the file the server process writes an execution
// trace to, and serverTraceAfterEnv the request duration that triggers it
// (-server-trace, -server-trace-after).
const (
	serverTraceEnv      = "TOLLGATE_BENCH_SERVER_TRACE"
	serverTraceAfterEnv = "TOLLGATE_BENCH_SERVER_TRACE_AFTER"
)

// runServer serves Tollgate from the environment on a loopback port, as the
// tollgate binary does, writes the address on stdout and stops when stdin
// closes (the benchmark ended or died).
func runServer() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "bench server:", err)
		os.Exit(1)
	}
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	app.TuneGC() // as the tollgate binary does
	if addr := os.Getenv(serverPprofEnv); addr != "" {
		go http.ListenAndServe(addr, nil) // net/http/pprof's handlers, for looking at a phase as it runs
	}
	if path := os.Getenv(serverProfileEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		fail(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	handler := a.Handler()
	if path := os.Getenv(serverTraceEnv); path != "" {
		after, err := time.ParseDuration(os.Getenv(serverTraceAfterEnv))
		if err != nil {
			fail(err)
		}
		if handler, err = traceFirstSlowRequest(handler, path, after); err != nil {
			fail(err)
		}
	}
	srv := &http.Server{Handler: withNetHTTPFloor(handler), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	fmt.Println(ln.Addr().String())
	io.Copy(io.Discard, os.Stdin)
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	a.Close()
}

// netHTTPFloorPath is served by the server process beside Tollgate's
// routes: a bare net/http handler that reads the body and answers a fixed
// one-event recordUsage answer, with no authentication, GraphQL or usage
// service behind it. The ingest section times it from the same clients as
// the one-event calls: what any server built on net/http spends per request
// on this machine, however little it does.
const netHTTPFloorPath = "/__bench/net-http"

// netHTTPFloorAnswer is the shape and size of Tollgate's answer to a
// one-event recordUsage.
var netHTTPFloorAnswer = []byte(`{"data":{"recordUsage":{"accepted":1,"duplicates":0,"rejected":[],"userErrors":[]}}}`)

// withNetHTTPFloor serves netHTTPFloorPath itself and everything else with
// next.
func withNetHTTPFloor(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != netHTTPFloorPath {
			next.ServeHTTP(w, r)
			return
		}
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(netHTTPFloorAnswer)
	})
}

// traceFirstSlowRequest keeps the last seconds of the process's execution
// trace in memory (runtime/trace's flight recorder) and writes them to path
// shortly after the first request that took longer than after, so the
// trace holds that request and what ran around it: open it with go tool
// trace, or go tool trace -pprof=sched|sync|net for where goroutines waited.
func traceFirstSlowRequest(next http.Handler, path string, after time.Duration) (http.Handler, error) {
	fr := trace.NewFlightRecorder(trace.FlightRecorderConfig{MinAge: 3 * time.Second, MaxBytes: 256 << 20})
	if err := fr.Start(); err != nil {
		return nil, err
	}
	var once sync.Once
	write := func(took time.Duration, began time.Time) {
		// Let the trace run past the request a little, then snapshot.
		time.Sleep(500 * time.Millisecond)
		var buf bytes.Buffer
		_, err := fr.WriteTo(&buf)
		if err == nil {
			err = os.WriteFile(path, buf.Bytes(), 0o644)
		}
		fmt.Fprintf(os.Stderr, "bench server: execution trace of a %v request begun %s written to %s (err: %v)\n",
			took.Round(time.Microsecond), began.Format("15:04:05.000"), path, err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		next.ServeHTTP(w, r)
		if took := time.Since(began); took > after {
			once.Do(func() { go write(took, began) })
		}
	}), nil
}

// server is Tollgate running in a process of its own.
type server struct {
	cmd     *exec.Cmd
	stdin   io.Closer
	baseURL string
}

// startServer starts this binary as a Tollgate server with b's
// configuration, on b's database (already migrated).
func startServer(ctx context.Context, b *bench) (*server, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, serveArg)
	cmd.Env = os.Environ()
	for k, v := range b.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if b.serverProfile != "" {
		cmd.Env = append(cmd.Env, serverProfileEnv+"="+b.serverProfile)
	}
	if b.serverPprof != "" {
		cmd.Env = append(cmd.Env, serverPprofEnv+"="+b.serverPprof)
	}
	if b.serverTrace != "" {
		cmd.Env = append(cmd.Env, serverTraceEnv+"="+b.serverTrace, serverTraceAfterEnv+"="+b.serverTraceAfter.String())
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("tollgate server process did not start: %w", err)
	}
	s.baseURL = "http://" + strings.TrimSpace(line)
	return s, nil
}

func (s *server) stop() {
	s.stdin.Close()
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// memory reads the server's resident set size now and at its peak, in bytes.
func (s *server) memory() (rss, peak int64, err error) {
	return procMemory(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
}

// procMemory reads VmRSS and VmHWM from a /proc status file.
func procMemory(path string) (rss, peak int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for name, into := range map[string]*int64{"VmRSS:": &rss, "VmHWM:": &peak} {
			if v, ok := strings.CutPrefix(sc.Text(), name); ok {
				var kb int64
				if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb); err != nil {
					return 0, 0, fmt.Errorf("parse %s %q: %w", name, v, err)
				}
				*into = kb << 10
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if rss == 0 || peak == 0 {
		return 0, 0, fmt.Errorf("no VmRSS or VmHWM in %s", path)
	}
	return rss, peak, nil
}

// groupMetrics are the group-commit histograms' running sums and counts:
// calls per group, and the seconds of each stage.
type groupMetrics struct {
	calls, groups      float64
	wait, waits        float64
	commit, commits    float64
	publish, publishes float64
}

// add returns m plus k times o: k = 1 adds a tally, k = -1 takes one away.
func (m groupMetrics) add(o groupMetrics, k float64) groupMetrics {
	return groupMetrics{
		m.calls + k*o.calls, m.groups + k*o.groups,
		m.wait + k*o.wait, m.waits + k*o.waits,
		m.commit + k*o.commit, m.commits + k*o.commits,
		m.publish + k*o.publish, m.publishes + k*o.publishes,
	}
}

// groupCounts reads the group-commit histograms from /metrics.
func (s *server) groupCounts(ctx context.Context) (groupMetrics, error) {
	var m groupMetrics
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.baseURL+"/metrics", nil)
	if err != nil {
		return m, err
	}
	// The server takes its configuration from this environment too.
	if token := os.Getenv("METRICS_TOKEN"); token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	into := map[string]*float64{
		"tollgate_usage_group_calls_sum":                             &m.calls,
		"tollgate_usage_group_calls_count":                           &m.groups,
		`tollgate_usage_group_commit_seconds_sum{stage="wait"}`:      &m.wait,
		`tollgate_usage_group_commit_seconds_count{stage="wait"}`:    &m.waits,
		`tollgate_usage_group_commit_seconds_sum{stage="commit"}`:    &m.commit,
		`tollgate_usage_group_commit_seconds_count{stage="commit"}`:  &m.commits,
		`tollgate_usage_group_commit_seconds_sum{stage="publish"}`:   &m.publish,
		`tollgate_usage_group_commit_seconds_count{stage="publish"}`: &m.publishes,
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, _ := strings.Cut(sc.Text(), " ")
		if v, ok := into[name]; ok {
			if _, err := fmt.Sscan(value, v); err != nil {
				return m, fmt.Errorf("read %s from /metrics: %w", name, err)
			}
		}
	}
	return m, sc.Err()
}
