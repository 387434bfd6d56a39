package graph_test

import (
	"encoding/base64"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"gorm.io/gorm"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/auth"
)

const subscriptionQuery = `{ subscription { plan { id } status } }`

func signed(t *testing.T, secret string, c auth.Claims) string {
	t.Helper()
	tok, err := auth.Mint([]byte(secret), c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// mapToken signs arbitrary claims with the test secret, for claims
// auth.Claims cannot express (a date as a string).
func mapToken(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(apptest.Secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func claims(org, scope string, exp time.Time) auth.Claims {
	c := auth.Claims{Org: org, Scope: scope}
	c.Subject = "user-1"
	c.ExpiresAt = jwt.NewNumericDate(exp)
	return c
}

// TestAuthMatrix: every way of presenting bad or insufficient credentials is
// refused with the right code, and no data leaks.
func TestAuthMatrix(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	now := h.Clock.Now()
	good := claims("acme", "billing:read billing:write", now.Add(time.Hour))

	// alg "none": a token anyone can forge.
	noneTok := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"org":"acme","scope":"billing:read","exp":`+
			strconv.FormatInt(now.Add(time.Hour).Unix(), 10)+`}`)) + "."
	// HS256 token whose payload was swapped after signing.
	valid := signed(t, apptest.Secret, good)
	parts := strings.Split(valid, ".")
	other := signed(t, apptest.Secret, claims("victim", "billing:read", now.Add(time.Hour)))
	tampered := parts[0] + "." + strings.Split(other, ".")[1] + "." + parts[2]

	cases := []struct {
		name    string
		headers map[string]string
		code    string
		reason  string
	}{
		{"no credentials", nil, "UNAUTHENTICATED", auth.ReasonMissing},
		{"blank Authorization", map[string]string{"Authorization": "  "}, "UNAUTHENTICATED", auth.ReasonMissing},
		{"expired token", map[string]string{"Authorization": "Bearer " + signed(t, apptest.Secret, claims("acme", "billing:read", now.Add(-time.Hour)))}, "UNAUTHENTICATED", auth.ReasonExpired},
		{"token signed with another secret", map[string]string{"Authorization": "Bearer " + signed(t, "some-other-secret-0123456789abcdefgh", good)}, "UNAUTHENTICATED", auth.ReasonBadSignature},
		{"payload swapped after signing", map[string]string{"Authorization": "Bearer " + tampered}, "UNAUTHENTICATED", auth.ReasonBadSignature},
		{"alg none", map[string]string{"Authorization": "Bearer " + noneTok}, "UNAUTHENTICATED", ""},
		{"token without exp", map[string]string{"Authorization": "Bearer " + signed(t, apptest.Secret, auth.Claims{Org: "acme", Scope: "billing:read"})}, "UNAUTHENTICATED", auth.ReasonBadClaims},
		{"token without org", map[string]string{"Authorization": "Bearer " + signed(t, apptest.Secret, claims("", "billing:read", now.Add(time.Hour)))}, "UNAUTHENTICATED", auth.ReasonBadClaims},
		{"token without sub", map[string]string{"Authorization": "Bearer " + mapToken(t, jwt.MapClaims{"org": "acme", "scope": "billing:read", "exp": now.Add(time.Hour).Unix()})}, "UNAUTHENTICATED", auth.ReasonBadClaims},
		{"token with nbf past int64 seconds", map[string]string{"Authorization": "Bearer " + mapToken(t, jwt.MapClaims{"org": "acme", "sub": "user-1", "scope": "billing:read", "exp": now.Add(time.Hour).Unix(), "nbf": 1e20})}, "UNAUTHENTICATED", auth.ReasonBadClaims},
		{"token with exp past int64 seconds", map[string]string{"Authorization": "Bearer " + mapToken(t, jwt.MapClaims{"org": "acme", "sub": "user-1", "scope": "billing:read", "exp": int64(9223372036854775807)})}, "UNAUTHENTICATED", auth.ReasonBadClaims},
		{"token not valid yet", map[string]string{"Authorization": "Bearer " + mapToken(t, jwt.MapClaims{"org": "acme", "scope": "billing:read", "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(time.Hour / 2).Unix()})}, "UNAUTHENTICATED", auth.ReasonBadClaims},
		{"token with an invalid email claim", map[string]string{"Authorization": "Bearer " + mapToken(t, jwt.MapClaims{"org": "acme", "scope": "billing:read", "exp": now.Add(time.Hour).Unix(), "email": "not-an-email"})}, "UNAUTHENTICATED", auth.ReasonBadClaims},
		{"garbage bearer", map[string]string{"Authorization": "Bearer not.a.jwt"}, "UNAUTHENTICATED", auth.ReasonMalformed},
		{"basic auth scheme", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, "UNAUTHENTICATED", auth.ReasonMalformed},
		{"unknown api key", map[string]string{"X-API-Key": "tg_test_doesnotexist"}, "UNAUTHENTICATED", auth.ReasonUnknownKey},
		{"token lacking billing:read", map[string]string{"Authorization": "Bearer " + signed(t, apptest.Secret, claims("acme", "usage:write", now.Add(time.Hour)))}, "FORBIDDEN", ""},
	}
	// exp, nbf and iat are JSON numbers (RFC 7519), never strings that
	// hold one, whatever the case of the claim's name.
	future := strconv.FormatInt(now.Add(time.Hour).Unix(), 10)
	past := strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)
	for name, c := range map[string]jwt.MapClaims{
		"exp as a string":           {"org": "acme", "scope": "billing:read", "exp": future},
		"nbf as a string":           {"org": "acme", "scope": "billing:read", "exp": now.Add(time.Hour).Unix(), "nbf": past},
		"iat as a string":           {"org": "acme", "scope": "billing:read", "exp": now.Add(time.Hour).Unix(), "iat": past},
		"EXP in capitals, a string": {"org": "acme", "scope": "billing:read", "EXP": future},
		"exp as null":               {"org": "acme", "scope": "billing:read", "exp": nil},
		"exp as an object":          {"org": "acme", "scope": "billing:read", "exp": map[string]any{"n": 1}},
	} {
		cases = append(cases, struct {
			name    string
			headers map[string]string
			code    string
			reason  string
		}{name, map[string]string{"Authorization": "Bearer " + mapToken(t, c)}, "UNAUTHENTICATED", auth.ReasonBadClaims})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.Do(tc.headers, subscriptionQuery, nil)
			if r.Code() != tc.code {
				t.Fatalf("code = %q, want %q (errors %+v)", r.Code(), tc.code, r.Errors)
			}
			if tc.reason != "" && r.Errors[0].Extensions["reason"] != tc.reason {
				t.Fatalf("reason = %v, want %s", r.Errors[0].Extensions["reason"], tc.reason)
			}
			if d := string(r.Data); d != "" && d != "null" {
				t.Fatalf("data leaked with a refused request: %s", d)
			}
			if tc.code == "UNAUTHENTICATED" && r.Errors[0].Extensions["reason"] == nil {
				t.Fatalf("UNAUTHENTICATED without a reason: %+v", r.Errors)
			}
			if strings.Contains(r.Errors[0].Message, "token has invalid claims") || strings.Contains(r.Errors[0].Message, "NumericDate") {
				t.Fatalf("the JWT library's text reached the client: %q", r.Errors[0].Message)
			}
		})
	}
	t.Run("numeric exp, nbf and iat are still accepted", func(t *testing.T) {
		tok := mapToken(t, jwt.MapClaims{"org": "acme", "sub": "user-1", "scope": "billing:read", "exp": now.Add(time.Hour).Unix(),
			"nbf": now.Add(-time.Minute).Unix(), "iat": float64(now.Add(-time.Minute).Unix()) + 0.5})
		if r := h.Do(map[string]string{"Authorization": "Bearer " + tok}, subscriptionQuery, nil); len(r.Errors) > 0 {
			t.Fatalf("a token with numeric dates was refused: %+v", r.Errors)
		}
	})

	t.Run("valid token through the session cookie", func(t *testing.T) {
		r := h.Do(map[string]string{"Cookie": auth.SessionCookie + "=" + valid}, subscriptionQuery, nil)
		var out struct {
			Subscription struct{ Plan struct{ ID string } }
		}
		r.Decode(t, &out)
		if out.Subscription.Plan.ID != "free" {
			t.Fatalf("plan = %q, want free", out.Subscription.Plan.ID)
		}
	})
	t.Run("mutation needs billing:write", func(t *testing.T) {
		readOnly := signed(t, apptest.Secret, claims("acme", "billing:read", now.Add(time.Hour)))
		r := h.Do(map[string]string{"Authorization": "Bearer " + readOnly},
			`mutation { createApiKey(input: {name: "ci", scopes: [BILLING_READ]}) { secret } }`, nil)
		if r.Code() != "FORBIDDEN" {
			t.Fatalf("code = %q, want FORBIDDEN", r.Code())
		}
	})
	// RFC 6749 §3.3: scopes are separated by spaces (U+0020) only. A scope
	// holding a tab, line break or another Unicode space is one scope
	// Tollgate does not know, not two, as the issuer that signed it read it.
	t.Run("scopes are separated by spaces only", func(t *testing.T) {
		const create = `mutation { createApiKey(input: {name: "ci", scopes: [BILLING_READ]}) { secret } }`
		for _, scope := range []string{"billing:read\tbilling:write", "billing:read\nbilling:write", "billing:read\u00a0billing:write", "billing:read\u2003billing:write"} {
			tok := signed(t, apptest.Secret, claims("acme", scope, now.Add(time.Hour)))
			if r := h.Do(map[string]string{"Authorization": "Bearer " + tok}, create, nil); r.Code() != "FORBIDDEN" {
				t.Errorf("scope %q: createApiKey answered %s, want FORBIDDEN", scope, r.Body)
			}
		}
		tok := signed(t, apptest.Secret, claims("acme", " billing:read  billing:write ", now.Add(time.Hour)))
		if r := h.Do(map[string]string{"Authorization": "Bearer " + tok}, create, nil); len(r.Errors) > 0 {
			t.Errorf("scope with extra spaces: createApiKey answered %s", r.Body)
		}
	})
}

// TestOrganisationsAreIsolated: each token sees its own organisation, created
// on first use, and never another's.
func TestOrganisationsAreIsolated(t *testing.T) {
	apptest.EachDialect(t, apptest.Options{}, func(t *testing.T, h *apptest.Harness) {
		q := `{ organization { id externalId name } apiKeys { id } }`
		var a, b struct {
			Organization struct{ ID, ExternalID, Name string }
			APIKeys      []struct{ ID string }
		}
		h.Query("org-a", `mutation { createApiKey(input: {name: "a key", scopes: [BILLING_READ]}) { secret } }`, nil)
		h.Query("org-a", q, nil).Decode(t, &a)
		h.Query("org-b", q, nil).Decode(t, &b)
		if a.Organization.ExternalID != "org-a" || b.Organization.ExternalID != "org-b" {
			t.Fatalf("external ids = %q, %q", a.Organization.ExternalID, b.Organization.ExternalID)
		}
		if a.Organization.ID == b.Organization.ID {
			t.Fatal("two organisations share an id")
		}
		if len(a.APIKeys) != 1 || len(b.APIKeys) != 0 {
			t.Fatalf("keys: org-a sees %d, org-b sees %d; want 1 and 0", len(a.APIKeys), len(b.APIKeys))
		}
		var again struct{ Organization struct{ ID string } }
		h.Query("org-a", q, nil).Decode(t, &again)
		if again.Organization.ID != a.Organization.ID {
			t.Fatal("the same org claim resolved to a new organisation")
		}
	})
}

// TestCredentialCheckOutageIsRetryable: when the database fails while an API
// key or a new organisation is being looked up, the client is told to retry
// (UNAVAILABLE, retryable), as for any other outage, not that its
// credentials are bad; and a malformed key id never reaches the database.
func TestCredentialCheckOutageIsRetryable(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	var created struct {
		CreateApiKey struct {
			Secret string
			ApiKey struct{ ID string }
		}
	}
	h.Query("acme", `mutation { createApiKey(input: {name: "backend", scopes: [BILLING_READ]}) { secret apiKey { id } } }`, nil).Decode(t, &created)

	// An invalid key id is refused as an invalid key: on Postgres it used to
	// fail in the database and read as an outage.
	r := h.Do(map[string]string{"Authorization": "\xff\xfe", "X-Request-Signature": "x"}, subscriptionQuery, nil)
	if r.Code() != "UNAUTHENTICATED" || r.Errors[0].Extensions["reason"] != auth.ReasonUnknownKey {
		t.Fatalf("invalid key id: %+v, want UNAUTHENTICATED %s", r.Errors, auth.ReasonUnknownKey)
	}

	// From here on every read of api_keys and organizations fails as a
	// dropped connection does.
	down := func(tx *gorm.DB) {
		if tx.Statement.Table == "api_keys" || tx.Statement.Table == "organizations" {
			tx.AddError(&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET})
		}
	}
	db := h.App.DB.DB
	if err := db.Callback().Query().Before("gorm:query").Register("test:db_down", down); err != nil {
		t.Fatal(err)
	}
	if err := db.Callback().Create().Before("gorm:create").Register("test:db_down", down); err != nil {
		t.Fatal(err)
	}
	for name, headers := range map[string]map[string]string{
		"api key":                   {"X-API-Key": created.CreateApiKey.Secret},
		"token for an unseen org":   {"Authorization": "Bearer " + h.Token("never-seen-before")},
		"api key as a bearer token": {"Authorization": "Bearer " + created.CreateApiKey.Secret},
	} {
		t.Run(name, func(t *testing.T) {
			r := h.Do(headers, subscriptionQuery, nil)
			if r.Code() != "UNAVAILABLE" || r.Errors[0].Extensions["retryable"] != true || r.Errors[0].Extensions["requestId"] == "" {
				t.Fatalf("errors = %+v, want UNAVAILABLE with retryable and requestId", r.Errors)
			}
			if strings.Contains(r.Errors[0].Message, "reset") {
				t.Fatalf("database error text reached the client: %q", r.Errors[0].Message)
			}
		})
	}
}

// TestOneCredentialPerRequest: a request naming an API key and a bearer
// token is refused, whichever organisations they belong to, rather than
// acting as one of them; the session cookie, which a browser sends by
// itself, is used only when neither header is.
func TestOneCredentialPerRequest(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	var created struct {
		CreateApiKey struct{ Secret string }
	}
	h.Query("acme", `mutation { createApiKey(input: {name: "backend", scopes: [BILLING_READ]}) { secret } }`, nil).Decode(t, &created)
	h.Query("other", `mutation { createApiKey(input: {name: "backend", scopes: [BILLING_READ]}) { secret } }`, nil)
	key := created.CreateApiKey.Secret
	orgQuery := `{ organization { externalId } }`

	for name, headers := range map[string]map[string]string{
		"API key and another organisation's token":  {"X-API-Key": key, "Authorization": "Bearer " + h.Token("other")},
		"API key and its own organisation's token":  {"X-API-Key": key, "Authorization": "Bearer " + h.Token("acme")},
		"API key twice, in both headers":            {"X-API-Key": key, "Authorization": "Bearer " + key},
		"API key and the bare key in Authorization": {"X-API-Key": key, "Authorization": key},
		"API key and a malformed Authorization":     {"X-API-Key": key, "Authorization": "Basic dXNlcjpwYXNz"},
	} {
		t.Run(name, func(t *testing.T) {
			r := h.Do(headers, orgQuery, nil)
			if r.Code() != "UNAUTHENTICATED" || r.Errors[0].Extensions["reason"] != auth.ReasonConflicting {
				t.Fatalf("errors = %+v, want UNAUTHENTICATED %s", r.Errors, auth.ReasonConflicting)
			}
			if d := string(r.Data); d != "" && d != "null" {
				t.Fatalf("answered as some organisation: %s", d)
			}
		})
	}
	for name, tc := range map[string]struct {
		headers map[string]string
		org     string
	}{
		"the API key alone":                      {map[string]string{"X-API-Key": key}, "acme"},
		"the token alone":                        {map[string]string{"Authorization": "Bearer " + h.Token("other")}, "other"},
		"a header beside another org's cookie":   {map[string]string{"X-API-Key": key, "Cookie": auth.SessionCookie + "=" + h.Token("other")}, "acme"},
		"a blank X-API-Key beside a valid token": {map[string]string{"X-API-Key": " ", "Authorization": "Bearer " + h.Token("other")}, "other"},
	} {
		t.Run(name, func(t *testing.T) {
			var out struct{ Organization struct{ ExternalID string } }
			h.Do(tc.headers, orgQuery, nil).Decode(t, &out)
			if out.Organization.ExternalID != tc.org {
				t.Fatalf("acted as %q, want %q", out.Organization.ExternalID, tc.org)
			}
		})
	}
}
