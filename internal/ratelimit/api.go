package ratelimit

import (
	"context"
	"encoding/json"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/auth"
)

// APILimits are the work per second Tollgate's own API accepts. A unit of
// work is one root field of a GraphQL operation, aliases included: a
// document of 700 aliased recordUsage fields costs 700. 0 turns a limit off.
type APILimits struct {
	// PerCredential applies to each API key, and to each JWT subject of an
	// organisation.
	PerCredential int
	// PerOrganization applies to all of an organisation's credentials
	// together, so an organisation's hundred API keys do not get a hundred
	// times one key's budget.
	PerOrganization int
	// PerAddress applies to requests without valid credentials, per client
	// address (the connection's, not X-Forwarded-For, which a client could
	// forge).
	PerAddress int
}

// DefaultAPILimits are generous: far above what a host's gate checks and
// usage recording need, low enough that one credential or address cannot
// occupy the server.
var DefaultAPILimits = APILimits{PerCredential: 1000, PerOrganization: 5000, PerAddress: 100}

// API protects Tollgate's own GraphQL endpoint. Its Middleware charges each
// request one unit before anything runs; WorkCharge, a gqlgen extension,
// charges the rest once the operation is parsed and its root fields are
// known. Over the limit the answer is HTTP 429 with Retry-After, whichever
// of the two refused it. This is separate from a plan's rate limit, which
// the usage service answers as data.
type API struct {
	l      *Limiter
	limits APILimits
}

// NewAPI returns the API's protection, counting in l.
func NewAPI(l *Limiter, limits APILimits) *API { return &API{l: l, limits: limits} }

// buckets names the budgets a request is charged to, and their rates: its
// credential's (or its address's) and, for a credential, its
// organisation's. A rate of 0 is a budget turned off.
func (a *API) buckets(r *http.Request, bs *[2]budget) {
	p, ok := auth.FromContext(r.Context())
	switch {
	case !ok:
		bs[0].key, bs[0].rate, bs[0].what = "api:addr:"+addrBucket(r.RemoteAddr), a.limits.PerAddress, "client address"
		return
	case p.APIKeyID != "":
		bs[0].key = "api:key:" + p.APIKeyID
	default:
		bs[0].key = "api:jwt:" + p.OrgID + ":" + p.Subject
	}
	bs[0].rate, bs[0].what = a.limits.PerCredential, "credential"
	if a.limits.PerOrganization > 0 {
		bs[1].key, bs[1].rate, bs[1].what = "api:org:"+p.OrgID, a.limits.PerOrganization, "organisation"
	}
}

// limited reports whether a request's budgets charge anything.
func (a *API) limited(r *http.Request) bool {
	if _, ok := auth.FromContext(r.Context()); ok {
		return a.limits.PerCredential > 0 || a.limits.PerOrganization > 0
	}
	return a.limits.PerAddress > 0
}

// addrBucket names the client an address budget belongs to. An IPv4
// address is its own; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the
// IPv4 one it maps, so a dual-stack listener does not give one client two
// budgets; an IPv6 address is its /64, whose low 64 bits any client picks
// freely (privacy addresses, a routed prefix), so one budget per address
// would be 2^64 budgets.
func addrBucket(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	return netip.PrefixFrom(ip, 64).Masked().String()
}

// The rate-limit headers, in the canonical form net/http sends them in.
var (
	headerLimit     = http.CanonicalHeaderKey("X-RateLimit-Limit")
	headerRemaining = http.CanonicalHeaderKey("X-RateLimit-Remaining")
	headerReset     = http.CanonicalHeaderKey("X-RateLimit-Reset")
	headerRetry     = http.CanonicalHeaderKey("Retry-After")
)

// setHeaders writes d, what the API's limit decided for one whole request,
// as X-RateLimit-Limit, -Remaining and -Reset, and Retry-After when
// refused. Remaining is the budget left after the request's whole charge,
// between 0 and the limit: on a 429 too, as GitHub's X-RateLimit-Remaining
// and the IETF draft's RateLimit-Remaining give the quota left, so a
// client refused for an operation of many root fields learns how many
// still pass. Reset is the whole seconds until the budget is full again,
// which at a rate of Limit a second with a burst of Limit is
// (Limit-Remaining)/Limit seconds, and never before Retry-After.
func setHeaders(h http.Header, d Decision) {
	if d.Limit <= 0 {
		return // unchecked: Redis did not answer
	}
	remaining := min(max(d.Remaining, 0), d.Limit)
	reset := (d.Limit - remaining + d.Limit - 1) / d.Limit // ceil: 0 or 1
	// Set in canonical form directly: Header.Set would canonicalise
	// "X-RateLimit-…" into a new string on every request. Clients read
	// header names without case.
	h[headerLimit] = []string{strconv.Itoa(d.Limit)}
	h[headerRemaining] = []string{strconv.Itoa(remaining)}
	if !d.Allowed {
		secs := retrySeconds(d.RetryAfter)
		reset = max(reset, secs)
		h[headerRetry] = []string{strconv.Itoa(secs)}
	}
	h[headerReset] = []string{strconv.Itoa(reset)}
}

