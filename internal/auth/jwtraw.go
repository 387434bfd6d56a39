package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/jsontext"
)

// checkRawSegments looks at a token's header and payload JSON as sent,
// before golang-jwt (and encoding/json) read them, for what encoding/json
// would silently smooth over and another reader of the same token might
// read differently: a member named twice (encoding/json keeps the last, many
// parsers the first), bytes that are not UTF-8 or an escaped lone surrogate
// (encoding/json substitutes U+FFFD), a header with crit (RFC 7515 §4.1.11:
// extensions Tollgate does not understand must not be ignored), and a
// segment that is not exactly one JSON object. What it cannot decode it
// leaves to golang-jwt, which refuses it as malformed.
func checkRawSegments(token string) *Failure {
	header, rest, ok := strings.Cut(token, ".")
	if !ok {
		return nil
	}
	payload, _, ok := strings.Cut(rest, ".")
	if !ok {
		return nil
	}
	if f := checkSegment(header, "header"); f != nil {
		return f
	}
	return checkSegment(payload, "payload")
}

// checkSegment decodes one base64url segment into a stack buffer (a heap
// one only for an unusually large segment) and checks its JSON.
func checkSegment(seg, which string) *Failure {
	var stack [1024]byte
	buf := stack[:]
	if n := base64.RawURLEncoding.DecodedLen(len(seg)); n > len(buf) {
		buf = make([]byte, n)
	}
	// Decode only reads src; the string's bytes are not copied.
	src := unsafe.Slice(unsafe.StringData(seg), len(seg))
	n, err := base64.RawURLEncoding.Decode(buf, src)
	if err != nil {
		return nil // golang-jwt refuses it as malformed
	}
	return checkJSON(buf[:n], which)
}

// checkJSON checks one decoded segment: UTF-8, one object, nothing two
// readers could read differently (jsontext: a name twice, compared exactly,
// as golang-jwt reads the header into a map and decodeClaims reads claims
// by their exact names; "ORG" beside "org" is a claim Tollgate does not
// know, ignored as RFC 7519 §4 says of such claims), and a header without
// crit. The values are not validated: encoding/json does that next.
func checkJSON(b []byte, which string) *Failure {
	if !utf8.Valid(b) {
		return notUTF8(which)
	}
	i := jsontext.SkipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return &Failure{Reason: ReasonMalformed, Message: "the token's " + which + " is not a JSON object"}
	}
	switch a := jsontext.Check(b, false); {
	case a.LoneSurrogate:
		return notUTF8(which)
	case a.Twice != "":
		return &Failure{Reason: ReasonMalformed, Message: "the token's " + which + " names " + quoteName(a.Twice) + " twice"}
	}
	// The top-level members, for crit and for anything after the object.
	m := jsontext.MembersOf(b)
	for m.Next() {
		if which == "header" && string(m.Name()) == "crit" {
			return &Failure{Reason: ReasonMalformed, Message: "the token's header lists critical extensions (crit); Tollgate understands none, so it refuses the token"}
		}
	}
	end := m.End()
	if end < 0 {
		return nil // not JSON: encoding/json says so
	}
	if jsontext.SkipSpace(b, end) != len(b) {
		return &Failure{Reason: ReasonMalformed, Message: "the token's " + which + " has data after its JSON object"}
	}
	return nil
}

// notUTF8 is a segment that is not UTF-8 text. A payload's is a claim
// problem, as the README says of org; a header's makes the token malformed.
func notUTF8(which string) *Failure {
	reason := ReasonMalformed
	if which == "payload" {
		reason = ReasonBadClaims
	}
	return &Failure{Reason: reason, Message: "the token's " + which + " is not valid UTF-8 (invalid bytes or an unpaired \\u surrogate escape)"}
}

// quoteName quotes a member name for a message, at most 64 bytes of it.
func quoteName(name string) string {
	if len(name) > 64 {
		name = name[:64]
		for len(name) > 0 && !utf8.ValidString(name) {
			name = name[:len(name)-1]
		}
	}
	return strconv.Quote(name)
}

