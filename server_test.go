package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/app"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/config"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tollgate-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "tollgate")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build tollgate: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	testenv.StopStripeMock()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	listening = regexp.MustCompile(`tollgate listening" addr=\S*:(\d+)`)
	devToken  = regexp.MustCompile(`Bearer ([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)`)
)

// TestBinaryRunsWithZeroSetup is step 1 of the README: the built binary,
// with no configuration at all, serves GraphiQL and answers the first query
// with the development token it logs.
func TestBinaryRunsWithZeroSetup(t *testing.T) {
	work := t.TempDir()
	// No configuration: only PORT=0, so the test does not fight over :8080.
	base, token := startBinary(t, work, "PORT=0")

	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "/graphql") {
		t.Fatalf("GET / = %d, want GraphiQL pointing at /graphql", resp.StatusCode)
	}
	firstQuery(t, base, token)
	if _, err := os.Stat(filepath.Join(work, "tollgate.db")); err != nil {
		t.Fatalf("no embedded SQLite file beside the binary: %v", err)
	}
	for _, path := range []string{"/healthz", "/readyz", "/billing", "/billing/assets/billing.js"} {
		r, err := http.Get(base + path)
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", path, r.StatusCode, err)
		}
		r.Body.Close()
	}
}

// TestDevTokenComesWithABillingPageLink: the start-up line links the billing
// page on the port actually listened on, unless BILLING_PAGE=false.
func TestDevTokenComesWithABillingPageLink(t *testing.T) {
	var on, off bytes.Buffer
	printDevToken(&on, 43125, "tok.en.x", true)
	printDevToken(&off, 43125, "tok.en.x", false)
	if link := "http://localhost:43125/billing#token=tok.en.x"; !strings.Contains(on.String(), link) {
		t.Errorf("start-up text lacks %s:\n%s", link, on.String())
	}
	if strings.Contains(off.String(), "/billing") {
		t.Errorf("BILLING_PAGE=false still links the page:\n%s", off.String())
	}
}

// TestBinaryRunsOnPostgresAndRedis is step 2 of the README: the same query
// on real Postgres and Redis, with migrations applied at start.
func TestBinaryRunsOnPostgresAndRedis(t *testing.T) {
	db := testenv.PostgresURL(t)
	// Skips, or fails under TOLLGATE_REQUIRE_SERVICES, when Redis is down;
	// the binary's keys go under a prefix of this test's own.
	redisURL, prefix := testenv.RealRedis(t)
	base, token := startBinary(t, t.TempDir(), "PORT=0", "DATABASE_URL="+db, "REDIS_URL="+redisURL, "REDIS_KEY_PREFIX="+prefix)
	firstQuery(t, base, token)
	r, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || !strings.Contains(string(body), `"database":"ok"`) || !strings.Contains(string(body), `"redis":"ok"`) {
		t.Fatalf("readyz = %d %s", r.StatusCode, body)
	}
}

// startBinary runs the built binary in dir with exactly env, and returns its
// base URL and the development token it logs. SIGTERM at the end must stop it
// gracefully.
func startBinary(t *testing.T, dir string, env ...string) (base, token string) {
	t.Helper()
	cmd := exec.Command(binary)
	cmd.Dir = dir
	cmd.Env = append(env, "PATH="+os.Getenv("PATH"))
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("graceful shutdown on SIGTERM failed: %v", err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Error("did not stop within 10s of SIGTERM")
		}
	})
	type started struct{ port, token string }
	found := make(chan started, 1)
	go func() {
		var port string
		lines := bufio.NewScanner(stderr)
		for lines.Scan() {
			l := lines.Text()
			if m := listening.FindStringSubmatch(l); m != nil {
				port = m[1]
			}
			if m := devToken.FindStringSubmatch(l); m != nil {
				found <- started{port, m[1]}
				break
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case s := <-found:
		return "http://127.0.0.1:" + s.port, s.token
	case <-time.After(30 * time.Second):
		t.Fatal("no listening address and dev token logged within 30s")
	}
	return "", ""
}

// firstQuery runs the README's first query and checks a new organisation
// is on the free plan.
func firstQuery(t *testing.T, base, token string) {
	t.Helper()
	body := `{"query":"{ subscription { plan { id name } status } plans { id } }"}`
	req, _ := http.NewRequest("POST", base+"/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Subscription struct {
				Plan   struct{ ID, Name string }
				Status *string
			}
			Plans []struct{ ID string }
		}
		Errors []any
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if len(out.Errors) > 0 || out.Data.Subscription.Plan.ID != "free" || out.Data.Subscription.Status != nil || len(out.Data.Plans) != 4 {
		t.Fatalf("unexpected answer: %+v", out)
	}
}