type chargeKey struct{}

// charge is one request's budgets, which WorkCharge tops up: the
// credential's first, then its organisation's, each charged only when the
// one before it passed, so a credential over its own limit spends none of
// its organisation's budget (and none of the other credentials'); a
// request its organisation refuses gives its credential back what that
// charge took (Limiter.Return), so it spends none of the credential's.
type charge struct {
	l       *Limiter
	budgets [2]budget
	// refused is the decision of a further budget that refused the
	// operation (StripeCharge's), which the answer then describes.
	refused atomic.Pointer[Decision]
}

// budget is one budget a request is charged to.
type budget struct {
	key  string
	rate int // 0: off (or absent)
	// what names the budget's holder in a refusal: "credential", …
	what string
	// first is Middleware's decision on the request's first unit.
	first Decision
	// work is WorkCharge's decision on the rest, nil while it has charged
	// nothing; refused when it refused the request.
	work atomic.Pointer[workDecision]
}

// charged reports whether WorkCharge has charged any budget.
func (c *charge) charged() bool {
	return c.budgets[0].work.Load() != nil || c.budgets[1].work.Load() != nil || c.refused.Load() != nil
}

// verdict combines the budgets' decisions into the one the headers show: a
// refusing budget's, else the one with the least left (the one that will
// refuse first).
func (c *charge) verdict() Decision {
	if d := c.refused.Load(); d != nil {
		return *d
	}
	var out Decision
	found := false
	for i := range c.budgets {
		b := &c.budgets[i]
		if b.rate <= 0 {
			continue
		}
		d := b.verdict()
		switch {
		case !found, !d.Allowed && out.Allowed:
			out, found = d, true
		case d.Allowed == out.Allowed && d.Limit > 0 && (out.Limit == 0 || d.Remaining < out.Remaining):
			out = d
		}
	}
	return out
}

// workDecision is WorkCharge's charge of n units beyond the first.
type workDecision struct {
	Decision
	n int
}

// verdict combines Middleware's decision with WorkCharge's, if any.
func (c *budget) verdict() Decision {
	d := Decision{Allowed: true, Limit: c.first.Limit, Remaining: c.first.Remaining}
	w := c.work.Load()
	switch {
	case w == nil:
	case w.Limit == 0: // Redis failed meanwhile: only the first unit was counted
		d.Remaining -= w.n
	default:
		// The extra units were asked of Redis, not of a lease: Redis's
		// fresh count plus the tokens this replica held, and never more
		// than the first unit's count less what was charged since (a
		// refusal charged nothing).
		d.Allowed, d.Limit, d.RetryAfter = w.Allowed, w.Limit, w.RetryAfter
		d.Remaining = w.Remaining + c.first.Held
		if d.Limit == c.first.Limit {
			charged := 0
			if w.Allowed {
				charged = w.n
			}
			d.Remaining = min(d.Remaining, c.first.Remaining-charged)
		}
	}
	return d
}

// Middleware runs after authentication: it charges one unit to the
// request's credential (then its organisation) or address and refuses with
// 429 when none is left.
func (a *API) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.limited(r) {
			next.ServeHTTP(w, r)
			return
		}
		// One allocation for the writer and the charge it reports on.
		s := &statusOverride{ResponseWriter: w, c: charge{l: a.l}}
		a.buckets(r, &s.c.budgets)
		for i := range s.c.budgets {
			b := &s.c.budgets[i]
			if b.rate <= 0 {
				continue
			}
			// Each budget at these rates is usually leased (see Leases),
			// so the second costs no Redis round trip either.
			b.first = a.l.Allow(r.Context(), b.key, b.rate)
			if !b.first.Allowed {
				// The budgets charged before this one give their unit
				// back: a request its organisation refuses spends
				// nothing of its credential's (see Refunds).
				for j := range s.c.budgets[:i] {
					p := &s.c.budgets[j]
					a.l.Return(r.Context(), p.key, p.rate, p.first)
				}
				refuse(w, b.first)
				return
			}
		}
		// Set now, for a response that reaches the connection without
		// WriteHeader (a flush through Unwrap); statusOverride sets
		// them again once WorkCharge has charged the rest.
		setHeaders(w.Header(), s.c.verdict())
		ctx := context.WithValue(r.Context(), chargeKey{}, &s.c)
		next.ServeHTTP(s, r.WithContext(ctx))
	})
}

// statusOverride writes the headers for the request's whole charge, and
// turns the GraphQL error WorkCharge returned into a 429 with Retry-After:
// gqlgen would answer it 200.
type statusOverride struct {
	http.ResponseWriter
	c       charge
	written bool
}

