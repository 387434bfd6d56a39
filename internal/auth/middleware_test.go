package auth_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// levels records the level of every log line, so a test can say what an
// operator would have been paged for.
type levels struct {
	mu  sync.Mutex
	max slog.Level
	n   int
}

func (l *levels) Enabled(context.Context, slog.Level) bool { return true }
func (l *levels) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == 0 || r.Level > l.max {
		l.max = r.Level
	}
	l.n++
	return nil
}
func (l *levels) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *levels) WithGroup(string) slog.Handler      { return l }

// TestBadOrgClaimsAreABadTokenNotAnOutage: a validly signed token whose org,
// org_name or email cannot name a tenant is refused as TOKEN_CLAIMS_INVALID,
// not "try again", and never as another tenant; nothing is logged above
// debug, since it is the caller's mistake.
func TestBadOrgClaimsAreABadTokenNotAnOutage(t *testing.T) {
	secret := []byte("middleware-test-secret-0123456789abcdef")
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		clk := clock.NewFake(time.Now())
		v, err := auth.NewVerifier(secret, nil, auth.Binding{}, clk)
		if err != nil {
			t.Fatal(err)
		}
		o := orgs.NewService(db, clk)
		acme, err := o.Ensure(context.Background(), "acme", "Acme", "")
		if err != nil {
			t.Fatal(err)
		}
		logged := &levels{}
		a := &auth.Authenticator{Verifier: v, Orgs: o, Log: slog.New(logged)}
		request := func(c auth.Claims) (*auth.Principal, *auth.Failure) {
			c.ExpiresAt = jwt.NewNumericDate(clk.Now().Add(time.Hour))
			c.Scope = "billing:read"
			c.Subject = "user-1"
			tok, err := auth.Mint(secret, c)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("POST", "/graphql", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			return a.Authenticate(r)
		}

		cases := []struct {
			name   string
			claims auth.Claims
		}{
			{"blank org", auth.Claims{Org: "   "}},
			{"org over 255 bytes", auth.Claims{Org: strings.Repeat("a", 256)}},
			{"NUL in org", auth.Claims{Org: "ac\x00me"}},
			{"newline in org", auth.Claims{Org: "ac\nme"}},
			{"org padded with a space", auth.Claims{Org: "acme "}},
			{"org padded with a tab", auth.Claims{Org: "\tacme"}},
			{"NUL in org_name", auth.Claims{Org: "fresh-1", OrgName: "Fresh\x00"}},
			{"org_name over 200 characters", auth.Claims{Org: "fresh-2", OrgName: strings.Repeat("é", 201)}},
			{"NUL in email", auth.Claims{Org: "fresh-3", Email: "a\x00@example.com"}},
			// The email claim is held to createApiKey's contactEmail rule.
			{"email that is no address", auth.Claims{Org: "fresh-4", Email: "not-an-email"}},
			{"email with a display name", auth.Claims{Org: "fresh-5", Email: "Bob <bob@example.com>"}},
			{"email with a newline", auth.Claims{Org: "fresh-6", Email: "bob@example.com\n"}},
			{"email with a bidi override", auth.Claims{Org: "fresh-7", Email: "bob\u202e@example.com"}},
			{"email over 320 bytes", auth.Claims{Org: "fresh-8", Email: strings.Repeat("a", 309) + "@example.com"}},
			{"bidi override in org_name", auth.Claims{Org: "fresh-9", OrgName: "Acme\u202eInc"}},
			// Invisible characters would let "ac<ZWSP>me" pass for acme.
			{"zero-width space in org", auth.Claims{Org: "ac\u200Bme"}},
			{"byte-order mark before org", auth.Claims{Org: "\uFEFFacme"}},
			{"zero-width joiner after org", auth.Claims{Org: "acme\u200D"}},
			{"soft hyphen in org_name", auth.Claims{Org: "fresh-10", OrgName: "Ac\u00ADme"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				p, f := request(tc.claims)
				if p != nil {
					t.Fatalf("authenticated as organisation %s (acme is %s)", p.OrgID, acme)
				}
				if f == nil || f.Reason != auth.ReasonBadClaims || f.Err != nil {
					t.Fatalf("failure = %+v, want reason %s without a cause", f, auth.ReasonBadClaims)
				}
			})
		}
		if logged.n > 0 && logged.max > slog.LevelDebug {
			t.Fatalf("bad claims were logged at %v; want debug at most", logged.max)
		}

		// The longest allowed org is still a tenant, and the exact "acme"
		// still reaches acme.
		if p, f := request(auth.Claims{Org: strings.Repeat("a", 255)}); p == nil {
			t.Fatalf("a 255-byte org was refused: %+v", f)
		}
		if p, f := request(auth.Claims{Org: "fresh-10", Email: strings.Repeat("a", 308) + "@example.com"}); p == nil {
			t.Fatalf("a 320-byte email was refused: %+v", f)
		}
		if p, f := request(auth.Claims{Org: "acme"}); p == nil || p.OrgID != acme {
			t.Fatalf("org acme: principal %+v, failure %+v", p, f)
		}
	})
}

// TestARequestNamesOneCredential: a header sent twice, or two different
// session cookies, is refused as conflicting before any is looked at; no
// credential at all is CREDENTIALS_MISSING, not a silent absence.
func TestARequestNamesOneCredential(t *testing.T) {
	secret := []byte("middleware-test-secret-0123456789abcdef")
	clk := clock.NewFake(time.Now())
	v, err := auth.NewVerifier(secret, nil, auth.Binding{}, clk)
	if err != nil {
		t.Fatal(err)
	}
	a := &auth.Authenticator{Verifier: v}
	token := func(org string) string {
		c := auth.Claims{Org: org, Scope: "billing:read"}
		c.Subject = "user-1"
		c.ExpiresAt = jwt.NewNumericDate(clk.Now().Add(time.Hour))
		tok, err := auth.Mint(secret, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	cases := map[string]struct {
		build  func(r *http.Request)
		reason string
	}{
		"nothing": {func(*http.Request) {}, auth.ReasonMissing},
		"X-API-Key twice": {func(r *http.Request) {
			r.Header.Add("X-API-Key", "tg_test_one")
			r.Header.Add("X-API-Key", "tg_test_two")
		}, auth.ReasonConflicting},
		"Authorization twice": {func(r *http.Request) {
			r.Header.Add("Authorization", "Bearer "+token("acme"))
			r.Header.Add("Authorization", "Bearer "+token("victim"))
		}, auth.ReasonConflicting},
		"two session cookies": {func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: token("acme")})
			r.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: token("victim")})
		}, auth.ReasonConflicting},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/graphql", nil)
			tc.build(r)
			p, f := a.Authenticate(r)
			if p != nil || f == nil || f.Reason != tc.reason || f.Err != nil {
				t.Fatalf("principal %+v, failure %+v; want reason %s", p, f, tc.reason)
			}
		})
	}
}
