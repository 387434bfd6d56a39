package auth

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-billing/tollgate/internal/clock"
)

// TestRawTokenJSONIsUnambiguous: a token whose header or payload JSON
// encoding/json would read one way and another parser another (a name given
// twice, bytes that are not UTF-8, an unpaired surrogate escape), a header
// with crit, or a segment that is not exactly one JSON object is refused
// with a reason and a message naming the problem, never accepted as some
// organisation; each is signed with the right secret, so only the JSON is
// at fault.
func TestRawTokenJSONIsUnambiguous(t *testing.T) {
	clk := clock.NewFake(time.Now())
	secret := []byte("raw-json-secret-0123456789abcdef0123456")
	v, err := NewVerifier(secret, nil, clk)
	if err != nil {
		t.Fatal(err)
	}
	exp := strconv.FormatInt(clk.Now().Add(time.Hour).Unix(), 10)
	const hs = `{"alg":"HS256","typ":"JWT"}`
	sign := func(header, payload string) string {
		enc := base64.RawURLEncoding
		unsigned := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
		sig, err := jwt.SigningMethodHS256.Sign(unsigned, secret)
		if err != nil {
			t.Fatal(err)
		}
		return unsigned + "." + enc.EncodeToString(sig)
	}
	cases := []struct {
		name, header, payload string
		reason                string // "" accepts the token
		message               string // a part of the message
	}{
		{"plain", hs, `{"org":"demo","exp":` + exp + `}`, "", ""},
		{"nested objects may repeat outer names", hs, `{"org":"demo","x":{"org":"a","y":[{"org":1}]},"exp":` + exp + `}`, "", ""},
		{"escaped pair is a character", hs, `{"org":"demo","org_name":"D\ud83d\ude00mo","exp":` + exp + `}`, "", ""},
		{"org twice", hs, `{"org":"demo","org":"evil","exp":` + exp + `}`, ReasonMalformed, `names "org" twice`},
		{"org twice, once escaped", hs, `{"org":"demo","\u006frg":"evil","exp":` + exp + `}`, ReasonMalformed, `names "org" twice`},
		{"org twice in another case", hs, `{"org":"demo","ORG":"evil","exp":` + exp + `}`, ReasonMalformed, `names "ORG" twice`},
		{"exp twice", hs, `{"org":"demo","exp":1,"exp":` + exp + `}`, ReasonMalformed, `names "exp" twice`},
		{"org not UTF-8", hs, `{"org":"d` + "\xff" + `emo","exp":` + exp + `}`, ReasonBadClaims, "payload is not valid UTF-8"},
		{"org with a lone surrogate escape", hs, `{"org":"d\udfffemo","exp":` + exp + `}`, ReasonBadClaims, "payload is not valid UTF-8"},
		{"org with an unpaired high surrogate", hs, `{"org":"d\ud800emo","exp":` + exp + `}`, ReasonBadClaims, "payload is not valid UTF-8"},
		{"payload an array", hs, `[{"org":"demo","exp":` + exp + `}]`, ReasonMalformed, "payload is not a JSON object"},
		{"payload a string", hs, `"demo"`, ReasonMalformed, "payload is not a JSON object"},
		{"data after the payload", hs, `{"org":"demo","exp":` + exp + `}{"org":"evil"}`, ReasonMalformed, "payload has data after its JSON object"},
		{"alg twice", `{"alg":"none","alg":"HS256"}`, `{"org":"demo","exp":` + exp + `}`, ReasonMalformed, `header names "alg" twice`},
		{"header not UTF-8", `{"alg":"HS256","kid":"` + "\xfe" + `"}`, `{"org":"demo","exp":` + exp + `}`, ReasonMalformed, "header is not valid UTF-8"},
		{"header with crit", `{"alg":"HS256","crit":["exp"],"exp":1}`, `{"org":"demo","exp":` + exp + `}`, ReasonMalformed, "crit"},
		{"header with empty crit", `{"alg":"HS256","crit":[]}`, `{"org":"demo","exp":` + exp + `}`, ReasonMalformed, "crit"},
		{"header an array", `["HS256"]`, `{"org":"demo","exp":` + exp + `}`, ReasonMalformed, "header is not a JSON object"},
		{"data after the header", hs + ` x`, `{"org":"demo","exp":` + exp + `}`, ReasonMalformed, "header has data after its JSON object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, f := v.Verify(sign(tc.header, tc.payload))
			if tc.reason == "" {
				if f != nil || c.Org != "demo" {
					t.Fatalf("refused: %+v", f)
				}
				return
			}
			if c != nil {
				t.Fatalf("accepted as organisation %q", c.Org)
			}
			if f == nil || f.Reason != tc.reason || !strings.Contains(f.Message, tc.message) || f.Err != nil {
				t.Fatalf("failure = %+v, want reason %s and a message with %q", f, tc.reason, tc.message)
			}
		})
	}
}
