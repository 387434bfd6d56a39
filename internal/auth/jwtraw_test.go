package auth

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signRaw signs header and payload, JSON as given, with HS256 and secret:
// a token whose JSON no encoder would write.
func signRaw(t *testing.T, secret []byte, header, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	unsigned := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(unsigned, secret)
	if err != nil {
		t.Fatal(err)
	}
	return unsigned + "." + enc.EncodeToString(sig)
}

// TestRawTokenJSONIsUnambiguous: a token whose header or payload JSON
// encoding/json would read one way and another parser another (a name given
// twice, bytes that are not UTF-8, an unpaired surrogate escape), a header
// with crit, or a segment that is not exactly one JSON object is refused
// with a reason and a message naming the problem, never accepted as some
// organisation; each is signed with the right secret, so only the JSON is
// at fault.
func TestRawTokenJSONIsUnambiguous(t *testing.T) {
	v, clk, secret := hsVerifier(t, time.Now())
	exp := strconv.FormatInt(clk.Now().Add(time.Hour).Unix(), 10)
	const hs = `{"alg":"HS256","typ":"JWT"}`
	cases := []struct {
		name, header, payload string
		reason                string // "" accepts the token
		message               string // a part of the message
	}{
		{"plain", hs, `{"org":"demo","sub":"u","exp":` + exp + `}`, "", ""},
		{"nested objects may repeat outer names", hs, `{"org":"demo","x":{"org":"a","y":[{"org":1}]},"sub":"u","exp":` + exp + `}`, "", ""},
		{"escaped pair is a character", hs, `{"org":"demo","org_name":"D\ud83d\ude00mo","sub":"u","exp":` + exp + `}`, "", ""},
		{"org twice", hs, `{"org":"demo","org":"evil","sub":"u","exp":` + exp + `}`, ReasonMalformed, `names "org" twice`},
		{"org twice, once escaped", hs, `{"org":"demo","\u006frg":"evil","sub":"u","exp":` + exp + `}`, ReasonMalformed, `names "org" twice`},
		{"exp twice", hs, `{"org":"demo","exp":1,"sub":"u","exp":` + exp + `}`, ReasonMalformed, `names "exp" twice`},
		{"org not UTF-8", hs, `{"org":"d` + "\xff" + `emo","sub":"u","exp":` + exp + `}`, ReasonBadClaims, "payload is not valid UTF-8"},
		{"org with a lone surrogate escape", hs, `{"org":"d\udfffemo","sub":"u","exp":` + exp + `}`, ReasonBadClaims, "payload is not valid UTF-8"},
		{"org with an unpaired high surrogate", hs, `{"org":"d\ud800emo","sub":"u","exp":` + exp + `}`, ReasonBadClaims, "payload is not valid UTF-8"},
		{"payload an array", hs, `[{"org":"demo","sub":"u","exp":` + exp + `}]`, ReasonMalformed, "payload is not a JSON object"},
		{"payload a string", hs, `"demo"`, ReasonMalformed, "payload is not a JSON object"},
		{"data after the payload", hs, `{"org":"demo","sub":"u","exp":` + exp + `}{"org":"evil"}`, ReasonMalformed, "payload has data after its JSON object"},
		{"alg twice", `{"alg":"none","alg":"HS256"}`, `{"org":"demo","sub":"u","exp":` + exp + `}`, ReasonMalformed, `header names "alg" twice`},
		{"header not UTF-8", `{"alg":"HS256","kid":"` + "\xfe" + `"}`, `{"org":"demo","sub":"u","exp":` + exp + `}`, ReasonMalformed, "header is not valid UTF-8"},
		{"header with crit", `{"alg":"HS256","crit":["exp"],"exp":1}`, `{"org":"demo","sub":"u","exp":` + exp + `}`, ReasonMalformed, "crit"},
		{"header with empty crit", `{"alg":"HS256","crit":[]}`, `{"org":"demo","sub":"u","exp":` + exp + `}`, ReasonMalformed, "crit"},
		{"header an array", `["HS256"]`, `{"org":"demo","sub":"u","exp":` + exp + `}`, ReasonMalformed, "header is not a JSON object"},
		{"data after the header", hs + ` x`, `{"org":"demo","sub":"u","exp":` + exp + `}`, ReasonMalformed, "header has data after its JSON object"},
		// The one walk over the members (jsontext.Members) reads the
		// header for crit and the payload for claims: JSON it must read
		// right, and JSON that is not an object, which it must not take
		// for one.
		{"white space everywhere", " {\r\n\t\"alg\" : \"HS256\" ,\n\"typ\":\"JWT\" } ", " {\r\n\t\"org\" : \"demo\" ,\n\"sub\":\"u\", \"exp\" : " + exp + " \t}\n", "", ""},
		{"strings that look like members", `{"alg":"HS256","x":"\",\"crit\":[\"exp\"]"}`, `{"x":"},{\"org\":\"evil\"","org":"demo","sub":"u","exp":` + exp + `}`, "", ""},
		{"every kind of value before org", hs, `{"a":true,"b":null,"c":-1.5e3,"d":[{"e":"}]"},[]],"f":{},"org":"demo","sub":"u","exp":` + exp + `}`, "", ""},
		{"crit nested is no crit", `{"alg":"HS256","x":{"crit":["exp"]}}`, `{"org":"demo","sub":"u","exp":` + exp + `}`, "", ""},
		{"crit escaped", `{"alg":"HS256","\u0063rit":["exp"]}`, `{"org":"demo","sub":"u","exp":` + exp + `}`, ReasonMalformed, "crit"},
		{"crit spaced out, last", `{ "alg" : "HS256" , "crit" : [ ] }`, `{"org":"demo","sub":"u","exp":` + exp + `}`, ReasonMalformed, "crit"},
		{"crit after a malformed member", `{"alg":"HS256","x":,"crit":[]}`, `{"org":"demo","sub":"u","exp":` + exp + `}`, ReasonMalformed, ""},
		{"payload with a trailing comma", hs, `{"org":"demo","sub":"u","exp":` + exp + `,}`, ReasonMalformed, "malformed"},
		{"payload without a comma", hs, `{"org":"demo" "sub":"u","exp":` + exp + `}`, ReasonMalformed, "malformed"},
		{"payload without a colon", hs, `{"org" "demo","sub":"u","exp":` + exp + `}`, ReasonMalformed, "malformed"},
		{"payload member without a value", hs, `{"org":,"sub":"u","exp":` + exp + `}`, ReasonMalformed, "malformed"},
		{"payload value before the last brace missing", hs, `{"sub":"u","exp":` + exp + `,"org":}`, ReasonMalformed, "malformed"},
		{"payload name not quoted", hs, `{org:"demo","sub":"u","exp":` + exp + `}`, ReasonMalformed, "malformed"},
		{"payload not closed", hs, `{"org":"demo","sub":"u","exp":` + exp, ReasonMalformed, "malformed"},
		{"payload string not closed", hs, `{"sub":"u","exp":` + exp + `,"org":"demo}`, ReasonMalformed, "malformed"},
		{"payload list closed by a brace", hs, `{"x":[1,2},"org":"demo","sub":"u","exp":` + exp + `}`, ReasonMalformed, "malformed"},
		{"payload closed twice", hs, `{"org":"demo","sub":"u","exp":` + exp + `}}`, ReasonMalformed, "payload has data after its JSON object"},
		{"payload empty", hs, ``, ReasonMalformed, "payload is not a JSON object"},
		{"payload only a brace", hs, `{`, ReasonMalformed, "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, f := v.Verify(signRaw(t, secret, tc.header, tc.payload))
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

// TestClaimNamesAreCaseSensitive: RFC 7519 claim names are case-sensitive,
// so a claim given only in another case ("Org", "ORG", or "ſcope", which
// Unicode folds to scope) is not that claim: a token with only "Org" has no
// org claim, and one with "org" and "ORG" has one org claim and a claim
// Tollgate does not know, which it ignores as RFC 7519 §4 says (as
// go-jose, which matches names exactly, does). Each token is signed with
// the right secret.
func TestClaimNamesAreCaseSensitive(t *testing.T) {
	v, clk, secret := hsVerifier(t, time.Now())
	exp := strconv.FormatInt(clk.Now().Add(time.Hour).Unix(), 10)
	future := strconv.FormatInt(clk.Now().Add(2*time.Hour).Unix(), 10)
	sign := func(payload string) string { return signRaw(t, secret, `{"alg":"HS256","typ":"JWT"}`, payload) }
	refused := []struct{ name, payload, message string }{
		{"only Org", `{"Org":"acme","sub":"u","exp":` + exp + `}`, "token has no org claim"},
		{"only ORG", `{"ORG":"acme","sub":"u","exp":` + exp + `}`, "token has no org claim"},
		{"only oRG, escaped", `{"\u006fRG":"acme","sub":"u","exp":` + exp + `}`, "token has no org claim"},
		{"only EXP", `{"org":"acme","EXP":` + exp + `}`, "token has no exp claim"},
		{"only Exp", `{"org":"acme","Exp":` + exp + `}`, "token has no exp claim"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			c, f := v.Verify(sign(tc.payload))
			if c != nil {
				t.Fatalf("accepted as organisation %q", c.Org)
			}
			if f == nil || f.Reason != ReasonBadClaims || f.Message != tc.message {
				t.Fatalf("failure = %+v, want %s %q", f, ReasonBadClaims, tc.message)
			}
		})
	}
	none := func(*Claims) string { return "" }
	accepted := []struct {
		name, payload string
		check         func(c *Claims) string // "" when the claims are as expected
	}{
		{"Scope is not scope", `{"org":"acme","Scope":"billing:write","sub":"u","exp":` + exp + `}`, func(c *Claims) string {
			if c.Scope != "" || len(c.Scopes()) != 0 {
				return "scopes " + c.Scope
			}
			return ""
		}},
		{"ſcope (long s) is not scope", `{"org":"acme","ſcope":"billing:write","sub":"u","exp":` + exp + `}`, func(c *Claims) string {
			if c.Scope != "" {
				return "scopes " + c.Scope
			}
			return ""
		}},
		{"Sub, Org_Name, EMAIL, ISS, Aud, JTI are not their claims", `{"org":"acme","Sub":"S","Org_Name":"N","EMAIL":"a@b.c","ISS":"i","Aud":"a","JTI":"j","sub":"u","exp":` + exp + `}`, func(c *Claims) string {
			if c.Subject != "u" || c.OrgName != "" || c.Email != "" || c.Issuer != "" || len(c.Audience) != 0 || c.ID != "" {
				return "read " + c.Subject + c.OrgName + c.Email + c.Issuer + c.ID
			}
			return ""
		}},
		{"NBF in the future is not nbf", `{"org":"acme","NBF":` + future + `,"sub":"u","exp":` + exp + `}`, func(c *Claims) string {
			if c.NotBefore != nil {
				return "nbf read"
			}
			return ""
		}},
		{"ORG beside org is a claim Tollgate does not know", `{"org":"acme","ORG":"evil","Org":"evil","sub":"u","exp":` + exp + `}`, none},
		{"ORG before org is a claim Tollgate does not know", `{"ORG":"evil","org":"acme","sub":"u","exp":` + exp + `}`, none},
		{"EXP beside exp is a claim Tollgate does not know", `{"org":"acme","sub":"u","exp":` + exp + `,"EXP":"x"}`, none},
		{"an escaped exact name is the claim", `{"\u006frg":"acme","\u0073cope":"billing:read","sub":"u","exp":` + exp + `}`, func(c *Claims) string {
			if c.Scope != "billing:read" {
				return "scope " + c.Scope
			}
			return ""
		}},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			c, f := v.Verify(sign(tc.payload))
			if f != nil || c.Org != "acme" {
				t.Fatalf("refused: %+v", f)
			}
			if msg := tc.check(c); msg != "" {
				t.Fatal(msg)
			}
		})
	}
}

