// Package config reads Tollgate's settings from the environment. Every
// setting is checked here, before anything starts, so that a bad value stops
// the process with one line naming the variable and what is wrong with it.
package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/tollgate-billing/tollgate/internal/redisconn"
	"github.com/tollgate-billing/tollgate/internal/usertext"
)

// Env is the deployment mode.
type Env string

const (
	Dev        Env = "dev"
	Production Env = "production"
)

// Config is everything Tollgate reads from its environment.
type Config struct {
	Port    int
	Env     Env
	DataDir string // where the embedded SQLite file and dev secret live

	DatabaseURL string // empty: embedded SQLite at DataDir/tollgate.db
	Migrate     bool
	RedisURL    string // empty: embedded miniredis (development only)
	// RedisKeyPrefix starts every key Tollgate writes to Redis.
	RedisKeyPrefix string

	JWTSecret     string // HS256; generated and kept in DataDir in dev when empty
	JWTPublicKeys string // optional PEM file of EdDSA/RS256 public keys
	// JWTAudience and JWTIssuer, when set, are the aud every token must
	// name and the iss it must carry (JWT_AUDIENCE, JWT_ISSUER).
	JWTAudience string
	JWTIssuer   string
	// JWTAuthorizedParty, when set, is the azp every token signed with
	// JWTPublicKeys must carry (JWT_AUTHORIZED_PARTY).
	JWTAuthorizedParty string
	PlansFile          string

	StripeSecretKey     string
	StripeWebhookSecret string
	StripeAPIBase       string

	CORSOrigins []string
	Playground  bool
	// BillingPage serves the customer billing page at GET /billing.
	BillingPage bool

	RequestTimeout time.Duration
	LogLevel       string

	// APIRatePerCredential and APIRatePerAddress are the work per second
	// (root fields, aliases included) Tollgate's own API takes from one
	// credential, or from one client address without credentials; 0 is no
	// limit. A plan's rate limit is another matter (usageGate, consumeUsage).
	APIRatePerCredential int
	// APIRatePerOrganization is the same for all of one organisation's
	// credentials together.
	APIRatePerOrganization int
	APIRatePerAddress      int
	// StripeCallsPerOrganization is how many fields that call Stripe
	// (createCheckoutSession, upcomingInvoice, …) one organisation may run
	// a second, all its credentials together, so that no tenant can spend
	// the Stripe account's rate limit every tenant shares; 0 is no limit.
	StripeCallsPerOrganization int

	// CheckoutSessionsRetentionDays is how long a Checkout session's row is
	// kept once it has expired or completed; RevokedAPIKeysRetentionDays
	// how long a revoked API key's row is kept once revoked.
	CheckoutSessionsRetentionDays int
	RevokedAPIKeysRetentionDays   int

	// UsageEventsRetentionMonths is how many whole months of raw usage
	// events are kept (USAGE_EVENTS_RETENTION, e.g. 13mo). Rollups, which
	// every usage read uses, are kept forever.
	UsageEventsRetentionMonths int

	// UsageGateLease is how long a replica may answer usageGate from its
	// own memory under a lease on the counter (USAGE_GATE_LEASE); 0 turns
	// leases off, so every gate reads Redis.
	UsageGateLease time.Duration

	// UsageEndpointsPerMeter caps the distinct endpoint names the
	// per-endpoint report keeps for one meter in one period
	// (USAGE_ENDPOINTS_PER_METER); names past it are counted under
	// "(other)", so a client cannot grow the report without bound.
	UsageEndpointsPerMeter int

	// WebhookAllowedNetworks are private networks outbound webhooks may be
	// delivered into in production (WEBHOOK_ALLOWED_NETWORKS), for hosts
	// whose receivers live in their own network. Loopback, link-local and
	// cloud metadata addresses stay refused whatever it says.
	WebhookAllowedNetworks []netip.Prefix

	// MetricsToken, when set, is the bearer token GET /metrics asks for
	// (METRICS_TOKEN); unset, /metrics is open.
	MetricsToken string
}

