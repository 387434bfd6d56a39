package client

import (
	"crypto/ed25519"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-billing/tollgate/internal/signing"
)

// Credential authenticates a request to Tollgate. It is asked again for
// every attempt, so a signature or token is fresh on each retry.
type Credential interface {
	Authorize(r *http.Request) error
}

// CredentialFunc adapts a function to Credential.
type CredentialFunc func(r *http.Request) error

// Authorize calls f.
func (f CredentialFunc) Authorize(r *http.Request) error { return f(r) }

// APIKey sends a Tollgate API key (tg_live_… or tg_test_…) in X-API-Key.
// The key's organisation is the one every call acts on.
func APIKey(secret string) Credential {
	return CredentialFunc(func(r *http.Request) error {
		r.Header.Set("X-API-Key", secret)
		return nil
	})
}

// SignedAPIKey sends the API key and signs each request with the Ed25519
// key registered for it (registerSigningKey), so the secret alone is not
// enough to call Tollgate and a captured request cannot be replayed.
func SignedAPIKey(secret string, priv ed25519.PrivateKey) Credential {
	return CredentialFunc(func(r *http.Request) error {
		r.Header.Set("X-API-Key", secret)
		return signing.Sign(r, priv, time.Now())
	})
}

// SignedAPIKeyID sends only the API key's id (apiKey { id }) in
// Authorization and signs each request with the Ed25519 key registered for
// it: the host holds no secret at all, only the private key. Its Authorize
// also signs a request a host sends without this client.
func SignedAPIKeyID(id string, priv ed25519.PrivateKey) Credential {
	return CredentialFunc(func(r *http.Request) error {
		r.Header.Set("Authorization", id)
		return signing.Sign(r, priv, time.Now())
	})
}

// Minter mints short-lived usage:write JWTs per organisation, for a host
// that is its own identity provider: Tollgate verifies them with the same
// JWT_SECRET (HS256) or a public key in JWT_PUBLIC_KEYS_FILE (EdDSA). A
// token is reused until a minute before it expires.
type Minter struct {
	secret []byte
	key    ed25519.PrivateKey
	// TTL is each token's lifetime (default 5 minutes).
	TTL time.Duration
	// Audience and Issuer go into every token as aud and iss; set them to
	// Tollgate's JWT_AUDIENCE and JWT_ISSUER when it has them, since it
	// then refuses tokens without them.
	Audience, Issuer string

	mu     sync.Mutex
	tokens map[string]minted
}

type minted struct {
	token   string
	renewAt time.Time
}

// HS256Minter mints tokens signed with Tollgate's JWT_SECRET.
func HS256Minter(secret []byte) *Minter { return &Minter{secret: secret} }

// EdDSAMinter mints tokens signed with an Ed25519 key whose public half is
// in Tollgate's JWT_PUBLIC_KEYS_FILE.
func EdDSAMinter(key ed25519.PrivateKey) *Minter { return &Minter{key: key} }

// Org is the credential of one organisation, named by its external id (the
// `org` claim). Tollgate creates the organisation on first sight.
func (m *Minter) Org(org string) Credential {
	return CredentialFunc(func(r *http.Request) error {
		tok, err := m.token(org)
		if err != nil {
			return err
		}
		r.Header.Set("Authorization", "Bearer "+tok)
		return nil
	})
}

func (m *Minter) token(org string) (string, error) {
	if org == "" {
		return "", errors.New("minter: organisation name is empty")
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.tokens[org]; ok && now.Before(t.renewAt) {
		return t.token, nil
	}
	ttl := m.TTL
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	tok, err := m.sign(org, "host", "usage:write", now, ttl)
	if err != nil {
		return "", err
	}
	if m.tokens == nil || len(m.tokens) > 10000 {
		m.tokens = map[string]minted{}
	}
	m.tokens[org] = minted{token: tok, renewAt: now.Add(ttl - min(time.Minute, ttl/2))}
	return tok, nil
}

// Token mints one token for a person or service of org, named by subject
// (the sub claim, e.g. the signed-in user's id), holding scopes
// ("billing:read", "billing:write", "usage:write"; at least one), valid
// for TTL: the short-lived token a billing page link carries
// (/billing#token=…, billing:read, plus billing:write for its controls),
// or one your dashboard's own calls send. Org's credentials are only ever
// usage:write; this is how a host hands out the others. It is not cached.
func (m *Minter) Token(org, subject string, scopes ...string) (string, error) {
	if org == "" || subject == "" {
		return "", errors.New("minter: organisation and subject must not be empty")
	}
	if len(scopes) == 0 {
		return "", errors.New("minter: give the token at least one scope")
	}
	ttl := m.TTL
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	return m.sign(org, subject, strings.Join(scopes, " "), time.Now(), ttl)
}

// sign signs a token of org for subject with scope, issued at now.
func (m *Minter) sign(org, subject, scope string, now time.Time, ttl time.Duration) (string, error) {
	claims := jwt.MapClaims{
		"org": org, "scope": scope, "sub": subject,
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(),
	}
	if m.Audience != "" {
		claims["aud"] = m.Audience
	}
	if m.Issuer != "" {
		claims["iss"] = m.Issuer
	}
	switch {
	case m.key != nil:
		return jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(m.key)
	case len(m.secret) > 0:
		return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(m.secret)
	}
	return "", errors.New("minter: no secret or key")
}