func (s *statusOverride) WriteHeader(code int) {
	if !s.written {
		s.written = true
		if s.c.charged() {
			d := s.c.verdict()
			setHeaders(s.ResponseWriter.Header(), d)
			if !d.Allowed {
				code = http.StatusTooManyRequests
			}
		}
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusOverride) Write(b []byte) (int, error) {
	if !s.written {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusOverride) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// WorkCharge is the gqlgen extension that charges an operation's root
// fields beyond the first (which Middleware charged). Register it before the
// complexity limit, so an over-budget caller costs nothing more.
type WorkCharge struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = WorkCharge{}

// ExtensionName names the extension.
func (WorkCharge) ExtensionName() string { return "WorkCharge" }

// Validate accepts any schema.
func (WorkCharge) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext charges the operation before it runs.
func (WorkCharge) MutateOperationContext(ctx context.Context, op *graphql.OperationContext) *gqlerror.Error {
	c, ok := ctx.Value(chargeKey{}).(*charge)
	if !ok || op.Operation == nil {
		return nil
	}
	n := RootFields(op.Operation.SelectionSet)
	if n <= 1 {
		return nil
	}
	// A budget is b.rate units a second, the first unit included: an
	// operation of exactly b.rate root fields can pass on a full budget,
	// one more never can.
	for i := range c.budgets {
		if b := &c.budgets[i]; b.rate > 0 && n > b.rate {
			err := gqlerror.Errorf("the operation has %d root fields (aliases included); a%s may run at most %d a second, so send it in smaller requests", n, article(b.what), b.rate)
			err.Extensions = map[string]any{"code": "TOO_MUCH_WORK", "rootFields": n, "limit": b.rate}
			return err
		}
	}
	for i := range c.budgets {
		b := &c.budgets[i]
		if b.rate <= 0 {
			continue
		}
		d := c.l.AllowN(ctx, b.key, b.rate, n-1)
		b.work.Store(&workDecision{Decision: d, n: n - 1})
		if !d.Allowed {
			// The budgets charged before this one give back what this
			// charge took of them; each keeps the first unit, which paid
			// for a request that was received and parsed.
			for j := range c.budgets[:i] {
				p := &c.budgets[j]
				if w := p.work.Load(); w != nil && w.Allowed {
					c.l.ReturnN(ctx, p.key, p.rate, w.n, w.Decision)
					p.work.Store(&workDecision{Decision: Decision{Allowed: true, Limit: w.Limit, Remaining: w.Remaining + w.n}, n: 0})
				}
			}
			err := gqlerror.Errorf("rate limit exceeded: the operation's %d root fields are more than this %s has left this second", n, b.what)
			err.Extensions = map[string]any{"code": string(apperr.RateLimited), "retryAfterSeconds": retrySeconds(d.RetryAfter)}
			return err
		}
	}
	return nil
}

// article is what's " credential" or "n organisation" after "a".
func article(what string) string {
	if what != "" && strings.ContainsRune("aeiou", rune(what[0])) {
		return "n " + what
	}
	return " " + what
}

// RootFields is the work of an operation: its distinct root response keys
// (an alias is a key of its own; the same key twice runs once), following
// fragments, each fragment once, so the count costs time linear in the
// document.
func RootFields(set ast.SelectionSet) int {
	n := 0
	rootFields(set, func(string) { n++ })
	return n
}

// rootFields calls each with the field name of each distinct root response
// key (see RootFields).
func rootFields(set ast.SelectionSet, each func(name string)) {
	keys := map[string]struct{}{}
	seen := map[string]bool{}
	var walk func(ast.SelectionSet)
	walk = func(set ast.SelectionSet) {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				k := s.Alias
				if k == "" {
					k = s.Name
				}
				if _, dup := keys[k]; !dup {
					keys[k] = struct{}{}
					each(s.Name)
				}
			case *ast.InlineFragment:
				walk(s.SelectionSet)
			case *ast.FragmentSpread:
				if s.Definition == nil || seen[s.Name] {
					continue
				}
				seen[s.Name] = true
				walk(s.Definition.SelectionSet)
			}
		}
	}
	walk(set)
}

// retrySeconds is Retry-After in whole seconds, rounded up so a client that
// honours it is not refused again.
func retrySeconds(d time.Duration) int { return max(int(math.Ceil(d.Seconds())), 1) }

// refuse writes the 429 as a GraphQL error whose code is RATE_LIMITED.
func refuse(w http.ResponseWriter, d Decision) {
	secs := retrySeconds(d.RetryAfter)
	type extensions struct {
		Code              apperr.Code `json:"code"`
		RetryAfterSeconds int         `json:"retryAfterSeconds"`
	}
	type gqlError struct {
		Message    string     `json:"message"`
		Extensions extensions `json:"extensions"`
	}
	body, _ := json.Marshal(struct {
		Errors []gqlError `json:"errors"`
	}{[]gqlError{{"rate limit exceeded", extensions{apperr.RateLimited, secs}}}})
	w.Header().Set("Content-Type", "application/json")
	setHeaders(w.Header(), d)
	if d.Limit <= 0 {
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write(body)
}