// minMetricsTokenLength is METRICS_TOKEN's shortest: 16 bytes of a
// base64 or hex secret is 96 bits or more.
const minMetricsTokenLength = 16

// metricsToken is the form a bearer token may take in an Authorization
// header (RFC 6750's b64token).
var metricsToken = regexp.MustCompile(`^[A-Za-z0-9._~+/-]+=*$`)

// DefaultUsageGateLease is USAGE_GATE_LEASE's default; maxUsageGateLease
// bounds how long another replica's write can wait for a holder that does
// not answer.
const (
	DefaultUsageGateLease = time.Second
	minUsageGateLease     = 50 * time.Millisecond
	maxUsageGateLease     = 10 * time.Second
)

// maxClaimValue bounds JWT_AUDIENCE and JWT_ISSUER.
const maxClaimValue = 1000

// DefaultUsageEndpointsPerMeter is USAGE_ENDPOINTS_PER_METER's default, and
// maxUsageEndpointsPerMeter its bound: a billing page pages through at most
// that many rows a meter.
const (
	DefaultUsageEndpointsPerMeter = 1000
	maxUsageEndpointsPerMeter     = 100000
)

// DefaultUsageEventsRetentionMonths is USAGE_EVENTS_RETENTION's default.
const DefaultUsageEventsRetentionMonths = 13

// maxRetentionMonths bounds USAGE_EVENTS_RETENTION at a century.
const maxRetentionMonths = 1200

// Defaults of the Stripe-call budget and of the retention of finished
// rows.
const (
	// DefaultStripeCallsPerOrganization lets the largest operation allowed
	// (graph.MaxStripeCalls Stripe-calling fields) pass on a full budget,
	// and keeps 25 organisations at full tilt within the Stripe account's
	// 100 calls a second in live mode.
	DefaultStripeCallsPerOrganization = 4
	// DefaultCheckoutSessionsRetentionDays keeps a finished Checkout
	// session a month: Stripe retries its webhook for three days, and a
	// support question about last week's checkout can still be answered.
	DefaultCheckoutSessionsRetentionDays = 30
	// DefaultRevokedAPIKeysRetentionDays keeps a revoked key's row (its
	// name, prefix, who revoked it and when) a quarter, for audits of the
	// keys an organisation had.
	DefaultRevokedAPIKeysRetentionDays = 90
	// minCheckoutRetentionDays outlasts Stripe's three days of webhook
	// retries after a session's last day open.
	minCheckoutRetentionDays = 7
	// maxRetentionDays is ten years.
	maxRetentionDays = 3650
)

// REQUEST_TIMEOUT's bounds: below a second a Stripe call or a busy database
// fails every request; past the HTTP server's 60-second write timeout the
// client has already been cut off.
const (
	minRequestTimeout = time.Second
	maxRequestTimeout = time.Minute
)

// minGOMEMLIMIT is the smallest soft memory limit taken: Tollgate's live heap
// is about 10 MiB under load (25 MiB with 1,000-event batches), and a limit
// near it would have the collector run without pause. maxGOGC keeps GOGC in
// the runtime's range.
const (
	minGOMEMLIMIT = 32 << 20
	maxGOGC       = 1<<31 - 1
)

// Error names the variable that is wrong.
type Error struct {
	Var, Problem string
}

func (e *Error) Error() string { return e.Var + ": " + e.Problem }

