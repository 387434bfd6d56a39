package auth

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/tollgate-billing/tollgate/internal/apperr"
)

// SessionCookie is the cookie a browser dashboard may carry the JWT in.
const SessionCookie = "tollgate_session"

// OrgResolver maps a token's org claim to the organisation id, creating the
// organisation on first sight.
type OrgResolver interface {
	Ensure(ctx context.Context, externalID, name, email string) (string, error)
}

// RequestVerifier checks the signature of a request made with an API key
// that has a signing key registered.
type RequestVerifier interface {
	VerifyRequest(r *http.Request, key APIKey) *Failure
}

// Authenticator turns request credentials into a Principal.
type Authenticator struct {
	Verifier *Verifier
	Keys     *Keys
	Orgs     OrgResolver
	// Signatures verifies signed requests; nil refuses every key that
	// requires signing.
	Signatures RequestVerifier
	Log        *slog.Logger
}

// Middleware authenticates each request. It never rejects on its own: a
// request without valid credentials proceeds without a Principal and with a
// Failure (CREDENTIALS_MISSING when it presented none), and the GraphQL
// layer answers UNAUTHENTICATED with the reason.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		p, f := a.Authenticate(r)
		switch {
		case p != nil:
			ctx = WithPrincipal(ctx, p)
		case f != nil:
			ctx = withFailure(ctx, *f)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Authenticate reads X-API-Key, Authorization: Bearer (a JWT or an API key)
// or the session cookie. A request may name one credential in its headers:
// both headers, or one twice, is refused rather than one picked, since they
// may be of different organisations. The cookie, which a browser attaches
// by itself, counts only when neither header is sent.
func (a *Authenticator) Authenticate(r *http.Request) (*Principal, *Failure) {
	keys, authz := presented(r.Header.Values("X-API-Key")), presented(r.Header.Values("Authorization"))
	if len(keys)+len(authz) > 1 {
		return nil, &Failure{Reason: ReasonConflicting, Message: "send one credential: either an API key or a bearer token, not both, and each header once"}
	}
	if len(keys) == 1 {
		return a.apiKey(r, keys[0])
	}
	if len(authz) == 1 {
		h := authz[0]
		scheme, cred, ok := strings.Cut(strings.TrimSpace(h), " ")
		cred = strings.TrimSpace(cred)
		switch {
		case !ok && strings.HasPrefix(scheme, KeyPrefix):
			// Signed machine requests send the key bare, as the reference
			// API does.
			return a.apiKey(r, scheme)
		case !ok && r.Header.Get("X-Request-Signature") != "":
			// Or only the key's id: the signature proves possession.
			return a.signedKeyID(r, scheme)
		case !ok || !strings.EqualFold(scheme, "Bearer") || cred == "":
			return nil, &Failure{Reason: ReasonMalformed, Message: "Authorization must be 'Bearer <token>'"}
		case strings.HasPrefix(cred, KeyPrefix):
			return a.apiKey(r, cred)
		}
		return a.jwt(r, cred, MethodJWT)
	}
	sessions := sessionCookies(r)
	if len(sessions) > 1 {
		// A browser holding sessions from two scopes (a parent domain's and
		// a host's, say) sends both; which one it meant is not known.
		return nil, &Failure{Reason: ReasonConflicting, Message: "the request carries more than one " + SessionCookie + " cookie; sign out and in again"}
	}
	if len(sessions) == 1 {
		c := sessions[0]
		// A browser attaches cookies to cross-site requests too. POSTs must
		// be application/json (gqlgen refuses other bodies), which forces a
		// CORS preflight; a GET can be a plain link, so it must carry a
		// header that only scripts on an allowed origin can set.
		if r.Method == http.MethodGet && r.Header.Get("X-Requested-With") == "" && r.Header.Get("Apollo-Require-Preflight") == "" {
			return nil, &Failure{Reason: "CSRF_HEADER_REQUIRED", Message: "GET requests authenticated by cookie need an X-Requested-With or Apollo-Require-Preflight header"}
		}
		return a.jwt(r, c.Value, MethodCookie)
	}
	return nil, missing()
}

// presented returns a header's values that are not blank, trimmed.
func presented(values []string) []string {
	var out []string
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// sessionCookies returns the distinct non-empty session cookies.
func sessionCookies(r *http.Request) []*http.Cookie {
	var out []*http.Cookie
	for _, c := range r.CookiesNamed(SessionCookie) {
		if c.Value != "" && !slices.ContainsFunc(out, func(o *http.Cookie) bool { return o.Value == c.Value }) {
			out = append(out, c)
		}
	}
	return out
}

// missing is the Failure of a request without credentials.
func missing() *Failure {
	return &Failure{Reason: ReasonMissing, Message: "authentication required: send Authorization: Bearer <token> or X-API-Key"}
}

func (a *Authenticator) jwt(r *http.Request, token string, m Method) (*Principal, *Failure) {
	claims, f := a.Verifier.Verify(token)
	if f != nil {
		return nil, f
	}
	orgID, err := a.Orgs.Ensure(r.Context(), claims.Org, claims.OrgName, claims.Email)
	if ae, ok := apperr.As(err); ok && ae.Code == apperr.Unauthenticated {
		// A token whose claims cannot name a tenant is the caller's
		// mistake, not an outage: no retry will help, and nothing here
		// deserves an operator's attention.
		a.Log.DebugContext(r.Context(), "token claims refused", "err", err)
		return nil, &Failure{Reason: ReasonBadClaims, Message: ae.Message}
	}
	if err != nil {
		return nil, unavailable("resolve the organisation", err)
	}
	return &Principal{
		OrgID: orgID, OrgExternalID: claims.Org, Subject: claims.Subject, Email: claims.Email,
		Scopes: claims.Scopes(), Method: m,
	}, nil
}

func (a *Authenticator) apiKey(r *http.Request, secret string) (*Principal, *Failure) {
	key, f := a.Keys.Authenticate(r.Context(), secret)
	if f != nil {
		return nil, f
	}
	return a.keyPrincipal(r, key)
}

// signedKeyID authenticates a request that names its API key by id; only
// keys with a registered signing key can be used this way.
func (a *Authenticator) signedKeyID(r *http.Request, id string) (*Principal, *Failure) {
	key, f := a.Keys.AuthenticateID(r.Context(), id)
	if f != nil && f.Reason == ReasonRevokedKey {
		// A key id is no secret: only a request its signing key signed
		// learns that the key was revoked; to anyone else a revoked id
		// reads as one that never was.
		if key.SigningPublicKey == nil || a.Signatures == nil || a.Signatures.VerifyRequest(r, key) != nil {
			return nil, &Failure{Reason: ReasonUnknownKey, Message: "API key is not valid"}
		}
	}
	if f != nil {
		return nil, f
	}
	if key.SigningPublicKey == nil {
		return nil, &Failure{Reason: ReasonUnknownKey, Message: "API key is not valid"}
	}
	return a.keyPrincipal(r, key)
}

func (a *Authenticator) keyPrincipal(r *http.Request, key APIKey) (*Principal, *Failure) {
	if key.SigningPublicKey != nil {
		if a.Signatures == nil {
			return nil, &Failure{Reason: "SIGNATURE_REQUIRED", Message: "this API key requires signed requests"}
		}
		if f := a.Signatures.VerifyRequest(r, key); f != nil {
			return nil, f
		}
	}
	return &Principal{
		OrgID: key.OrgID, Subject: "api_key:" + key.ID, Email: key.ContactEmail,
		Scopes: ParseScopes(key.Scopes), Method: MethodAPIKey, APIKeyID: key.ID,
	}, nil
}
