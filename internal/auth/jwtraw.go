package auth

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
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

// maxMembers is how many top-level names are compared without allocating.
const maxMembers = 32

// checkJSON checks one decoded segment: UTF-8, one object, each top-level
// name once. Payload names are compared as encoding/json matches them to
// claims, without regard to case ("org" and "ORG" both set Org); header
// names exactly, as golang-jwt reads the header into a map. The value of
// each member is skipped, not validated: encoding/json does that next.
func checkJSON(b []byte, which string) *Failure {
	if !utf8.Valid(b) {
		return notUTF8(which)
	}
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return &Failure{Reason: ReasonMalformed, Message: "the token's " + which + " is not a JSON object"}
	}
	// Names are kept as offsets into b (or, escaped, decoded into
	// unescaped), never as slices of b: a slice that might outgrow the
	// array would move the caller's stack buffer to the heap.
	var spans [maxMembers]nameSpan
	seen := spans[:0]
	var unescaped []string
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '"' {
				return nil // not JSON: encoding/json says so
			}
			end, escaped, ok := skipString(b, i)
			if !ok {
				return notUTF8(which)
			}
			if end < 0 {
				return nil
			}
			sp := nameSpan{i + 1, end - 1}
			if escaped {
				var s string
				// A copy: handing b itself to encoding/json would move
				// the caller's stack buffer to the heap.
				if json.Unmarshal(append([]byte(nil), b[i:end]...), &s) != nil {
					return nil
				}
				sp = nameSpan{-1 - len(unescaped), 0}
				unescaped = append(unescaped, s)
			}
			name := sp.of(b, unescaped)
			for _, prev := range seen {
				p := prev.of(b, unescaped)
				if p == name || (which == "payload" && strings.EqualFold(p, name)) {
					return &Failure{Reason: ReasonMalformed, Message: "the token's " + which + " names " + quoteName(name) + " twice"}
				}
			}
			seen = append(seen, sp)
			if which == "header" && name == "crit" {
				return &Failure{Reason: ReasonMalformed, Message: "the token's header lists critical extensions (crit); Tollgate understands none, so it refuses the token"}
			}
			i = skipSpace(b, end)
			if i >= len(b) || b[i] != ':' {
				return nil
			}
			i, ok = skipValue(b, skipSpace(b, i+1))
			if !ok {
				return notUTF8(which)
			}
			if i < 0 {
				return nil
			}
			i = skipSpace(b, i)
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
			i = skipSpace(b, i+1)
		}
	}
	if skipSpace(b, i) != len(b) {
		return &Failure{Reason: ReasonMalformed, Message: "the token's " + which + " has data after its JSON object"}
	}
	return nil
}

// nameSpan is a member name: b[off:end], or unescaped[-1-off].
type nameSpan struct{ off, end int }

// of returns the name; it shares b's memory, so it must not be kept.
func (n nameSpan) of(b []byte, unescaped []string) string {
	if n.off < 0 {
		return unescaped[-1-n.off]
	}
	return unsafe.String(unsafe.SliceData(b[n.off:]), n.end-n.off)
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

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'
// and whether it holds an escape; end is -1 when the string does not end.
// ok is false for an escaped surrogate that is not part of a pair, which
// encoding/json would turn into U+FFFD.
func skipString(b []byte, i int) (end int, escaped, ok bool) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i + 1, escaped, true
		case '\\':
			escaped = true
			if i+1 >= len(b) {
				return -1, escaped, true
			}
			if b[i+1] != 'u' {
				i++
				continue
			}
			r, good := hex4(b, i+2)
			if !good {
				return -1, escaped, true
			}
			switch {
			case r >= 0xDC00 && r <= 0xDFFF:
				return 0, escaped, false // a low surrogate alone
			case r >= 0xD800 && r <= 0xDBFF:
				lo, good := rune(0), i+11 < len(b) && b[i+6] == '\\' && b[i+7] == 'u'
				if good {
					lo, good = hex4(b, i+8)
				}
				if !good || lo < 0xDC00 || lo > 0xDFFF {
					return 0, escaped, false
				}
				i += 11
			default:
				i += 5
			}
		}
	}
	return -1, escaped, true
}

// hex4 reads four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// skipValue returns the index after the value starting at b[i], or -1 when
// it does not end; nested strings are checked for lone surrogates too.
func skipValue(b []byte, i int) (int, bool) {
	depth := 0
	for i < len(b) {
		switch c := b[i]; c {
		case '"':
			end, _, ok := skipString(b, i)
			if !ok || end < 0 {
				return end, ok
			}
			i = end
			if depth == 0 {
				return i, true
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i, true // the end of the enclosing object
			}
			depth--
			if depth == 0 {
				return i + 1, true
			}
		case ',':
			if depth == 0 {
				return i, true
			}
		}
		i++
	}
	return -1, true
}
