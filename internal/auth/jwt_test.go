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
	v, err := NewVerifier(nil, keys, Binding{}, clk)
	if err != nil {
		t.Fatal(err)
	}
	c := Claims{Org: "acme", Scope: "billing:read"}
	c.Subject = "user-1"
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
	v, err := NewVerifier(secret, nil, Binding{}, clk)
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
			c.Subject = "user-1"
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
	c.Subject = "user-1"
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
		c["sub"] = "user-1"
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

// TestDateClaimsOutsideTheYearsAreInvalid: exp, nbf and iat past int64
// nanoseconds or seconds (1e20, 2^63-1) once wrapped to the distant past,
// so a token not valid for billions of years was accepted and one valid
// for billions was "expired". Every date outside the years 2000 to 9999 is
// refused as invalid claims, never accepted and never TOKEN_EXPIRED; the
// last second of 9999 and a fraction of a second are still dates.
func TestDateClaimsOutsideTheYearsAreInvalid(t *testing.T) {
	v, clk, secret := hsVerifier(t, time.Unix(1_800_000_000, 0))
	exp := strconv.FormatInt(clk.Now().Add(time.Hour).Unix(), 10)
	past := strconv.FormatInt(clk.Now().Add(-time.Hour).Unix(), 10)
	lastSecond := strconv.FormatInt(time.Date(clock.MaxYear, 12, 31, 23, 59, 59, 0, time.UTC).Unix(), 10)
	firstAfter := strconv.FormatInt(time.Date(clock.MaxYear+1, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), 10)
	beforeMin := strconv.FormatInt(time.Date(clock.MinYear, 1, 1, 0, 0, 0, 0, time.UTC).Unix()-1, 10)
	outside := []string{"1e20", "9.3e18", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
		"9223372036854775", "1e400", "-1e400", firstAfter, beforeMin, "0", "-1"}
	var cases []struct{ name, claims string }
	for _, n := range outside {
		cases = append(cases,
			struct{ name, claims string }{"nbf " + n, `"exp":` + exp + `,"nbf":` + n},
			struct{ name, claims string }{"exp " + n, `"exp":` + n},
			struct{ name, claims string }{"iat " + n, `"exp":` + exp + `,"iat":` + n})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := signRaw(t, secret, `{"alg":"HS256","typ":"JWT"}`, `{"org":"acme","sub":"u",`+tc.claims+`}`)
			c, f := v.Verify(tok)
			if c != nil {
				t.Fatal("accepted")
			}
			if f == nil || f.Reason != ReasonBadClaims || !strings.Contains(f.Message, "from 2000 to 9999") {
				t.Fatalf("failure = %+v, want %s naming the years", f, ReasonBadClaims)
			}
		})
	}
	for name, claims := range map[string]string{
		"exp in the last second of 9999":    `"exp":` + lastSecond,
		"exp with a fraction of a second":   `"exp":` + exp + `.75`,
		"nbf an hour ago, as a float":       `"exp":` + exp + `,"nbf":` + past + `.5`,
		"nbf an hour ago, with an exponent": `"exp":` + exp + `,"nbf":` + past[:1] + `.` + past[1:] + `e9`,
	} {
		t.Run(name, func(t *testing.T) {
			tok := signRaw(t, secret, `{"alg":"HS256","typ":"JWT"}`, `{"org":"acme","sub":"u",`+claims+`}`)
			if _, f := v.Verify(tok); f != nil {
				t.Fatalf("refused: %+v", f)
			}
		})
	}
}

