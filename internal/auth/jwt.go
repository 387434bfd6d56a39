package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/ed25519key"
	"github.com/tollgate-billing/tollgate/internal/usertext"
)

// MaxSubjectLen bounds a token's sub claim, in bytes, as the org claim is
// bounded.
const MaxSubjectLen = 255

// Claims are what Tollgate reads from a bearer JWT.
type Claims struct {
	jwt.RegisteredClaims
	Org     string `json:"org"`
	OrgName string `json:"org_name,omitempty"`
	Email   string `json:"email,omitempty"`
	Scope   string `json:"scope"`
	// AuthorizedParty (azp) is the client an identity provider issued the
	// token to; read only with Binding.AuthorizedParty.
	AuthorizedParty string `json:"azp,omitempty"`
	// scopes is Scope parsed, once per verified token rather than once
	// per request; shared by every request with the token, so read-only.
	scopes []Scope
}

// errDateNotNumber is a date claim that is not a JSON number.
var errDateNotNumber = errors.New("a date claim is not a number")

// errDateOutOfRange is a date claim outside clock.MinYear to clock.MaxYear:
// golang-jwt converts the number to int64 seconds without a range check,
// so 1e20 or 2^63-1 wrapped to the year -292 billion, which made a far
// future nbf pass and a far future exp read as expired.
var errDateOutOfRange = fmt.Errorf("a date claim is not a time from %d to %d", clock.MinYear, clock.MaxYear)

// UnmarshalJSON reads the claims by their exact names (decodeClaims), as
// RFC 7519 §4 says claim names are case-sensitive: encoding/json would
// read {"Org": "acme"} as org, so a token whose issuer never set org, or a
// claim of another meaning that differs only in case, would authenticate
// as that organisation.
func (c *Claims) UnmarshalJSON(b []byte) error {
	return decodeClaims(b, c)
}

// isNumber reports whether v is a JSON number literal.
func isNumber(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9'))
}

// Scopes are the known scopes the token grants.
func (c *Claims) Scopes() []Scope {
	if c.scopes == nil {
		return ParseScopes(c.Scope)
	}
	return c.scopes
}

// Verifier checks bearer JWTs: HS256 with the shared secret, and EdDSA or
// RS256 with configured public keys.
type Verifier struct {
	secret []byte
	keys   PublicKeys
	clock  clock.Clock
	bind   Binding
	// parser is built once: its options never change.
	parser *jwt.Parser
	// verified remembers tokens that passed, keyed by the whole token
	// (signature included), until they expire: a dashboard or backend sends
	// the same token on every request, and parsing and verifying it was a
	// tenth of the gate's CPU.
	verified *lru.Cache[string, *Claims]
}

// verifiedCacheSize bounds the remembered tokens.
const verifiedCacheSize = 10000

// leeway is how long past exp (and before nbf) a token is still accepted,
// for clock skew between issuer and Tollgate.
const leeway = 30 * time.Second

// PublicKeys are the keys of an identity provider whose EdDSA and RS256
// tokens Tollgate accepts. Only LoadPublicKeys makes them, so every key a
// Verifier holds was checked once, where it was read.
type PublicKeys struct {
	ed []ed25519.PublicKey
	rs []*rsa.PublicKey
}

// Binding is what ties a token to this Tollgate (JWT_AUDIENCE,
// JWT_ISSUER): when set, a token must carry that aud (a string, or an
// array holding it, RFC 7519 §4.1.3) and that iss. Without it, any token
// signed by a configured key would do, including one an identity provider
// shared with other applications minted for one of them.
//
// AuthorizedParty (JWT_AUTHORIZED_PARTY) applies to tokens signed with the
// identity provider's keys only (EdDSA, RS256): when set, such a token must
// carry that azp, the client the provider issued it to, so a token the
// provider issued to another client of the same API is refused.
type Binding struct {
	Audience        string
	Issuer          string
	AuthorizedParty string
}

