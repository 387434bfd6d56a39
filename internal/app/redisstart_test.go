package app_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"

	"github.com/tollgate-billing/tollgate/internal/app"
	"github.com/tollgate-billing/tollgate/internal/config"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// TestARedisURLThatCanNeverWorkStopsStartUp: a Redis that answers but
// refuses (database number out of range, wrong password) refuses forever, so
// start-up stops naming REDIS_URL instead of serving without rate limits;
// a Redis that does not answer yet, or answers that it is loading, is an
// outage, and Tollgate starts on the database.
func TestARedisURLThatCanNeverWorkStopsStartUp(t *testing.T) {
	locked := miniredis.RunT(t)
	locked.RequireAuth("right")
	loading := miniredis.RunT(t)
	loading.SetError("LOADING Redis is loading the dataset in memory")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	// miniredis takes any database number and has no cluster mode: those
	// cases need the real server, which refuses database 99 and, without
	// cluster mode, CLUSTER commands.
	real := func(t *testing.T, path, query string) string {
		raw, _ := testenv.RealRedis(t)
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		u.Path, u.RawQuery = path, strings.ReplaceAll(query, "HOST", u.Host)
		return u.String()
	}
	cases := []struct {
		name    string
		url     func(t *testing.T) string
		refused bool
		outage  bool
	}{
		{"a database number out of range", func(t *testing.T) string { return real(t, "/99", "") }, true, false},
		{"a cluster URL for a server without cluster mode", func(t *testing.T) string { return real(t, "/0", "addr=HOST") }, true, false},
		{"no password where one is required", func(*testing.T) string { return "redis://" + locked.Addr() + "/0" }, true, false},
		{"a wrong password", func(*testing.T) string { return "redis://:wrong@" + locked.Addr() + "/0" }, true, false},
		{"the right password", func(*testing.T) string { return "redis://:right@" + locked.Addr() + "/0" }, false, false},
		{"a server still loading", func(*testing.T) string { return "redis://" + loading.Addr() + "/0" }, false, true},
		{"nothing listening yet", func(*testing.T) string { return "redis://" + closed + "/0" }, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"REDIS_URL": tc.url(t), "TOLLGATE_DATA_DIR": t.TempDir()}
			cfg, err := config.Load(func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			a, err := app.New(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)), app.WithDB(testenv.DB(t)))
			if err == nil {
				a.Close()
			}
			ce := (*config.Error)(nil)
			switch {
			case tc.refused && (!errors.As(err, &ce) || ce.Var != "REDIS_URL"):
				t.Fatalf("start-up error %v, want one naming REDIS_URL", err)
			case !tc.refused && err != nil:
				t.Fatalf("start-up stopped on a Redis outage: %v", err)
			case tc.outage && !strings.Contains(logs.String(), "redis unreachable at start"):
				t.Fatalf("an outage was not logged: %s", logs.String())
			}
		})
	}
}