// TestBadConfigurationStopsStartup: one clear line naming the variable, and
// a non-zero exit, before anything listens.
func TestBadConfigurationStopsStartup(t *testing.T) {
	plans := filepath.Join(t.TempDir(), "plans.yaml")
	os.WriteFile(plans, []byte("meters: []\nplans: []\n"), 0o644)
	held, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	busy := fmt.Sprint(held.Addr().(*net.TCPAddr).Port)
	cases := []struct {
		name string
		env  []string
		want string
	}{
		{"production without a JWT secret", []string{"TOLLGATE_ENV=production", "DATABASE_URL=postgres://127.0.0.1/x", "REDIS_URL=redis://127.0.0.1:6379"}, "JWT_SECRET"},
		{"production without REDIS_URL", []string{"TOLLGATE_ENV=production", "DATABASE_URL=postgres://127.0.0.1/x", "JWT_SECRET=" + strings.Repeat("s", 32)}, "tollgate: configuration: REDIS_URL: is required when TOLLGATE_ENV=production"},
		{"unparsable database URL", []string{"DATABASE_URL=::not a url"}, "DATABASE_URL"},
		{"plans file that does not validate", []string{"PLANS_FILE=" + plans}, "PLANS_FILE"},
		{"a data directory that is a file", []string{"TOLLGATE_DATA_DIR=" + plans}, "tollgate: configuration: TOLLGATE_DATA_DIR: "},
		{"a data directory that is a file, with DATABASE_URL", []string{"TOLLGATE_DATA_DIR=" + plans, "DATABASE_URL=postgres://127.0.0.1:1/x"}, "tollgate: configuration: TOLLGATE_DATA_DIR: "},
		{"a port in use", []string{"PORT=" + busy}, "tollgate: configuration: PORT: "},
		{"a request timeout of a nanosecond", []string{"REQUEST_TIMEOUT=1ns"}, "tollgate: configuration: REQUEST_TIMEOUT: "},
		{"GOGC in words", []string{"GOGC=abc"}, "tollgate: configuration: GOGC: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(binary)
			cmd.Dir = t.TempDir()
			cmd.Env = append([]string{"PORT=0"}, tc.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if err == nil {
				t.Fatal("started with bad configuration")
			}
			first := strings.SplitN(strings.TrimSpace(stderr.String()), "\n", 2)[0]
			if !strings.Contains(first, tc.want) {
				t.Fatalf("first line %q does not name %s", first, tc.want)
			}
			// Nothing started: no database was created or migrated.
			if _, err := os.Stat(filepath.Join(cmd.Dir, "tollgate.db")); err == nil {
				t.Fatalf("a database was created before start-up stopped:\n%s", &stderr)
			}
		})
	}
}