// TestTokensAreBoundToThisService: with JWT_AUDIENCE and JWT_ISSUER set, a
// token signed by a configured key but minted for another application of
// the same identity provider (another aud), by another issuer, or with
// neither claim is refused as invalid claims, naming the claim; aud may be
// a string or an array holding the audience (RFC 7519 §4.1.3). Every token
// needs a non-empty sub, with or without a binding: the per-credential rate
// limit is keyed by it, so it is held to the org claim's rule (at most 255
// bytes of printable text, no surrounding whitespace).
func TestTokensAreBoundToThisService(t *testing.T) {
	secret := []byte("test-secret-0123456789abcdef0123456789")
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	bound, err := NewVerifier(secret, nil, Binding{Audience: "tollgate", Issuer: "https://idp.example/"}, clk)
	if err != nil {
		t.Fatal(err)
	}
	unbound, _, _ := hsVerifier(t, clk.Now())
	exp := clk.Now().Add(time.Hour).Unix()
	for name, tc := range map[string]struct {
		claims  jwt.MapClaims
		v       *Verifier
		message string // "" accepts
	}{
		"aud a string, iss matching":           {jwt.MapClaims{"aud": "tollgate", "iss": "https://idp.example/"}, bound, ""},
		"aud an array holding it":              {jwt.MapClaims{"aud": []string{"billing-ui", "tollgate"}, "iss": "https://idp.example/"}, bound, ""},
		"aud another application":              {jwt.MapClaims{"aud": "someone-else", "iss": "https://idp.example/"}, bound, "aud"},
		"aud an array without it":              {jwt.MapClaims{"aud": []string{"a", "b"}, "iss": "https://idp.example/"}, bound, "aud"},
		"aud in another case":                  {jwt.MapClaims{"aud": "Tollgate", "iss": "https://idp.example/"}, bound, "aud"},
		"no aud":                               {jwt.MapClaims{"iss": "https://idp.example/"}, bound, "aud"},
		"aud empty":                            {jwt.MapClaims{"aud": "", "iss": "https://idp.example/"}, bound, "aud"},
		"iss another issuer":                   {jwt.MapClaims{"aud": "tollgate", "iss": "evil"}, bound, "iss"},
		"no iss":                               {jwt.MapClaims{"aud": "tollgate"}, bound, "iss"},
		"no sub":                               {jwt.MapClaims{"aud": "tollgate", "iss": "https://idp.example/", "sub": nil}, bound, "sub"},
		"sub empty":                            {jwt.MapClaims{"aud": "tollgate", "iss": "https://idp.example/", "sub": ""}, bound, "sub"},
		"no sub without a binding":             {jwt.MapClaims{"sub": nil}, unbound, "sub"},
		"sub empty without a binding":          {jwt.MapClaims{"sub": ""}, unbound, "sub"},
		"any aud and iss without a binding":    {jwt.MapClaims{"aud": "someone-else", "iss": "evil"}, unbound, ""},
		"sub of 255 bytes":                     {jwt.MapClaims{"sub": strings.Repeat("é", 127) + "x"}, unbound, ""},
		"sub from an identity provider":        {jwt.MapClaims{"sub": "auth0|5f7c8ec7c33c6c004bbafe82"}, unbound, ""},
		"sub of 256 bytes":                     {jwt.MapClaims{"sub": strings.Repeat("é", 128)}, unbound, "sub"},
		"sub of a megabyte":                    {jwt.MapClaims{"sub": strings.Repeat("a", 1<<20)}, unbound, "sub"},
		"sub with a NUL":                       {jwt.MapClaims{"sub": "user\x001"}, unbound, "sub"},
		"sub with a bidi override":             {jwt.MapClaims{"sub": "\u202euser"}, unbound, "sub"},
		"sub only a space":                     {jwt.MapClaims{"sub": " "}, unbound, "sub"},
		"sub with a trailing space":            {jwt.MapClaims{"sub": "user-1 "}, unbound, "sub"},
		"no exp is named before a missing aud": {jwt.MapClaims{"exp": nil}, bound, "exp"},
	} {
		t.Run(name, func(t *testing.T) {
			c := jwt.MapClaims{"org": "acme", "sub": "user-1", "exp": exp}
			for k, val := range tc.claims {
				if val == nil {
					delete(c, k)
				} else {
					c[k] = val
				}
			}
			tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
			if err != nil {
				t.Fatal(err)
			}
			reason := ReasonBadClaims
			if tc.message == "" {
				reason = ""
			}
			wantVerdict(t, tc.v, tok, reason, tc.message+" claim")
		})
	}
}

