// Package auth answers "who is calling, for which organisation, allowed to
// do what": it verifies bearer JWTs and API keys, manages API keys, and puts
// the resulting Principal in the request context. The organisation always
// comes from the credential, never from client input.
package auth

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Scope is a permission carried by a token or API key.
type Scope string

const (
	BillingRead  Scope = "billing:read"
	BillingWrite Scope = "billing:write"
	UsageWrite   Scope = "usage:write"
)

// AllScopes lists every scope.
var AllScopes = []Scope{BillingRead, BillingWrite, UsageWrite}

// ParseScopes splits a space-separated scope claim, keeping known scopes.
// Only U+0020 separates (RFC 6749 §3.3), as the issuer that signed the
// claim reads it: "billing:read\tbilling:write" is one scope no issuer
// meant as billing:write, so it grants nothing.
func ParseScopes(s string) []Scope {
	var out []Scope
	for _, f := range strings.Split(s, " ") {
		sc := Scope(f)
		if slices.Contains(AllScopes, sc) && !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

// Method says how the caller authenticated.
type Method string

const (
	MethodJWT    Method = "jwt"
	MethodAPIKey Method = "api_key"
	MethodCookie Method = "cookie"
)

// Principal is the authenticated caller.
type Principal struct {
	OrgID         string
	OrgExternalID string
	Subject       string
	Email         string
	Scopes        []Scope
	Method        Method
	APIKeyID      string // set for MethodAPIKey
}

// HasAny reports whether the principal holds at least one of scopes.
func (p *Principal) HasAny(scopes ...Scope) bool {
	for _, s := range scopes {
		if slices.Contains(p.Scopes, s) {
			return true
		}
	}
	return false
}

type principalKey struct{}
type failureKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the authenticated principal, if any.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}

// Failure is why credentials that were presented were refused.
type Failure struct {
	Reason  string // machine-readable, e.g. TOKEN_EXPIRED
	Message string
	// Err is set when the credentials could not be checked because a
	// dependency (the database) failed: the client should retry, and the
	// cause is for the log, never the client.
	Err error
}

// ReasonUnavailable is the reason on a Failure whose Err is set.
const ReasonUnavailable = "AUTH_UNAVAILABLE"

// unavailable is the Failure for credentials that could not be checked.
func unavailable(what string, err error) *Failure {
	return &Failure{
		Reason:  ReasonUnavailable,
		Message: "could not " + what + "; try again",
		Err:     fmt.Errorf("%s: %w", what, err),
	}
}

func withFailure(ctx context.Context, f Failure) context.Context {
	return context.WithValue(ctx, failureKey{}, f)
}

// FailureFromContext returns why presented credentials were refused.
func FailureFromContext(ctx context.Context) (Failure, bool) {
	f, ok := ctx.Value(failureKey{}).(Failure)
	return f, ok
}