// Load reads the configuration through getenv (os.Getenv in production,
// a map in tests).
func Load(getenv func(string) string) (Config, error) {
	c := Config{
		Port:                8080,
		Env:                 Dev,
		DataDir:             ".",
		Migrate:             true,
		DatabaseURL:         strings.TrimSpace(getenv("DATABASE_URL")),
		RedisURL:            strings.TrimSpace(getenv("REDIS_URL")),
		RedisKeyPrefix:      redisconn.DefaultPrefix,
		JWTSecret:           getenv("JWT_SECRET"),
		JWTPublicKeys:       getenv("JWT_PUBLIC_KEYS_FILE"),
		JWTAudience:         getenv("JWT_AUDIENCE"),
		JWTIssuer:           getenv("JWT_ISSUER"),
		JWTAuthorizedParty:  getenv("JWT_AUTHORIZED_PARTY"),
		PlansFile:           getenv("PLANS_FILE"),
		StripeSecretKey:     getenv("STRIPE_SECRET_KEY"),
		StripeWebhookSecret: getenv("STRIPE_WEBHOOK_SECRET"),
		StripeAPIBase:       strings.TrimRight(getenv("STRIPE_API_BASE"), "/"),
		BillingPage:         true,
		RequestTimeout:      15 * time.Second,
		LogLevel:            "info",

		APIRatePerCredential:   1000,
		APIRatePerOrganization: 5000,
		APIRatePerAddress:      100,

		StripeCallsPerOrganization: DefaultStripeCallsPerOrganization,

		CheckoutSessionsRetentionDays: DefaultCheckoutSessionsRetentionDays,
		RevokedAPIKeysRetentionDays:   DefaultRevokedAPIKeysRetentionDays,

		UsageEventsRetentionMonths: DefaultUsageEventsRetentionMonths,
		UsageGateLease:             DefaultUsageGateLease,
		UsageEndpointsPerMeter:     DefaultUsageEndpointsPerMeter,
	}
	var errs []error
	bad := func(v, format string, args ...any) {
		errs = append(errs, &Error{Var: v, Problem: fmt.Sprintf(format, args...)})
	}

	if v := getenv("PORT"); v != "" {
		p, ok := wholeNumber(v)
		if !ok || p > 65535 {
			bad("PORT", "must be a port number from 0 to 65535, got %q", v)
		}
		c.Port = p
	}
	switch v := getenv("TOLLGATE_ENV"); strings.ToLower(v) {
	case "", "dev", "development":
		c.Env = Dev
	case "production", "prod":
		c.Env = Production
	default:
		bad("TOLLGATE_ENV", "must be dev (or development) or production (or prod), got %q", v)
	}
	if v := getenv("TOLLGATE_DATA_DIR"); v != "" {
		c.DataDir = v
	}
	if v := getenv("TOLLGATE_MIGRATE"); v != "" {
		b, ok := boolean(v)
		if !ok {
			bad("TOLLGATE_MIGRATE", "must be true, false, 1 or 0, got %q", v)
		}
		c.Migrate = b
	}
	if c.DatabaseURL != "" {
		u, err := url.Parse(c.DatabaseURL)
		switch {
		case err != nil:
			bad("DATABASE_URL", "is not a URL: %v", errors.Unwrap(err))
		case u.Scheme != "postgres" && u.Scheme != "postgresql":
			bad("DATABASE_URL", "must be a postgres:// URL, got scheme %q", u.Scheme)
		case u.Host == "":
			bad("DATABASE_URL", "has no host")
		}
	}
	if c.RedisURL != "" {
		u, err := url.Parse(c.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			bad("REDIS_URL", "must be a redis:// or rediss:// URL with a host")
		} else if err := redisconn.CheckURL(c.RedisURL); err != nil {
			bad("REDIS_URL", "%v", err)
		}
	}
	if v := getenv("REDIS_KEY_PREFIX"); v != "" {
		if err := redisconn.CheckPrefix(v); err != nil {
			bad("REDIS_KEY_PREFIX", "%v", err)
		}
		c.RedisKeyPrefix = v
	}
	for _, claim := range [][2]string{{"JWT_AUDIENCE", c.JWTAudience}, {"JWT_ISSUER", c.JWTIssuer}, {"JWT_AUTHORIZED_PARTY", c.JWTAuthorizedParty}} {
		name, v := claim[0], claim[1]
		if v != "" && (len(v) > maxClaimValue || strings.TrimSpace(v) != v || !usertext.Printable(v)) {
			bad(name, "must be at most %d bytes of text without control characters or surrounding spaces, like https://idp.example/, got %q", maxClaimValue, v)
		}
	}
	if c.JWTAuthorizedParty != "" && c.JWTPublicKeys == "" {
		// Read only of an identity provider's tokens: set alone it would
		// look like protection and check nothing.
		bad("JWT_AUTHORIZED_PARTY", "applies only to tokens signed with JWT_PUBLIC_KEYS_FILE's keys; set that too, or leave this unset")
	}
	if c.Env == Production {
		// An identity provider's keys sign tokens for every application
		// it serves; without an audience, a token it minted for another
		// of them that happens to carry org and scope would work here.
		if c.JWTPublicKeys != "" && c.JWTAudience == "" {
			bad("JWT_AUDIENCE", "is required when TOLLGATE_ENV=production and JWT_PUBLIC_KEYS_FILE is set (the aud your identity provider puts in tokens for Tollgate)")
		}
		switch {
		case c.JWTSecret == "" && c.JWTPublicKeys == "":
			bad("JWT_SECRET", "is required when TOLLGATE_ENV=production")
		case c.JWTSecret != "" && len(c.JWTSecret) < 32:
			bad("JWT_SECRET", "must be at least 32 bytes, got %d", len(c.JWTSecret))
		}
		if c.DatabaseURL == "" {
			bad("DATABASE_URL", "is required when TOLLGATE_ENV=production (SQLite is for development)")
		}
		if c.RedisURL == "" {
			// Each replica would get a private embedded Redis: rate limits,
			// replay refusal and revocation sharing would silently stop
			// holding across replicas.
			bad("REDIS_URL", "is required when TOLLGATE_ENV=production (the embedded Redis is for development)")
		}
	}
	if c.StripeAPIBase != "" {
		if u, err := url.Parse(c.StripeAPIBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("STRIPE_API_BASE", "must be an http(s) URL, got %q", c.StripeAPIBase)
		}
	}
	if c.StripeSecretKey != "" && !strings.HasPrefix(c.StripeSecretKey, "sk_") && !strings.HasPrefix(c.StripeSecretKey, "rk_") {
		bad("STRIPE_SECRET_KEY", "must start with sk_ or rk_")
	}
	if c.StripeWebhookSecret != "" && !strings.HasPrefix(c.StripeWebhookSecret, "whsec_") {
		bad("STRIPE_WEBHOOK_SECRET", "must start with whsec_")
	}
	if v := getenv("CORS_ORIGINS"); v != "" {
		for _, o := range strings.Split(v, ",") {
			o = strings.TrimSpace(o)
			if o == "" {
				continue
			}
			if o != "*" && !isOrigin(o) {
				bad("CORS_ORIGINS", "%q is not an origin like https://app.example.com (scheme, host and port only)", o)
			}
			c.CORSOrigins = append(c.CORSOrigins, o)
		}
	}
	c.Playground = c.Env == Dev
	if v := getenv("PLAYGROUND"); v != "" {
		b, ok := boolean(v)
		if !ok {
			bad("PLAYGROUND", "must be true, false, 1 or 0, got %q", v)
		}
		c.Playground = b
	}
	if v := getenv("BILLING_PAGE"); v != "" {
		b, ok := boolean(v)
		if !ok {
			bad("BILLING_PAGE", "must be true, false, 1 or 0, got %q", v)
		}
		c.BillingPage = b
	}
	if v := getenv("REQUEST_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < minRequestTimeout || d > maxRequestTimeout {
			bad("REQUEST_TIMEOUT", "must be a duration from %s to %s, like 15s, got %q", minRequestTimeout, maxRequestTimeout, v)
		}
		c.RequestTimeout = d
	}
	if v := getenv("LOG_LEVEL"); v != "" {
		switch strings.ToLower(v) {
		case "debug", "info", "warn", "error":
			c.LogLevel = strings.ToLower(v)
		default:
			bad("LOG_LEVEL", "must be debug, info, warn or error, got %q", v)
		}
	}
	for v, dst := range map[string]*int{
		"API_RATE_LIMIT_PER_CREDENTIAL":   &c.APIRatePerCredential,
		"API_RATE_LIMIT_PER_ORGANIZATION": &c.APIRatePerOrganization,
		"API_RATE_LIMIT_PER_ADDRESS":      &c.APIRatePerAddress,
	} {
		if s := getenv(v); s != "" {
			n, ok := wholeNumber(s)
			if !ok {
				bad(v, "must be a whole number of root fields a second (0 for no limit), got %q", s)
			}
			*dst = n
		}
	}
	if v := getenv("STRIPE_CALLS_PER_ORGANIZATION"); v != "" {
		n, ok := wholeNumber(v)
		if !ok {
			bad("STRIPE_CALLS_PER_ORGANIZATION", "must be a whole number of Stripe-calling fields a second (0 for no limit), got %q", v)
		}
		c.StripeCallsPerOrganization = n
	}
	for _, r := range []struct {
		v       string
		dst     *int
		minDays int
	}{
		// A completed session's webhook may be retried for three days;
		// its record places it.
		{"CHECKOUT_SESSIONS_RETENTION", &c.CheckoutSessionsRetentionDays, minCheckoutRetentionDays},
		{"REVOKED_API_KEYS_RETENTION", &c.RevokedAPIKeysRetentionDays, 1},
	} {
		if s := getenv(r.v); s != "" {
			n, ok := wholeNumber(strings.TrimSuffix(s, "d"))
			if !ok || !strings.HasSuffix(s, "d") || s[0] == '0' || n < r.minDays || n > maxRetentionDays {
				bad(r.v, "must be a number of whole days from %dd to %dd, like 30d, got %q", r.minDays, maxRetentionDays, s)
			}
			*r.dst = n
		}
	}
	if v := getenv("USAGE_EVENTS_RETENTION"); v != "" {
		n, ok := wholeNumber(strings.TrimSuffix(v, "mo"))
		if !ok || !strings.HasSuffix(v, "mo") || v[0] == '0' || n < 1 || n > maxRetentionMonths {
			bad("USAGE_EVENTS_RETENTION", "must be a number of whole months from 1mo to %dmo, like 13mo, got %q", maxRetentionMonths, v)
		}
		c.UsageEventsRetentionMonths = n
	}
	if v := getenv("USAGE_GATE_LEASE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || (d != 0 && (d < minUsageGateLease || d > maxUsageGateLease)) {
			bad("USAGE_GATE_LEASE", "must be 0 (off) or a duration from %s to %s, like 1s, got %q", minUsageGateLease, maxUsageGateLease, v)
		}
		c.UsageGateLease = d
	}
	if v := getenv("USAGE_ENDPOINTS_PER_METER"); v != "" {
		n, ok := wholeNumber(v)
		if !ok || n < 1 || n > maxUsageEndpointsPerMeter {
			bad("USAGE_ENDPOINTS_PER_METER", "must be a whole number of endpoint names from 1 to %d, like 1000, got %q", maxUsageEndpointsPerMeter, v)
		}
		c.UsageEndpointsPerMeter = n
	}
	if v := getenv("WEBHOOK_ALLOWED_NETWORKS"); v != "" {
		for _, n := range strings.Split(v, ",") {
			n = strings.TrimSpace(n)
			if n == "" {
				continue
			}
			p, problem := allowedNetwork(n)
			if problem != "" {
				bad("WEBHOOK_ALLOWED_NETWORKS", "%q %s", n, problem)
				continue
			}
			c.WebhookAllowedNetworks = append(c.WebhookAllowedNetworks, p)
		}
	}
	if v := getenv("METRICS_TOKEN"); v != "" {
		if len(v) < minMetricsTokenLength || !metricsToken.MatchString(v) {
			bad("METRICS_TOKEN", "must be at least %d characters of letters, digits and -._~+/ (a bearer token, e.g. `openssl rand -hex 32`), got %d characters", minMetricsTokenLength, len(v))
		}
		c.MetricsToken = v
	}
	// The Go runtime reads these itself, before Tollgate runs, and takes an
	// unparsable GOGC silently as 100 (which also turns off Tollgate's
	// tuning, see app.TuneGC); a GOMEMLIMIT it cannot parse stops it with a
	// stack trace before main, so this check only meets the forms it took.
	if v := getenv("GOGC"); v != "" && v != "off" {
		if n, ok := wholeNumber(v); !ok || n < 1 || n > maxGOGC {
			bad("GOGC", "must be off or a whole percentage from 1 to %d, got %q", maxGOGC, v)
		}
	}
	if v := getenv("GOMEMLIMIT"); v != "" && v != "off" {
		if n, ok := byteCount(v); !ok || n < minGOMEMLIMIT {
			bad("GOMEMLIMIT", "must be off or a size of at least %dMiB like 160MiB (units B, KiB, MiB, GiB, TiB), got %q", minGOMEMLIMIT>>20, v)
		}
	}
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	return c, nil
}

