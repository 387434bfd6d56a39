package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaultsRunWithZeroSetup(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 8080 || c.Env != Dev || c.DatabaseURL != "" || c.RedisURL != "" || !c.Migrate || !c.Playground ||
		c.APIRatePerCredential != 1000 || c.APIRatePerOrganization != 5000 || c.APIRatePerAddress != 100 || !c.BillingPage || c.UsageEventsRetentionMonths != 13 ||
		c.UsageGateLease != time.Second || c.StripeCallsPerOrganization != 4 || c.CheckoutSessionsRetentionDays != 30 || c.RevokedAPIKeysRetentionDays != 90 {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

// TestBadConfigurationNamesTheVariable: each bad value stops start-up with a
// line that names the variable.
func TestBadConfigurationNamesTheVariable(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"unparsable DATABASE_URL", map[string]string{"DATABASE_URL": "postgres://%zz"}, "DATABASE_URL"},
		{"DATABASE_URL of another database", map[string]string{"DATABASE_URL": "mysql://root@localhost/db"}, "DATABASE_URL: must be a postgres:// URL"},
		{"production without JWT_SECRET", map[string]string{"TOLLGATE_ENV": "production", "DATABASE_URL": "postgres://h/db"}, "JWT_SECRET: is required when TOLLGATE_ENV=production"},
		{"production with a short secret", map[string]string{"TOLLGATE_ENV": "production", "DATABASE_URL": "postgres://h/db", "JWT_SECRET": "short"}, "JWT_SECRET: must be at least 32 bytes"},
		{"production on SQLite", map[string]string{"TOLLGATE_ENV": "production", "JWT_SECRET": strings.Repeat("x", 32), "REDIS_URL": "redis://r:6379"}, "DATABASE_URL: is required"},
		{"production on the embedded Redis", map[string]string{"TOLLGATE_ENV": "production", "JWT_SECRET": strings.Repeat("x", 32), "DATABASE_URL": "postgres://h/db"}, "REDIS_URL: is required when TOLLGATE_ENV=production"},
		{"unknown TOLLGATE_ENV", map[string]string{"TOLLGATE_ENV": "staging"}, "TOLLGATE_ENV"},
		{"non-numeric PORT", map[string]string{"PORT": "eighty"}, "PORT"},
		{"REDIS_URL without scheme", map[string]string{"REDIS_URL": "localhost:6379"}, "REDIS_URL"},
		{"a cluster REDIS_URL with a database number", map[string]string{"REDIS_URL": "redis://h1:6379/2?addr=h2:6379"}, "REDIS_URL: a Redis Cluster has only database 0"},
		{"a REDIS_URL with an unknown option", map[string]string{"REDIS_URL": "redis://h1:6379?colour=blue"}, "REDIS_URL: redis: unexpected option: colour"},
		{"REDIS_KEY_PREFIX with a hash tag", map[string]string{"REDIS_KEY_PREFIX": "{tg}:"}, "REDIS_KEY_PREFIX: must not contain braces"},
		{"TOLLGATE_MIGRATE not a bool", map[string]string{"TOLLGATE_MIGRATE": "sometimes"}, "TOLLGATE_MIGRATE"},
		{"publishable key as secret", map[string]string{"STRIPE_SECRET_KEY": "pk_test_123"}, "STRIPE_SECRET_KEY"},
		{"webhook secret of the wrong kind", map[string]string{"STRIPE_WEBHOOK_SECRET": "sk_test_123"}, "STRIPE_WEBHOOK_SECRET"},
		{"STRIPE_API_BASE not a URL", map[string]string{"STRIPE_API_BASE": "localhost:12111"}, "STRIPE_API_BASE"},
		{"CORS origin without scheme", map[string]string{"CORS_ORIGINS": "app.example.com"}, "CORS_ORIGINS"},
		{"BILLING_PAGE not a bool", map[string]string{"BILLING_PAGE": "maybe"}, "BILLING_PAGE"},
		{"negative API limit per credential", map[string]string{"API_RATE_LIMIT_PER_CREDENTIAL": "-1"}, "API_RATE_LIMIT_PER_CREDENTIAL"},
		{"API limit per address in words", map[string]string{"API_RATE_LIMIT_PER_ADDRESS": "lots"}, "API_RATE_LIMIT_PER_ADDRESS"},
		{"negative API limit per organization", map[string]string{"API_RATE_LIMIT_PER_ORGANIZATION": "-1"}, "API_RATE_LIMIT_PER_ORGANIZATION"},
		{"Stripe budget in words", map[string]string{"STRIPE_CALLS_PER_ORGANIZATION": "few"}, "STRIPE_CALLS_PER_ORGANIZATION: must be a whole number"},
		{"checkout retention without a unit", map[string]string{"CHECKOUT_SESSIONS_RETENTION": "30"}, "CHECKOUT_SESSIONS_RETENTION: must be a number of whole days from 7d"},
		{"checkout retention shorter than Stripe's retries", map[string]string{"CHECKOUT_SESSIONS_RETENTION": "3d"}, "CHECKOUT_SESSIONS_RETENTION"},
		{"revoked key retention of no days", map[string]string{"REVOKED_API_KEYS_RETENTION": "0d"}, "REVOKED_API_KEYS_RETENTION: must be a number of whole days from 1d"},
		{"revoked key retention past ten years", map[string]string{"REVOKED_API_KEYS_RETENTION": "3651d"}, "REVOKED_API_KEYS_RETENTION"},
		{"retention without a unit", map[string]string{"USAGE_EVENTS_RETENTION": "13"}, "USAGE_EVENTS_RETENTION: must be a number of whole months"},
		{"retention as a Go duration", map[string]string{"USAGE_EVENTS_RETENTION": "9480h"}, "USAGE_EVENTS_RETENTION"},
		{"retention of no months", map[string]string{"USAGE_EVENTS_RETENTION": "0mo"}, "USAGE_EVENTS_RETENTION"},
		{"gate lease without a unit", map[string]string{"USAGE_GATE_LEASE": "1"}, "USAGE_GATE_LEASE: must be 0 (off) or a duration"},
		{"gate lease too long", map[string]string{"USAGE_GATE_LEASE": "1m"}, "USAGE_GATE_LEASE"},
		{"endpoint cap of none", map[string]string{"USAGE_ENDPOINTS_PER_METER": "0"}, "USAGE_ENDPOINTS_PER_METER: must be a whole number"},
		{"endpoint cap in words", map[string]string{"USAGE_ENDPOINTS_PER_METER": "many"}, "USAGE_ENDPOINTS_PER_METER"},
		{"endpoint cap past its bound", map[string]string{"USAGE_ENDPOINTS_PER_METER": "100001"}, "USAGE_ENDPOINTS_PER_METER"},
		{"gate lease too short", map[string]string{"USAGE_GATE_LEASE": "1ms"}, "USAGE_GATE_LEASE"},
		{"PORT with a space", map[string]string{"PORT": " 18460"}, "PORT"},
		{"PORT with a sign", map[string]string{"PORT": "+8080"}, "PORT"},
		{"CORS origin with a path", map[string]string{"CORS_ORIGINS": "https://a.com/path"}, "CORS_ORIGINS"},
		{"CORS origin with a trailing slash", map[string]string{"CORS_ORIGINS": "https://a.com/"}, "CORS_ORIGINS"},
		{"CORS origin with a query", map[string]string{"CORS_ORIGINS": "https://a.com?x=1"}, "CORS_ORIGINS"},
		{"CORS origin with a fragment", map[string]string{"CORS_ORIGINS": "https://a.com#x"}, "CORS_ORIGINS"},
		{"CORS origin with a user", map[string]string{"CORS_ORIGINS": "https://u@a.com"}, "CORS_ORIGINS"},
		{"CORS origin of another scheme", map[string]string{"CORS_ORIGINS": "ftp://a.com"}, "CORS_ORIGINS"},
		{"CORS origin with a bad port", map[string]string{"CORS_ORIGINS": "https://a.com:99999"}, "CORS_ORIGINS"},
		{"CORS null origin", map[string]string{"CORS_ORIGINS": "null"}, "CORS_ORIGINS"},
		{"retention with a leading space", map[string]string{"USAGE_EVENTS_RETENTION": " 13mo"}, "USAGE_EVENTS_RETENTION"},
		{"retention with a trailing space", map[string]string{"USAGE_EVENTS_RETENTION": "13mo "}, "USAGE_EVENTS_RETENTION"},
		{"retention with a leading zero", map[string]string{"USAGE_EVENTS_RETENTION": "013mo"}, "USAGE_EVENTS_RETENTION"},
		{"retention with a sign", map[string]string{"USAGE_EVENTS_RETENTION": "+13mo"}, "USAGE_EVENTS_RETENTION"},
		{"retention past a century", map[string]string{"USAGE_EVENTS_RETENTION": "1201mo"}, "USAGE_EVENTS_RETENTION"},
		{"API limit with a sign", map[string]string{"API_RATE_LIMIT_PER_CREDENTIAL": "+5"}, "API_RATE_LIMIT_PER_CREDENTIAL"},
		{"request timeout of a nanosecond", map[string]string{"REQUEST_TIMEOUT": "1ns"}, "REQUEST_TIMEOUT: must be a duration from 1s"},
		{"request timeout past the write timeout", map[string]string{"REQUEST_TIMEOUT": "2h"}, "REQUEST_TIMEOUT"},
		{"request timeout without a unit", map[string]string{"REQUEST_TIMEOUT": "15"}, "REQUEST_TIMEOUT"},
		{"METRICS_TOKEN too short", map[string]string{"METRICS_TOKEN": "abc123"}, "METRICS_TOKEN: must be at least 16 characters"},
		{"METRICS_TOKEN with a space", map[string]string{"METRICS_TOKEN": "0123456789abcdef 0123"}, "METRICS_TOKEN"},
		{"METRICS_TOKEN with a line break", map[string]string{"METRICS_TOKEN": "0123456789abcdef\n"}, "METRICS_TOKEN"},
		{"GOGC in words", map[string]string{"GOGC": "abc"}, "GOGC: must be off or a whole percentage"},
		{"GOGC negative", map[string]string{"GOGC": "-1"}, "GOGC"},
		{"GOGC zero", map[string]string{"GOGC": "0"}, "GOGC"},
		{"GOMEMLIMIT in words", map[string]string{"GOMEMLIMIT": "lots"}, "GOMEMLIMIT: must be off or a size"},
		{"GOMEMLIMIT in decimal units", map[string]string{"GOMEMLIMIT": "160MB"}, "GOMEMLIMIT"},
		{"GOMEMLIMIT below the live heap", map[string]string{"GOMEMLIMIT": "1MiB"}, "GOMEMLIMIT"},
		{"an allowed network without a prefix length", map[string]string{"WEBHOOK_ALLOWED_NETWORKS": "10.0.0.5"}, `WEBHOOK_ALLOWED_NETWORKS: "10.0.0.5" is not a network in CIDR form`},
		{"an allowed network by name", map[string]string{"WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/8,vpc.internal/16"}, `WEBHOOK_ALLOWED_NETWORKS: "vpc.internal/16" is not a network`},
		{"an allowed network past /32", map[string]string{"WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/33"}, "WEBHOOK_ALLOWED_NETWORKS"},
		{"an allowed network with host bits", map[string]string{"WEBHOOK_ALLOWED_NETWORKS": "10.1.2.3/8"}, "WEBHOOK_ALLOWED_NETWORKS: \"10.1.2.3/8\" has bits set past its prefix length: write the network as 10.0.0.0/8"},
		{"an allowed network with a zone", map[string]string{"WEBHOOK_ALLOWED_NETWORKS": "fe80::%eth0/64"}, "WEBHOOK_ALLOWED_NETWORKS"},
		{"an IPv4 network written as IPv6", map[string]string{"WEBHOOK_ALLOWED_NETWORKS": "::ffff:10.0.0.0/104"}, "WEBHOOK_ALLOWED_NETWORKS: \"::ffff:10.0.0.0/104\" is an IPv4-mapped IPv6 network"},
		// An identity provider's keys also sign its other applications'
		// tokens: in production only an audience tells them apart.
		{"production with provider keys and no audience", map[string]string{"TOLLGATE_ENV": "production", "JWT_PUBLIC_KEYS_FILE": "/keys.pem", "DATABASE_URL": "postgres://h/db", "REDIS_URL": "redis://r:6379"}, "JWT_AUDIENCE: is required when TOLLGATE_ENV=production and JWT_PUBLIC_KEYS_FILE is set"},
		{"JWT_AUDIENCE with a trailing space", map[string]string{"JWT_AUDIENCE": "tollgate "}, "JWT_AUDIENCE: must be at most 1000 bytes"},
		{"JWT_AUDIENCE with a newline", map[string]string{"JWT_AUDIENCE": "toll\ngate"}, "JWT_AUDIENCE"},
		{"JWT_ISSUER with a control character", map[string]string{"JWT_ISSUER": "https://idp.example/\x00"}, "JWT_ISSUER"},
		{"JWT_ISSUER past 1000 bytes", map[string]string{"JWT_ISSUER": "https://idp.example/" + strings.Repeat("a", 1000)}, "JWT_ISSUER"},
		{"JWT_AUTHORIZED_PARTY with a control character", map[string]string{"JWT_PUBLIC_KEYS_FILE": "/keys.pem", "JWT_AUTHORIZED_PARTY": "dash\tboard"}, "JWT_AUTHORIZED_PARTY: must be at most 1000 bytes"},
		{"JWT_AUTHORIZED_PARTY without provider keys", map[string]string{"JWT_AUTHORIZED_PARTY": "dashboard"}, "JWT_AUTHORIZED_PARTY: applies only to tokens signed with JWT_PUBLIC_KEYS_FILE's keys"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(env(tc.env))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

func TestAClusterRedisURLIsAccepted(t *testing.T) {
	for _, u := range []string{"redis://h1:6379?addr=h2:6379&addr=h3:6379", "rediss://u:p@h1:6380?addr=h2:6380"} {
		if _, err := Load(env(map[string]string{"REDIS_URL": u})); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestRedisKeysGoUnderTollgateUnlessToldOtherwise(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil || c.RedisKeyPrefix != "tollgate:" {
		t.Fatalf("default prefix %q (err %v), want tollgate:", c.RedisKeyPrefix, err)
	}
	c, err = Load(env(map[string]string{"REDIS_KEY_PREFIX": "billing-eu:"}))
	if err != nil || c.RedisKeyPrefix != "billing-eu:" {
		t.Fatalf("prefix %q (err %v), want billing-eu:", c.RedisKeyPrefix, err)
	}
}

func TestProductionTurnsOffThePlayground(t *testing.T) {
	c, err := Load(env(map[string]string{"TOLLGATE_ENV": "production", "DATABASE_URL": "postgres://db/x", "REDIS_URL": "redis://r:6379", "JWT_SECRET": strings.Repeat("s", 32)}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Playground {
		t.Fatal("playground on in production")
	}
}

func TestGateLeasesCanBeTurnedOff(t *testing.T) {
	for v, want := range map[string]time.Duration{"0": 0, "250ms": 250 * time.Millisecond} {
		c, err := Load(env(map[string]string{"USAGE_GATE_LEASE": v}))
		if err != nil || c.UsageGateLease != want {
			t.Errorf("USAGE_GATE_LEASE=%s: %s (err %v), want %s", v, c.UsageGateLease, err, want)
		}
	}
}

func TestUsageEventsRetentionIsWholeMonths(t *testing.T) {
	c, err := Load(env(map[string]string{"USAGE_EVENTS_RETENTION": "24mo"}))
	if err != nil || c.UsageEventsRetentionMonths != 24 {
		t.Fatalf("retention %d months (err %v), want 24", c.UsageEventsRetentionMonths, err)
	}
}

func TestUsageEndpointsPerMeterDefaultsToAThousand(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil || c.UsageEndpointsPerMeter != 1000 {
		t.Fatalf("endpoint cap %d (err %v), want 1000", c.UsageEndpointsPerMeter, err)
	}
	c, err = Load(env(map[string]string{"USAGE_ENDPOINTS_PER_METER": "250"}))
	if err != nil || c.UsageEndpointsPerMeter != 250 {
		t.Fatalf("endpoint cap %d (err %v), want 250", c.UsageEndpointsPerMeter, err)
	}
}

// TestGoodValuesAreTaken: the forms the README shows start Tollgate.
func TestGoodValuesAreTaken(t *testing.T) {
	c, err := Load(env(map[string]string{
		"PORT": "0", "CORS_ORIGINS": "https://app.example.com, http://localhost:3000,*",
		"REQUEST_TIMEOUT": "30s", "GOGC": "200", "GOMEMLIMIT": "512MiB", "USAGE_EVENTS_RETENTION": "1200mo",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.CORSOrigins) != 3 || c.CORSOrigins[1] != "http://localhost:3000" || c.RequestTimeout != 30*time.Second {
		t.Fatalf("got %+v", c)
	}
	c, err = Load(env(map[string]string{"WEBHOOK_ALLOWED_NETWORKS": " 10.20.0.0/16, fd12:3456::/48,,192.168.7.9/32 "}))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(c.WebhookAllowedNetworks) != "[10.20.0.0/16 fd12:3456::/48 192.168.7.9/32]" {
		t.Fatalf("WEBHOOK_ALLOWED_NETWORKS gave %v", c.WebhookAllowedNetworks)
	}
	bound, err := Load(env(map[string]string{"TOLLGATE_ENV": "production", "JWT_PUBLIC_KEYS_FILE": "/keys.pem", "DATABASE_URL": "postgres://h/db",
		"REDIS_URL": "redis://r:6379", "JWT_AUDIENCE": "api://tollgate", "JWT_ISSUER": "https://idp.example/", "JWT_AUTHORIZED_PARTY": "billing-dashboard"}))
	if err != nil || bound.JWTAudience != "api://tollgate" || bound.JWTIssuer != "https://idp.example/" || bound.JWTAuthorizedParty != "billing-dashboard" {
		t.Fatalf("production with provider keys, audience and issuer: %v, %+v", err, bound)
	}
	if c, err := Load(env(map[string]string{"TOLLGATE_ENV": "production", "JWT_SECRET": strings.Repeat("x", 32), "DATABASE_URL": "postgres://h/db", "REDIS_URL": "redis://r:6379"})); err != nil || c.JWTAudience != "" {
		t.Fatalf("production with only JWT_SECRET needs no audience: %v", err)
	}
	for _, v := range []map[string]string{{"GOGC": "off", "GOMEMLIMIT": "off"}, {"GOMEMLIMIT": "1GiB"}, {"GOMEMLIMIT": "67108864"}, {"GOMEMLIMIT": "33554432B"}} {
		if _, err := Load(env(v)); err != nil {
			t.Errorf("%v: %v", v, err)
		}
	}
}

// Every enumerated or boolean variable follows one rule: any case, booleans
// true/false/1/0 only, and a refusal lists exactly what is accepted.
func TestEnumAndBooleanVariablesShareOneRule(t *testing.T) {
	prod := map[string]string{"DATABASE_URL": "postgres://db/x", "REDIS_URL": "redis://r:6379", "JWT_SECRET": strings.Repeat("s", 32)}
	bools := map[string]func(Config) bool{
		"TOLLGATE_MIGRATE": func(c Config) bool { return c.Migrate },
		"PLAYGROUND":       func(c Config) bool { return c.Playground },
		"BILLING_PAGE":     func(c Config) bool { return c.BillingPage },
	}
	for v, get := range bools {
		for in, want := range map[string]bool{"true": true, "TRUE": true, "True": true, "1": true, "false": false, "FALSE": false, "0": false} {
			c, err := Load(env(map[string]string{v: in}))
			if err != nil || get(c) != want {
				t.Errorf("%s=%s: %v, %v; want %v", v, in, get(c), err, want)
			}
		}
		for _, in := range []string{"t", "F", "yes", "on", "2"} {
			_, err := Load(env(map[string]string{v: in}))
			if want := fmt.Sprintf("%s: must be true, false, 1 or 0, got %q", v, in); err == nil || err.Error() != want {
				t.Errorf("%s=%s: %v, want %s", v, in, err, want)
			}
		}
	}
	for in, want := range map[string]Env{"dev": Dev, "DEV": Dev, "Development": Dev, "production": Production, "PROD": Production, "Production": Production} {
		m := map[string]string{"TOLLGATE_ENV": in}
		for k, v := range prod {
			m[k] = v
		}
		c, err := Load(env(m))
		if err != nil || c.Env != want {
			t.Errorf("TOLLGATE_ENV=%s: %v, %v; want %v", in, c.Env, err, want)
		}
	}
	if _, err := Load(env(map[string]string{"TOLLGATE_ENV": "staging"})); err == nil ||
		err.Error() != `TOLLGATE_ENV: must be dev (or development) or production (or prod), got "staging"` {
		t.Errorf("TOLLGATE_ENV=staging: %v", err)
	}
	for _, in := range []string{"debug", "INFO", "Warn", "error"} {
		c, err := Load(env(map[string]string{"LOG_LEVEL": in}))
		if err != nil || c.LogLevel != strings.ToLower(in) {
			t.Errorf("LOG_LEVEL=%s: %q, %v", in, c.LogLevel, err)
		}
	}
	if _, err := Load(env(map[string]string{"LOG_LEVEL": "trace"})); err == nil ||
		err.Error() != `LOG_LEVEL: must be debug, info, warn or error, got "trace"` {
		t.Errorf("LOG_LEVEL=trace: %v", err)
	}
}

// TestBudgetAndRetentionsAreRead: the Stripe budget (0 turns it off) and
// the two retentions, in whole days, are taken as given.
func TestBudgetAndRetentionsAreRead(t *testing.T) {
	c, err := Load(env(map[string]string{"STRIPE_CALLS_PER_ORGANIZATION": "0", "CHECKOUT_SESSIONS_RETENTION": "14d", "REVOKED_API_KEYS_RETENTION": "1d"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.StripeCallsPerOrganization != 0 || c.CheckoutSessionsRetentionDays != 14 || c.RevokedAPIKeysRetentionDays != 1 {
		t.Fatalf("read %d, %dd, %dd; want 0, 14d, 1d", c.StripeCallsPerOrganization, c.CheckoutSessionsRetentionDays, c.RevokedAPIKeysRetentionDays)
	}
}