// errClaimsNotObject is a payload that is not a JSON object; checkJSON
// refuses it before golang-jwt decodes, so this is a second line only.
var errClaimsNotObject = errors.New("the token's payload is not a JSON object")

// decodeClaims reads the top-level members of a payload into c by their
// exact names; a name in another case ("Org", "EXP") is a claim Tollgate
// does not know and is ignored like any other. encoding/json has checked
// that b is JSON before it calls Claims.UnmarshalJSON, and checkJSON that no
// name appears twice, so the walk only has to find the members. Values are
// decoded as encoding/json decoded them into the struct's fields, so types
// and errors are unchanged: only the name matching differs.
func decodeClaims(b []byte, c *Claims) error {
	m := jsontext.MembersOf(b)
	for m.Next() {
		if err := c.set(m.Name(), m.Value()); err != nil {
			return err
		}
	}
	if m.End() < 0 {
		return errClaimsNotObject
	}
	return nil
}

// set decodes the value of the claim named exactly name; other names are
// ignored. Every json-tagged field of Claims and jwt.RegisteredClaims has
// its case here (TestEveryClaimIsReadByItsExactName checks).
func (c *Claims) set(name, v []byte) error {
	switch string(name) { // no allocation: the compiler compares in place
	case "org":
		return decodeString(v, &c.Org)
	case "org_name":
		return decodeString(v, &c.OrgName)
	case "email":
		return decodeString(v, &c.Email)
	case "scope":
		return decodeString(v, &c.Scope)
	case "iss":
		return decodeString(v, &c.Issuer)
	case "sub":
		return decodeString(v, &c.Subject)
	case "jti":
		return decodeString(v, &c.ID)
	case "azp":
		return decodeString(v, &c.AuthorizedParty)
	case "aud":
		return json.Unmarshal(v, &c.Audience)
	case "exp":
		return decodeDate(v, "exp", &c.ExpiresAt)
	case "nbf":
		return decodeDate(v, "nbf", &c.NotBefore)
	case "iat":
		return decodeDate(v, "iat", &c.IssuedAt)
	}
	return nil
}

// decodeString reads a JSON string without encoding/json's reflection
// when it holds no escape (the usual claim); anything else, escapes and
// errors included, goes to encoding/json.
func decodeString(v []byte, dst *string) error {
	if n := len(v); n >= 2 && v[0] == '"' && v[n-1] == '"' {
		inner := v[1 : n-1]
		if bytes.IndexByte(inner, '\\') < 0 && bytes.IndexByte(inner, '"') < 0 && utf8.Valid(inner) {
			*dst = string(inner)
			return nil
		}
	}
	return json.Unmarshal(v, dst)
}

// decodeDate reads exp, nbf or iat, which must be a JSON number (RFC 7519's
// NumericDate): golang-jwt's NumericDate also reads a string such as
// "1700000000", so an issuer's bug (or a token made by hand) would pass
// here and fail elsewhere. The number must be a time from clock.MinYear to
// clock.MaxYear: golang-jwt converts it to int64 seconds unchecked, and a
// float past 2^63 converts to the most negative int64, so 1e20 read as
// long ago (a far future nbf passed, a far future exp was "expired").
// Checking the float before any conversion leaves nothing to wrap, and
// every later time.Time sum (the leeway) stays inside the years.
func decodeDate(v []byte, name string, dst **jwt.NumericDate) error {
	if !isNumber(v) {
		return fmt.Errorf("%w: %s", errDateNotNumber, name)
	}
	v = bytes.TrimSpace(v)
	// encoding/json has checked that v is a JSON number, which ParseFloat
	// reads exactly; the string only lives for the call.
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(v), len(v)), 64)
	// 1<<62 first: float64 to int64 of a value past 2^63 is not defined.
	if err != nil || !(f > -(1<<62) && f < 1<<62) {
		return fmt.Errorf("%w: %s", errDateOutOfRange, name)
	}
	sec, frac := math.Modf(f)
	if !clock.InYears(int64(sec)) {
		return fmt.Errorf("%w: %s", errDateOutOfRange, name)
	}
	*dst = jwt.NewNumericDate(time.Unix(int64(sec), int64(frac*1e9)))
	return nil
}