// NewVerifier returns a verifier. secret may be empty when public keys are
// given; keys may be nil when a secret is.
func NewVerifier(secret []byte, keys *PublicKeys, bind Binding, c clock.Clock) (*Verifier, error) {
	cache, err := lru.New[string, *Claims](verifiedCacheSize)
	if err != nil {
		return nil, err
	}
	v := &Verifier{secret: secret, clock: c, bind: bind, verified: cache}
	if keys != nil {
		v.keys = *keys
	}
	if len(secret) == 0 && len(v.keys.ed) == 0 && len(v.keys.rs) == 0 {
		return nil, errors.New("no JWT secret or public key configured")
	}
	methods := []string{}
	if len(v.secret) > 0 {
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	if len(v.keys.ed) > 0 {
		methods = append(methods, jwt.SigningMethodEdDSA.Alg())
	}
	if len(v.keys.rs) > 0 {
		methods = append(methods, jwt.SigningMethodRS256.Alg())
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods), // refuses alg "none" and alg confusion
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(v.clock.Now),
	}
	if bind.Audience != "" {
		opts = append(opts, jwt.WithAudience(bind.Audience))
	}
	if bind.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(bind.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// LoadPublicKeys reads PEM "PUBLIC KEY" blocks from a file: Ed25519 keys,
// each of which must have a secret behind it (ed25519key.Check: a
// small-order key would accept one fixed signature on any token, so anyone
// could mint tokens), and RSA keys.
func LoadPublicKeys(path string) (*PublicKeys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	keys := &PublicKeys{}
	for n := 1; ; n++ {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key %d: %w", n, err)
		}
		switch k := k.(type) {
		case ed25519.PublicKey:
			if err := ed25519key.Check(k); err != nil {
				return nil, fmt.Errorf("public key %d: %w", n, err)
			}
			keys.ed = append(keys.ed, k)
		case *rsa.PublicKey:
			keys.rs = append(keys.rs, k)
		default:
			return nil, fmt.Errorf("public key %d: unsupported type %T (want Ed25519 or RSA)", n, k)
		}
	}
	if len(keys.ed) == 0 && len(keys.rs) == 0 {
		return nil, errors.New("no PEM PUBLIC KEY blocks found")
	}
	return keys, nil
}

// Reasons a token is refused.
const (
	ReasonMissing = "CREDENTIALS_MISSING"
	// ReasonConflicting is a request that names more than one credential
	// (an API key and a bearer token, or a header twice): which one acts
	// is never guessed.
	ReasonConflicting  = "CREDENTIALS_CONFLICTING"
	ReasonMalformed    = "TOKEN_MALFORMED"
	ReasonExpired      = "TOKEN_EXPIRED"
	ReasonBadSignature = "TOKEN_SIGNATURE_INVALID"
	ReasonBadClaims    = "TOKEN_CLAIMS_INVALID"
	// ReasonWrongType is an identity provider's token that says it is not
	// an access token (its header's typ), such as an ID token marked
	// "id+jwt": it proves who signed in to a client, not what may be called.
	ReasonWrongType  = "TOKEN_TYPE_INVALID"
	ReasonUnknownKey = "API_KEY_INVALID"
	ReasonRevokedKey = "API_KEY_REVOKED"
)

// Verify parses and checks a token. Tokens must carry exp, org and sub,
// and the Binding's aud and iss when set; a token signed with a public key
// must be an access token (accessTokenType) and carry the Binding's azp
// when set. The
// returned claims are shared: do not modify them.
func (v *Verifier) Verify(token string) (*Claims, *Failure) {
	if c, ok := v.verified.Get(token); ok {
		if v.clock.Now().Before(c.ExpiresAt.Add(leeway)) {
			return c, nil
		}
		v.verified.Remove(token)
	}
	if f := checkRawSegments(token); f != nil {
		return nil, f
	}
	var claims Claims
	tok, err := v.parser.ParseWithClaims(token, &claims, v.keyFor)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, &Failure{Reason: ReasonExpired, Message: "token has expired"}
	case errors.Is(err, errDateNotNumber):
		return nil, &Failure{Reason: ReasonBadClaims, Message: "token's exp, nbf and iat claims must be numbers (seconds since 1970), not strings"}
	case errors.Is(err, errDateOutOfRange):
		return nil, &Failure{Reason: ReasonBadClaims, Message: fmt.Sprintf("token's exp, nbf and iat claims must be times from %d to %d (seconds since 1970)", clock.MinYear, clock.MaxYear)}
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, &Failure{Reason: ReasonMalformed, Message: "token is malformed"}
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return nil, &Failure{Reason: ReasonBadSignature, Message: "token signature is invalid"}
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && claims.ExpiresAt == nil:
		return nil, &Failure{Reason: ReasonBadClaims, Message: "token has no exp claim"}
	case errors.Is(err, jwt.ErrTokenInvalidAudience), errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && v.bind.Audience != "" && !slices.Contains(claims.Audience, v.bind.Audience):
		return nil, &Failure{Reason: ReasonBadClaims, Message: "token's aud claim does not name this service (JWT_AUDIENCE)"}
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return nil, &Failure{Reason: ReasonBadClaims, Message: "token's iss claim is not this service's issuer (JWT_ISSUER)"}
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return nil, &Failure{Reason: ReasonBadClaims, Message: "token is not valid yet (nbf is in the future)"}
	default:
		// The library's own text is not shown: it is not a contract.
		return nil, &Failure{Reason: ReasonBadClaims, Message: "token claims are not valid"}
	}
	if f := v.checkProviderToken(tok, &claims); f != nil {
		return nil, f
	}
	if claims.Org == "" {
		return nil, &Failure{Reason: ReasonBadClaims, Message: "token has no org claim"}
	}
	if claims.Subject == "" {
		// The per-credential rate limit is keyed by subject: tokens
		// without one would all share (or dodge) one budget.
		return nil, &Failure{Reason: ReasonBadClaims, Message: "token has no sub claim"}
	}
	if len(claims.Subject) > MaxSubjectLen || !usertext.Printable(claims.Subject) || strings.TrimSpace(claims.Subject) != claims.Subject {
		// The subject names a rate-limit budget in Redis and the caller in
		// logs: held to the org claim's rule, it cannot be a 1 MB key, a
		// NUL or a bidi override, nor " " beside "".
		return nil, &Failure{Reason: ReasonBadClaims, Message: fmt.Sprintf("token's sub claim must be at most %d bytes of UTF-8 text without control or invisible formatting characters, not starting or ending with whitespace", MaxSubjectLen)}
	}
	claims.scopes = ParseScopes(claims.Scope)
	if claims.scopes == nil {
		claims.scopes = []Scope{}
	}
	v.verified.Add(token, &claims)
	return &claims, nil
}