// TestMigrateCommand: `tollgate migrate status|down|up` manage the schema by hand.
func TestMigrateCommand(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) string {
		cmd := exec.Command(binary, args...)
		cmd.Dir = dir
		cmd.Env = []string{"TOLLGATE_MIGRATE=false"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("migrate %v: %v\n%s", args, err, out)
		}
		// A fresh database has no tables yet: nothing may report that as
		// an error (the webhook pruner used to, from the whole app that
		// migrate started).
		if strings.Contains(string(out), "level=ERROR") || strings.Contains(string(out), "webhook_events") {
			t.Fatalf("migrate %v logged an error:\n%s", args, out)
		}
		return string(out)
	}
	if out := run("migrate", "status"); !strings.Contains(out, "pending") || strings.Contains(out, "applied") {
		t.Fatalf("with TOLLGATE_MIGRATE=false nothing should be applied yet:\n%s", out)
	} else if !regexp.MustCompile(`(?m)^00020 +pending +river job tables`).MatchString(out) {
		t.Fatalf("River's migration has no name:\n%s", out)
	}
	// Nothing applied: down says so rather than goose's "no next version found".
	cmd := exec.Command(binary, "migrate", "down")
	cmd.Dir, cmd.Env = dir, []string{"TOLLGATE_MIGRATE=false"}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "tollgate migrate: migrate down: nothing to roll back") {
		t.Fatalf("down before the first migration: %v\n%s", err, out)
	}
	if out := run("migrate", "up"); strings.Contains(out, "pending") {
		t.Fatalf("up left pending migrations:\n%s", out)
	}
	if out := run("migrate", "down"); !strings.Contains(out, "pending") {
		t.Fatalf("down rolled nothing back:\n%s", out)
	}
}