// TestEveryClaimIsReadByItsExactName: each json-tagged field of Claims (and
// of the jwt.RegisteredClaims in it) is read under its exact name and under
// no other case of it, so a claim added to the struct cannot be matched
// without regard to case, or silently not read at all.
func TestEveryClaimIsReadByItsExactName(t *testing.T) {
	var names []string
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for f := range typ.Fields() {
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
				names = append(names, name)
			}
		}
	}
	walk(reflect.TypeFor[Claims]())
	if len(names) < 11 {
		t.Fatalf("found only the claims %v", names)
	}
	for _, name := range names {
		value := `"x"`
		if name == "exp" || name == "nbf" || name == "iat" {
			value = "1700000000"
		}
		var exact, upper Claims
		if err := json.Unmarshal([]byte(`{"`+name+`":`+value+`}`), &exact); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if reflect.ValueOf(exact).IsZero() {
			t.Errorf("claim %q is not read", name)
		}
		other := strings.ToUpper(name[:1]) + name[1:]
		if err := json.Unmarshal([]byte(`{"`+other+`":`+value+`}`), &upper); err != nil {
			t.Fatalf("%s: %v", other, err)
		}
		if !reflect.ValueOf(upper).IsZero() {
			t.Errorf("%q is read as the claim %q", other, name)
		}
	}
}

// TestCheckingASegmentAllocatesNothing: a token seen for the first time has
// its header and payload checked on the stack; a check that kept the
// decoded bytes moved the buffer to the heap, 1 KiB for each segment of
// every new token.
func TestCheckingASegmentAllocatesNothing(t *testing.T) {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	payload := enc.EncodeToString([]byte(`{"org":"acme","org_name":"Acme Inc","scope":"billing:read usage:write","sub":"user-123","exp":1900000000}`))
	if n := testing.AllocsPerRun(100, func() {
		if checkSegment(header, "header") != nil || checkSegment(payload, "payload") != nil {
			t.Fatal("refused")
		}
	}); n != 0 {
		t.Fatalf("checking a header and a payload allocates %v times", n)
	}
}