// StripeEnabled reports whether outbound Stripe calls can be made.
func (c Config) StripeEnabled() bool { return c.StripeSecretKey != "" }

// boolean reads a boolean variable: true or 1, false or 0, in any case.
// Every enumerated variable ignores case.
func boolean(s string) (b, ok bool) {
	switch strings.ToLower(s) {
	case "true", "1":
		return true, true
	case "false", "0":
		return false, true
	}
	return false, false
}

// wholeNumber reads s as a whole number written in ASCII digits only: no
// sign, no spaces, none of strconv's other forms.
func wholeNumber(s string) (int, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, false
		}
		n = n*10 + int(r-'0')
	}
	return n, true
}

// byteCount reads a size the way the Go runtime reads GOMEMLIMIT: digits and
// an optional B, KiB, MiB, GiB or TiB.
func byteCount(s string) (int64, bool) {
	unit := int64(1)
	for i, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if strings.HasSuffix(s, u) {
			s, unit = strings.TrimSuffix(s, u), int64(1)<<(10*(i+1))
			break
		}
	}
	if unit == 1 {
		s = strings.TrimSuffix(s, "B")
	}
	n, ok := wholeNumber(s)
	if !ok || int64(n) > (1<<62)/unit {
		return 0, false
	}
	return int64(n) * unit, true
}