// checkProviderToken holds a token signed with an identity provider's key
// (EdDSA, RS256) to what only an access token for this service carries:
// its header's typ (accessTokenType) and, when the Binding sets one, its
// azp. HS256 tokens are minted by the host with JWT_SECRET, which no one
// else holds, so neither applies to them. Read after the signature is
// checked, so a forged header learns nothing.
func (v *Verifier) checkProviderToken(tok *jwt.Token, c *Claims) *Failure {
	if tok == nil || tok.Method == nil || tok.Method.Alg() == jwt.SigningMethodHS256.Alg() {
		return nil
	}
	if typ, ok := tok.Header["typ"]; ok {
		s, isString := typ.(string)
		if !isString {
			return &Failure{Reason: ReasonWrongType, Message: "token's typ header is not a string; Tollgate accepts access tokens (typ absent, JWT or at+jwt)"}
		}
		if !accessTokenType(s) {
			return &Failure{Reason: ReasonWrongType, Message: "token's typ header is " + quoteName(s) + ", not an access token's (absent, JWT or at+jwt): send an access token, not an ID token"}
		}
	}
	if want := v.bind.AuthorizedParty; want != "" && c.AuthorizedParty != want {
		return &Failure{Reason: ReasonBadClaims, Message: "token's azp claim is not this service's authorized party (JWT_AUTHORIZED_PARTY)"}
	}
	return nil
}

// accessTokenType reports whether a header's typ names an access token:
// "JWT" (what most providers put on every token) or RFC 9068's "at+jwt",
// each also with the "application/" that RFC 7515 §4.1.9 lets an issuer
// write, in any case (media types ignore it). Anything else, such as
// "id+jwt" or "logout+jwt", is a token of another kind.
func accessTokenType(typ string) bool {
	if len(typ) > len("application/") && strings.EqualFold(typ[:len("application/")], "application/") {
		typ = typ[len("application/"):]
	}
	return strings.EqualFold(typ, "JWT") || strings.EqualFold(typ, "at+jwt")
}

func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	switch t.Method.Alg() {
	case jwt.SigningMethodHS256.Alg():
		return v.secret, nil
	case jwt.SigningMethodEdDSA.Alg():
		return verificationKeys(v.keys.ed), nil
	case jwt.SigningMethodRS256.Alg():
		return verificationKeys(v.keys.rs), nil
	}
	return nil, jwt.ErrTokenUnverifiable
}

func verificationKeys[K any](keys []K) jwt.VerificationKeySet {
	set := jwt.VerificationKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k)
	}
	return set
}

// Mint signs an HS256 token; for the dev token, tests and tools.
func Mint(secret []byte, c Claims) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}