// TestStripeSyncCommand: `tollgate stripe sync` re-reads an organisation's
// subscriptions and invoices from Stripe (stripe-mock here), applies them,
// prints what changed, and prints nothing new when run again.
func TestStripeSyncCommand(t *testing.T) {
	mock := testenv.StripeMock(t)
	dir := t.TempDir()
	env := []string{"STRIPE_SECRET_KEY=sk_test_sync", "STRIPE_API_BASE=" + mock, "PATH=" + os.Getenv("PATH")}
	run := func(args ...string) (string, error) {
		cmd := exec.Command(binary, args...)
		cmd.Dir = dir
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// Create the database and an organisation with a Stripe customer, as a
	// completed Checkout leaves it.
	if out, err := run("migrate", "up"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	db, err := store.Open(context.Background(), store.Options{SQLitePath: filepath.Join(dir, "tollgate.db")})
	if err != nil {
		t.Fatal(err)
	}
	customer := "cus_sync_test"
	now := time.Now().UTC()
	if err := db.Create(&orgs.Organization{ID: store.NewID(), ExternalID: "acme", PlanID: "free", StripeCustomerID: &customer, CreatedAt: now, UpdatedAt: now}).Error; err != nil {
		t.Fatal(err)
	}
	db.Close()

	first, err := run("stripe", "sync", "--org", "acme")
	if err != nil {
		t.Fatalf("stripe sync: %v\n%s", err, first)
	}
	if !strings.Contains(first, "subscription") || !strings.Contains(first, "synced 1 organisation(s)") || strings.Contains(first, " 0 change(s)") {
		t.Fatalf("first sync printed no changes:\n%s", first)
	}
	again, err := run("stripe", "sync")
	if err != nil {
		t.Fatalf("second stripe sync: %v\n%s", err, again)
	}
	if !strings.Contains(again, "0 change(s)") {
		t.Fatalf("second sync changed things again:\n%s", again)
	}
	if out, err := run("stripe", "sync", "--org", "nobody"); err == nil || !strings.Contains(out, "nobody") {
		t.Fatalf("unknown org: %v\n%s", err, out)
	}
}

// TestCommandLine: every command parses its flags and arguments before
// doing anything: --help prints help and exits 0, and an unknown flag, a
// missing or extra argument, or an unknown action exits 2 with the usage
// instead of running (`token --help` used to mint a token for "--help").
// Flags are read wherever they stand, before or after the arguments.
func TestCommandLine(t *testing.T) {
	env := map[string]string{"TOLLGATE_DATA_DIR": t.TempDir(), "TOLLGATE_MIGRATE": "false"}
	getenv := func(k string) string { return env[k] }
	cases := []struct {
		args       []string
		code       int
		wantStdout string // substring; "" means stdout must be empty
		wantStderr string
	}{
		{[]string{"token", "--help"}, 0, "usage: tollgate token [org]", ""},
		{[]string{"token", "-h"}, 0, "usage: tollgate token [org]", ""},
		{[]string{"migrate", "--help"}, 0, "usage: tollgate migrate up|down|status", ""},
		{[]string{"stripe", "sync", "--help"}, 0, "-org", ""},
		{[]string{"serve", "--help"}, 0, "usage: tollgate serve", ""},
		{[]string{"--help"}, 0, "COMMAND --help", ""},
		// --help after the arguments, as after the flags, for every command.
		{[]string{"token", "acme", "--help"}, 0, "usage: tollgate token [org]", ""},
		{[]string{"token", "acme", "-h"}, 0, "usage: tollgate token [org]", ""},
		{[]string{"migrate", "up", "--help"}, 0, "usage: tollgate migrate up|down|status", ""},
		{[]string{"migrate", "sideways", "--help"}, 0, "usage: tollgate migrate up|down|status", ""},
		{[]string{"stripe", "sync", "--org", "acme", "--help"}, 0, "-org", ""},
		{[]string{"stripe", "--help", "sync"}, 0, "usage: tollgate stripe sync", ""},
		{[]string{"serve", "now", "--help"}, 0, "usage: tollgate serve", ""},
		{[]string{"migrate", "--", "--help"}, 2, "", `unknown action "--help"`}, // "--" ends the flags
		{[]string{"token", ""}, 2, "", "tollgate token: org must not be empty"},
		{[]string{"token", "acme", "--org", "x"}, 2, "", "flag provided but not defined: -org"},
		{[]string{"token", "acme", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"token", "--org", "acme"}, 2, "", "flag provided but not defined: -org"},
		{[]string{"token", "acme "}, 2, "", "whitespace"},
		{[]string{"migrate"}, 2, "", "missing argument"},
		{[]string{"migrate", "sideways"}, 2, "", `unknown action "sideways"`},
		{[]string{"migrate", "status", "now"}, 2, "", `unexpected argument "now"`},
		{[]string{"stripe", "resync"}, 2, "", `unknown action "resync"`},
		{[]string{"serve", "now"}, 2, "", `unexpected argument "now"`},
		{[]string{"tokens"}, 2, "", `unknown command "tokens"`},
		// version reads no configuration: it answers where start-up would not.
		{[]string{"version"}, 0, "tollgate (devel), commit ", ""},
		{[]string{"--version"}, 0, "tollgate (devel), commit ", ""},
		{[]string{"help", "version"}, 0, "usage: tollgate version", ""},
		{[]string{"version", "now"}, 2, "", `unexpected argument "now"`},
		// help before the command describes the command.
		{[]string{"help", "token"}, 0, "usage: tollgate token [org]", ""},
		{[]string{"--help", "token"}, 0, "usage: tollgate token [org]", ""},
		{[]string{"help", "stripe"}, 0, "-org ID", ""},
		{[]string{"help", "tokens"}, 2, "", `unknown command "tokens"`},
		// Every error says which command.
		{[]string{"migrate", "up", "-x"}, 2, "", "tollgate migrate: flag provided but not defined: -x"},
		{[]string{"stripe", "sync", "--org="}, 2, "", "tollgate stripe: --org must not be empty"},
		{[]string{"stripe", "sync", "--org", " "}, 2, "", "tollgate stripe: --org must not be empty"},
		{[]string{"stripe", "sync", "--org=demo", "--org=x"}, 2, "", "tollgate stripe: invalid value \"x\" for flag -org: given more than once"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, getenv, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, &stdout, &stderr)
			}
			if tc.wantStdout == "" && stdout.Len() > 0 || !strings.Contains(stdout.String(), tc.wantStdout) {
				t.Fatalf("stdout %q, want %q", &stdout, tc.wantStdout)
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Fatalf("stderr %q, want it to contain %q", &stderr, tc.wantStderr)
			}
			if strings.Contains(stdout.String(), "eyJ") {
				t.Fatalf("a token was minted: %s", &stdout)
			}
		})
	}

	// The plain forms still work, where the server left its dev secret.
	if err := os.WriteFile(filepath.Join(env["TOLLGATE_DATA_DIR"], ".tollgate-dev-jwt-secret"), []byte(strings.Repeat("ab", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"token", "acme"}, getenv, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "eyJ") {
		t.Fatalf("token acme: exit %d, stdout %q, stderr %s", code, &stdout, &stderr)
	}
}

