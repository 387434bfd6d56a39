package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-billing/tollgate/internal/clock"
)

// TestPublicKeyTokens: tokens from an identity provider signed with EdDSA or
// RS256 are accepted with the configured public keys, and an HS256 token
// made with a public key as its secret (algorithm confusion) is not.
func TestPublicKeyTokens(t *testing.T) {
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rsPriv, _ := rsa.GenerateKey(rand.Reader, 2048)
	path, pemFile := writePublicKeys(t, edPub, &rsPriv.PublicKey)
	keys, err := LoadPublicKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Now())
	v, err := NewVerifier(nil, keys, clk)
	if err != nil {
		t.Fatal(err)
	}
	c := Claims{Org: "acme", Scope: "billing:read"}
	c.ExpiresAt = jwt.NewNumericDate(clk.Now().Add(time.Hour))

	ed, _ := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(edPriv)
	rs, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, c).SignedString(rsPriv)
	confused, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(pemFile)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	stranger, _ := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(otherPriv)

	for name, tc := range map[string]struct {
		token string
		ok    bool
	}{
		"EdDSA from the provider":            {ed, true},
		"RS256 from the provider":            {rs, true},
		"HS256 keyed with the public key":    {confused, false},
		"EdDSA signed by someone else's key": {stranger, false},
	} {
		t.Run(name, func(t *testing.T) {
			claims, f := v.Verify(tc.token)
			if tc.ok && (f != nil || claims.Org != "acme") {
				t.Fatalf("refused: %+v", f)
			}
			if !tc.ok && f == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// writePublicKeys writes keys to a PEM file as JWT_PUBLIC_KEYS_FILE holds
// them, and returns its path and contents.
func writePublicKeys(t *testing.T, keys ...crypto.PublicKey) (string, []byte) {
	t.Helper()
	var pemFile []byte
	for _, k := range keys {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		pemFile = append(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	path := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(path, pemFile, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, pemFile
}

// TestSmallOrderPublicKeysAreRefused: an EdDSA key in JWT_PUBLIC_KEYS_FILE
// that is the identity point would accept the signature R = identity,
// S = 0 on any token; reading the file refuses it, naming the key, and so
// does a key of a type Tollgate cannot verify with, so no verifier is made
// with either.
func TestSmallOrderPublicKeysAreRefused(t *testing.T) {
	identity := ed25519.PublicKey(append([]byte{1}, make([]byte, 31)...))
	forged := append([]byte{1}, make([]byte, 63)...)
	if !ed25519.Verify(identity, []byte("any token"), forged) {
		t.Fatal("crypto/ed25519 no longer accepts the forgery; the test's premise changed")
	}
	good, _, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, tc := range map[string]struct {
		key  crypto.PublicKey
		want string
	}{
		"the identity":  {identity, "public key 2: unusable Ed25519 public key: a point of small order"},
		"32 zero bytes": {make(ed25519.PublicKey, 32), "public key 2: unusable Ed25519 public key: a point of small order"},
		"an ECDSA key":  {&ec.PublicKey, "public key 2: unsupported type *ecdsa.PublicKey"},
	} {
		path, _ := writePublicKeys(t, good, tc.key)
		if keys, err := LoadPublicKeys(path); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("JWT_PUBLIC_KEYS_FILE with %s: %v (keys %v), want an error starting %q", name, err, keys, tc.want)
		}
	}
}

// hsVerifier is a verifier of HS256 tokens, on a fake clock set to now, and
// its secret.
func hsVerifier(tb testing.TB, now time.Time) (*Verifier, *clock.Fake, []byte) {
	tb.Helper()
	clk := clock.NewFake(now)
	secret := []byte("test-secret-0123456789abcdef0123456789")
	v, err := NewVerifier(secret, nil, clk)
	if err != nil {
		tb.Fatal(err)
	}
	return v, clk, secret
}

// TestLeeway: the README promises 30 seconds of leeway on exp and nbf for
// clock skew between the issuer and Tollgate, no more and no less.
func TestLeeway(t *testing.T) {
	v, clk, secret := hsVerifier(t, time.Unix(1_800_000_000, 0))
	now := clk.Now()
	for name, tc := range map[string]struct {
		exp, nbf time.Duration // from now; nbf 0 leaves it out
		reason   string
	}{
		"expired 29 s ago is accepted":         {exp: -29 * time.Second},
		"expired 30 s ago is refused":          {exp: -30 * time.Second, reason: ReasonExpired},
		"valid from 30 s from now is accepted": {exp: time.Hour, nbf: 30 * time.Second},
		"valid from 31 s from now is refused":  {exp: time.Hour, nbf: 31 * time.Second, reason: ReasonBadClaims},
	} {
		t.Run(name, func(t *testing.T) {
			c := Claims{Org: "acme"}
			c.ExpiresAt = jwt.NewNumericDate(now.Add(tc.exp))
			if tc.nbf != 0 {
				c.NotBefore = jwt.NewNumericDate(now.Add(tc.nbf))
			}
			tok, _ := Mint(secret, c)
			_, f := v.Verify(tok)
			if got := reasonOf(f); got != tc.reason {
				t.Fatalf("reason = %q (%+v), want %q", got, f, tc.reason)
			}
		})
	}
}

func reasonOf(f *Failure) string {
	if f == nil {
		return ""
	}
	return f.Reason
}

// TestRememberedTokensStillExpire: a token verified once is not parsed
// again, but stops working at exp (plus the leeway) all the same.
func TestRememberedTokensStillExpire(t *testing.T) {
	v, clk, secret := hsVerifier(t, time.Now())
	c := Claims{Org: "acme", Scope: "billing:read"}
	c.ExpiresAt = jwt.NewNumericDate(clk.Now().Add(time.Minute))
	tok, _ := Mint(secret, c)
	for i := 0; i < 2; i++ {
		if _, f := v.Verify(tok); f != nil {
			t.Fatalf("verification %d refused: %+v", i, f)
		}
	}
	clk.Advance(time.Minute + leeway + time.Second)
	if _, f := v.Verify(tok); f == nil || f.Reason != ReasonExpired {
		t.Fatalf("expired remembered token: %+v", f)
	}
}

// TestDateClaimsMustBeNumbers: exp, nbf and iat given as strings holding a
// number (which golang-jwt's NumericDate reads) are refused as invalid
// claims; numbers, integral or not, are accepted. "Exp" is not exp, so a
// token with only it has no exp claim and is refused as well.
func TestDateClaimsMustBeNumbers(t *testing.T) {
	v, clk, secret := hsVerifier(t, time.Now())
	exp := clk.Now().Add(time.Hour).Unix()
	sign := func(c jwt.MapClaims) string {
		c["org"] = "acme"
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for name, tc := range map[string]struct {
		claims jwt.MapClaims
		ok     bool
	}{
		"numbers":             {jwt.MapClaims{"exp": exp, "nbf": exp - 7200, "iat": float64(exp-7200) + 0.25}, true},
		"exp a string":        {jwt.MapClaims{"exp": strconv.FormatInt(exp, 10)}, false},
		"nbf a string":        {jwt.MapClaims{"exp": exp, "nbf": "0"}, false},
		"iat a string":        {jwt.MapClaims{"exp": exp, "iat": "0"}, false},
		"Exp a string":        {jwt.MapClaims{"Exp": strconv.FormatInt(exp, 10)}, false},
		"exp a boolean":       {jwt.MapClaims{"exp": true}, false},
		"exp an array":        {jwt.MapClaims{"exp": []int64{exp}}, false},
		"nbf null":            {jwt.MapClaims{"exp": exp, "nbf": nil}, false},
		"exp a padded string": {jwt.MapClaims{"exp": " " + strconv.FormatInt(exp, 10)}, false},
	} {
		t.Run(name, func(t *testing.T) {
			c, f := v.Verify(sign(tc.claims))
			if tc.ok && f != nil {
				t.Fatalf("refused: %+v", f)
			}
			if !tc.ok && (f == nil || f.Reason != ReasonBadClaims || c != nil) {
				t.Fatalf("failure = %+v, want %s", f, ReasonBadClaims)
			}
		})
	}
}