// TestProviderTokensMustBeAccessTokens: a token signed with the identity
// provider's key is accepted only as an access token: its header's typ
// absent, JWT or at+jwt (RFC 9068, also as application/at+jwt, in any
// case); an ID token marked id+jwt, or any other kind, is refused with
// TOKEN_TYPE_INVALID naming the typ. With JWT_AUTHORIZED_PARTY set, the
// provider's token must also carry that azp (TOKEN_CLAIMS_INVALID naming
// azp). Neither applies to HS256 tokens, which only the host mints.
func TestProviderTokensMustBeAccessTokens(t *testing.T) {
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	path, _ := writePublicKeys(t, edPub)
	keys, err := LoadPublicKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("test-secret-0123456789abcdef0123456789")
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	plain, err := NewVerifier(secret, keys, Binding{}, clk)
	if err != nil {
		t.Fatal(err)
	}
	withAzp, err := NewVerifier(secret, keys, Binding{AuthorizedParty: "billing-dashboard"}, clk)
	if err != nil {
		t.Fatal(err)
	}
	const absent = "(absent)"
	for name, tc := range map[string]struct {
		v      *Verifier
		method jwt.SigningMethod
		typ    any    // absent: no typ header
		azp    string // "": no azp claim
		reason string // "" accepts
		names  string // what the message must name
	}{
		"no typ":                             {plain, jwt.SigningMethodEdDSA, absent, "", "", ""},
		"typ JWT":                            {plain, jwt.SigningMethodEdDSA, "JWT", "", "", ""},
		"typ at+jwt":                         {plain, jwt.SigningMethodEdDSA, "at+jwt", "", "", ""},
		"typ application/at+jwt, any case":   {plain, jwt.SigningMethodEdDSA, "Application/AT+JWT", "", "", ""},
		"typ id+jwt, an ID token":            {plain, jwt.SigningMethodEdDSA, "id+jwt", "", ReasonWrongType, `"id+jwt"`},
		"typ logout+jwt":                     {plain, jwt.SigningMethodEdDSA, "logout+jwt", "", ReasonWrongType, `"logout+jwt"`},
		"typ empty":                          {plain, jwt.SigningMethodEdDSA, "", "", ReasonWrongType, "typ"},
		"typ a number":                       {plain, jwt.SigningMethodEdDSA, 1, "", ReasonWrongType, "typ"},
		"HS256 from the host with any typ":   {plain, jwt.SigningMethodHS256, "id+jwt", "", "", ""},
		"azp the authorized party":           {withAzp, jwt.SigningMethodEdDSA, "at+jwt", "billing-dashboard", "", ""},
		"azp another client":                 {withAzp, jwt.SigningMethodEdDSA, "at+jwt", "mobile-app", ReasonBadClaims, "azp claim"},
		"no azp":                             {withAzp, jwt.SigningMethodEdDSA, absent, "", ReasonBadClaims, "azp claim"},
		"azp in another case":                {withAzp, jwt.SigningMethodEdDSA, absent, "Billing-Dashboard", ReasonBadClaims, "azp claim"},
		"HS256 from the host needs no azp":   {withAzp, jwt.SigningMethodHS256, absent, "", "", ""},
		"azp ignored without the binding":    {plain, jwt.SigningMethodEdDSA, absent, "mobile-app", "", ""},
		"an ID token is refused before azp":  {withAzp, jwt.SigningMethodEdDSA, "id+jwt", "billing-dashboard", ReasonWrongType, `"id+jwt"`},
		"azp checked when typ is acceptable": {withAzp, jwt.SigningMethodEdDSA, "JWT", "", ReasonBadClaims, "azp claim"},
	} {
		t.Run(name, func(t *testing.T) {
			c := Claims{Org: "acme", AuthorizedParty: tc.azp}
			c.Subject = "user-1"
			c.ExpiresAt = jwt.NewNumericDate(clk.Now().Add(time.Hour))
			tok := jwt.NewWithClaims(tc.method, c)
			if tc.typ == absent {
				delete(tok.Header, "typ")
			} else {
				tok.Header["typ"] = tc.typ
			}
			var key any = edPriv
			if tc.method == jwt.SigningMethodHS256 {
				key = secret
			}
			s, err := tok.SignedString(key)
			if err != nil {
				t.Fatal(err)
			}
			wantVerdict(t, tc.v, s, tc.reason, tc.names)
		})
	}
}

// wantVerdict verifies token: with reason "" it must authenticate acme,
// else be refused for reason with a message naming names.
func wantVerdict(t *testing.T, v *Verifier, token, reason, names string) {
	t.Helper()
	got, f := v.Verify(token)
	if reason == "" {
		if f != nil || got.Org != "acme" {
			t.Fatalf("refused: %+v", f)
		}
		return
	}
	if got != nil {
		t.Fatal("accepted")
	}
	if f == nil || f.Reason != reason || !strings.Contains(f.Message, names) {
		t.Fatalf("failure = %+v, want %s naming %s", f, reason, names)
	}
}
