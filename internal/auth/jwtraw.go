package auth

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

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
// readers could read differently (jsontext: a name twice, payload names in
// any case, as encoding/json matches them to claims; header names exactly,
// as golang-jwt reads the header into a map), and a header without crit.
// The values are not validated: encoding/json does that next.
func checkJSON(b []byte, which string) *Failure {
	if !utf8.Valid(b) {
		return notUTF8(which)
	}
	i := jsontext.SkipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return &Failure{Reason: ReasonMalformed, Message: "the token's " + which + " is not a JSON object"}
	}
	switch a := jsontext.Check(b, which == "payload"); {
	case a.LoneSurrogate:
		return notUTF8(which)
	case a.Twice != "":
		return &Failure{Reason: ReasonMalformed, Message: "the token's " + which + " names " + quoteName(a.Twice) + " twice"}
	}
	// The top-level members, for crit and for anything after the object.
	i = jsontext.SkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '"' {
				return nil // not JSON: encoding/json says so
			}
			end, escaped, _ := jsontext.SkipString(b, i)
			if end < 0 {
				return nil
			}
			if which == "header" && nameIs(b[i:end], escaped, "crit") {
				return &Failure{Reason: ReasonMalformed, Message: "the token's header lists critical extensions (crit); Tollgate understands none, so it refuses the token"}
			}
			i = jsontext.SkipSpace(b, end)
			if i >= len(b) || b[i] != ':' {
				return nil
			}
			if i, _ = jsontext.SkipValue(b, jsontext.SkipSpace(b, i+1)); i < 0 {
				return nil
			}
			i = jsontext.SkipSpace(b, i)
			if i >= len(b) {
				return nil
			}
			if b[i] == '}' {
				i++
				break
			}
			if b[i] != ',' {
				return nil
			}
			i = jsontext.SkipSpace(b, i+1)
		}
	}
	if jsontext.SkipSpace(b, i) != len(b) {
		return &Failure{Reason: ReasonMalformed, Message: "the token's " + which + " has data after its JSON object"}
	}
	return nil
}

// nameIs reports whether quoted, a JSON string with its quotes, reads as
// name.
func nameIs(quoted []byte, escaped bool, name string) bool {
	if !escaped {
		return string(quoted[1:len(quoted)-1]) == name
	}
	var s string
	// A copy: handing the caller's stack buffer to encoding/json would
	// move it to the heap.
	return json.Unmarshal(append([]byte(nil), quoted...), &s) == nil && s == name
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