// allowedNetwork reads one WEBHOOK_ALLOWED_NETWORKS entry, or says what is
// wrong with it. An entry is a network in CIDR form, written as its first
// address: 10.1.2.3/8 would leave which network was meant to a guess.
// Addresses are compared unmapped, so an IPv4 network written as IPv6
// (::ffff:10.0.0.0/104) would never match and is refused.
func allowedNetwork(s string) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		return p, "is not a network in CIDR form like 10.20.0.0/16 or fd12:3456::/48 (one address: 10.20.0.5/32)"
	case p.Addr().Is4In6():
		return p, "is an IPv4-mapped IPv6 network: write the IPv4 network, like 10.0.0.0/8"
	case p != p.Masked():
		return p, fmt.Sprintf("has bits set past its prefix length: write the network as %s", p.Masked())
	}
	return p, ""
}

// isOrigin reports whether o is a browser origin, scheme://host[:port] and
// nothing else: CORS compares it with the Origin header byte for byte, and
// the billing page copies it into its CSP frame-ancestors, so a path, query,
// fragment or user would never match and would widen or break the CSP.
func isOrigin(o string) bool {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || strings.HasSuffix(o, "#") || u.Opaque != "" {
		return false
	}
	if p := u.Port(); p != "" {
		if n, ok := wholeNumber(p); !ok || n < 1 || n > 65535 {
			return false
		}
	}
	return u.Scheme+"://"+u.Host == o
}