// TestVersionNamesTheCommit: what `tollgate version` prints for a build
// from a clean checkout, one with uncommitted changes, and one without
// version control information.
func TestVersionNamesTheCommit(t *testing.T) {
	build := func(settings ...string) *debug.BuildInfo {
		info := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/tollgate-billing/tollgate", Version: "v1.4.0"}}
		for i := 0; i+1 < len(settings); i += 2 {
			info.Settings = append(info.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return info
	}
	const rev, at = "227d44b6eb7b457c74839d0f657bc085e4352e15", "2026-12-04T16:50:00Z"
	for _, tc := range []struct {
		info *debug.BuildInfo
		want string
	}{
		{build("vcs.revision", rev, "vcs.time", at, "vcs.modified", "false"), "tollgate v1.4.0, commit " + rev + " of " + at + ", go1.26.8"},
		{build("vcs.revision", rev, "vcs.time", at, "vcs.modified", "true"), "tollgate v1.4.0, commit " + rev + "+modified of " + at + ", go1.26.8"},
		{build(), "tollgate v1.4.0, commit unknown (built without version control information: go run, or -buildvcs=false), go1.26.8"},
	} {
		if got := versionLine(tc.info); got != tc.want {
			t.Errorf("versionLine = %q\n            want %q", got, tc.want)
		}
	}
	// The test binary itself: no commit, and the Go it was built with.
	var stdout, stderr bytes.Buffer
	env := map[string]string{"TOLLGATE_ENV": "not-an-environment"}
	if code := run(context.Background(), []string{"version"}, func(k string) string { return env[k] }, &stdout, &stderr); code != 0 ||
		!strings.Contains(stdout.String(), runtime.Version()) {
		t.Fatalf("version with a bad configuration: exit %d, stdout %q, stderr %q", code, &stdout, &stderr)
	}
}

// TestTokenCommandBindsToTheConfiguredAudience: with JWT_AUDIENCE and
// JWT_ISSUER set, the server refuses tokens without them, so `tollgate
// token` must put them in its tokens, or the tokens it prints would answer
// TOKEN_CLAIMS_INVALID. So must an organisation of the longest external id
// (255 bytes): its subject must still fit the sub claim's bound.
func TestTokenCommandBindsToTheConfiguredAudience(t *testing.T) {
	env := map[string]string{"TOLLGATE_DATA_DIR": t.TempDir(), "TOLLGATE_MIGRATE": "false",
		"JWT_SECRET": strings.Repeat("s", 32), "JWT_AUDIENCE": "api://tollgate", "JWT_ISSUER": "https://idp.example/"}
	getenv := func(k string) string { return env[k] }
	cfg, err := config.Load(getenv)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier([]byte(cfg.JWTSecret), nil, app.Binding(cfg), clock.Real{})
	if err != nil {
		t.Fatal(err)
	}
	for _, org := range []string{"acme", strings.Repeat("a", orgs.MaxExternalIDLen)} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"token", org}, getenv, &stdout, &stderr); code != 0 {
			t.Fatalf("token %s: exit %d, stderr %s", org, code, &stderr)
		}
		c, f := v.Verify(strings.TrimSpace(stdout.String()))
		if f != nil || c.Org != org || c.Subject == "" {
			t.Fatalf("the minted token for %q is refused by a server of the same configuration: %+v", org, f)
		}
	}
}

// TestRedisClientLinesGoThroughTheLogger: while Redis is unreachable,
// go-redis's own "pool.go: failed to dial" lines used to go raw to stderr,
// many a second, amid the structured logs. Only Tollgate's own line about
// the outage may show at the default level, formatted like every other.
func TestRedisClientLinesGoThroughTheLogger(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	cmd := exec.Command(binary)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PORT=0", "REDIS_URL=redis://" + closed, "PATH=" + os.Getenv("PATH")}
	lines := startWithStderrLines(t, cmd)
	var all []string
	port, token := "", ""
	timeout := time.After(30 * time.Second)
	for token == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("exited before serving:\n%s", strings.Join(all, "\n"))
			}
			all = append(all, l)
			if m := listening.FindStringSubmatch(l); m != nil {
				port = m[1]
			}
			if m := devToken.FindStringSubmatch(l); m != nil {
				token = m[1]
			}
		case <-timeout:
			cmd.Process.Kill()
			t.Fatalf("not serving within 30 s:\n%s", strings.Join(all, "\n"))
		}
	}
	// A request that needs Redis (the rate limiter) while it is down.
	firstQuery(t, "http://127.0.0.1:"+port, token)
	cmd.Process.Signal(syscall.SIGTERM)
	for l := range lines {
		all = append(all, l)
	}
	cmd.Wait()

	out := strings.Join(all, "\n")
	if !strings.Contains(out, "redis unreachable at start") {
		t.Fatalf("no line said Redis is unreachable:\n%s", out)
	}
	for _, l := range all {
		if strings.Contains(l, "pool.go") || strings.HasPrefix(l, "redis: ") {
			t.Fatalf("go-redis wrote to stderr directly: %q\nall output:\n%s", l, out)
		}
	}
}

// TestTokenTouchesNoDatabase: signing a token needs only the secret, so
// `tollgate token` neither creates nor migrates a database, starts no Redis,
// and works while DATABASE_URL and REDIS_URL point at nothing.
func TestTokenTouchesNoDatabase(t *testing.T) {
	for name, env := range map[string][]string{
		"with the server's dev secret":      nil,
		"with a database that is down":      {"JWT_SECRET=" + strings.Repeat("k", 32), "DATABASE_URL=postgres://127.0.0.1:1/x", "REDIS_URL=redis://127.0.0.1:1"},
		"with the dev secret, Postgres set": {"DATABASE_URL=postgres://127.0.0.1:1/x"},
	} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(binary, "token", "acme")
			cmd.Dir = t.TempDir()
			// What the server leaves in its data directory on first start.
			if err := os.WriteFile(filepath.Join(cmd.Dir, ".tollgate-dev-jwt-secret"), []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd.Env = env
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("token: %v\n%s", err, &stderr)
			}
			if !devToken.MatchString("Bearer " + strings.TrimSpace(stdout.String())) {
				t.Fatalf("stdout %q is not a token", &stdout)
			}
			if stderr.Len() > 0 {
				t.Fatalf("token logged: %s", &stderr)
			}
			if _, err := os.Stat(filepath.Join(cmd.Dir, "tollgate.db")); err == nil {
				t.Fatal("token created a database")
			}
		})
	}
}

// TestTokenSignsWithTheServersSecretOrSaysWhereItLooked: `tollgate token`
// run where the server keeps its dev secret (its directory, or
// TOLLGATE_DATA_DIR naming it) prints a token that server accepts. Run
// anywhere else, it used to make a secret of its own there and print a
// token every server refused (TOKEN_SIGNATURE_INVALID); it now stops,
// names the path it read and what to set, and writes nothing.
func TestTokenSignsWithTheServersSecretOrSaysWhereItLooked(t *testing.T) {
	serverDir := t.TempDir()
	base, _ := startBinary(t, serverDir, "PORT=0")
	mint := func(dir string, env ...string) (string, string, error) {
		cmd := exec.Command(binary, "token", "acme")
		cmd.Dir, cmd.Env = dir, env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return strings.TrimSpace(stdout.String()), stderr.String(), err
	}
	if tok, stderr, err := mint(serverDir); err != nil {
		t.Fatalf("token in the server's directory: %v\n%s", err, stderr)
	} else {
		firstQuery(t, base, tok)
	}
	elsewhere := t.TempDir()
	if tok, stderr, err := mint(elsewhere, "TOLLGATE_DATA_DIR="+serverDir); err != nil {
		t.Fatalf("token with TOLLGATE_DATA_DIR naming the server's directory: %v\n%s", err, stderr)
	} else {
		firstQuery(t, base, tok)
	}
	tok, stderr, err := mint(elsewhere)
	if err == nil || tok != "" {
		t.Fatalf("token with no dev secret succeeded and printed %q; want it to stop", tok)
	}
	want := filepath.Join(elsewhere, ".tollgate-dev-jwt-secret")
	if !strings.Contains(stderr, "TOLLGATE_DATA_DIR") || !strings.Contains(stderr, want) || !strings.Contains(stderr, "JWT_SECRET") {
		t.Fatalf("stderr %q does not name the path it read (%s) and what to set", stderr, want)
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Fatalf("token wrote %d files where it found no secret", len(entries))
	}
}

// TestStartSaysWhichSQLiteFile: with no DATABASE_URL the database is a file
// in the directory the server starts in; a start from another directory
// used to come up silently on an empty one. The log names the file before
// the server listens.
func TestStartSaysWhichSQLiteFile(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(binary)
	cmd.Dir = dir
	cmd.Env = []string{"PORT=0", "PATH=" + os.Getenv("PATH")}
	lines := startWithStderrLines(t, cmd)
	defer cmd.Process.Kill()
	want := "path=" + filepath.Join(dir, "tollgate.db")
	var logged strings.Builder
	for l := range lines {
		logged.WriteString(l + "\n")
		if strings.Contains(l, want) {
			return
		}
		if strings.Contains(l, "tollgate listening") {
			break
		}
	}
	t.Fatalf("no line names %s before listening:\n%s", want, &logged)
}

// TestJobsWaitForAnUnmigratedSchema: TOLLGATE_MIGRATE=false on a fresh
// database says background jobs wait for the schema, and they truly do:
// nothing queries a table that does not exist yet (the Stripe event pruner
// used to log ERROR "no such table: webhook_events"). Once `migrate up` has
// run, they start.
func TestJobsWaitForAnUnmigratedSchema(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(binary)
	cmd.Dir = dir
	cmd.Env = []string{"PORT=0", "TOLLGATE_MIGRATE=false", "PATH=" + os.Getenv("PATH")}
	lines := startWithStderrLines(t, cmd)
	defer cmd.Process.Kill()
	var logged strings.Builder
	waitFor := func(what string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("exited before logging %q:\n%s", what, &logged)
				}
				logged.WriteString(l + "\n")
				if strings.Contains(l, "level=ERROR") {
					t.Fatalf("logged an error:\n%s", &logged)
				}
				if strings.Contains(l, what) {
					return
				}
			case <-deadline:
				t.Fatalf("%q not logged within 30s:\n%s", what, &logged)
			}
		}
	}
	waitFor("background jobs wait until the database schema is at the latest migration")
	waitFor("Bearer ")
	migrate := exec.Command(binary, "migrate", "up")
	migrate.Dir, migrate.Env = dir, []string{"TOLLGATE_MIGRATE=false"}
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("migrate up: %v\n%s", err, out)
	}
	waitFor("background jobs started")
	cmd.Process.Signal(syscall.SIGTERM)
	for l := range lines {
		logged.WriteString(l + "\n")
	}
	if strings.Contains(logged.String(), "level=ERROR") {
		t.Fatalf("logged an error:\n%s", &logged)
	}
}

// startWithStderrLines starts cmd and returns its stderr a line at a time,
// closed when the process closes it.
func startWithStderrLines(t *testing.T, cmd *exec.Cmd) <-chan string {
	t.Helper()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	return lines
}
