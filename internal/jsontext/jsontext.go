// Package jsontext finds what encoding/json would read from a JSON text
// without a word while another reader of the same text reads it otherwise:
// a member named twice in one object (encoding/json keeps the last copy,
// many parsers the first) and an escaped surrogate that is not half of a
// pair (encoding/json reads U+FFFD, so "\ud800" and "\udc00" become one
// string). Tollgate refuses such texts where a client sends them: request
// bodies and token segments. One pass over the bytes; no allocation unless
// a name is escaped. Members walks one object's members, for the readers
// of a token's header and claims.
package jsontext

import (
	"bytes"
	"encoding/json"
)

// Ambiguity is what Check found; the zero value is nothing.
type Ambiguity struct {
	// Twice is a member name one object holds twice.
	Twice string
	// LoneSurrogate is set for an escaped surrogate not part of a pair.
	LoneSurrogate bool
}

// Found reports whether there is anything.
func (a Ambiguity) Found() bool { return a.Twice != "" || a.LoneSurrogate }

// Check scans doc, which should be JSON (what is not is left to the
// decoder that reads it next), for the first ambiguity. With foldTop the
// names of the top-level object are compared without regard to case, as
// encoding/json matches them to a struct's fields; names in maps are
// compared exactly, as a map keeps them.
func Check(doc []byte, foldTop bool) Ambiguity {
	type frame struct {
		object    bool
		keysFrom  int  // where this object's names start in keys
		expectKey bool // the next string is a member name
	}
	var stackBuf [32]frame
	stack := stackBuf[:0]
	// The names seen, as spans of doc rather than slices of it, so that
	// doc is not kept beyond the call and a caller's buffer can stay on its
	// stack; an escaped name is kept decoded.
	type key struct {
		from, to int
		unquoted []byte
	}
	var keyBuf [64]key
	keys := keyBuf[:0]
	for i := 0; i < len(doc); i++ {
		switch doc[i] {
		case '{':
			stack = append(stack, frame{object: true, keysFrom: len(keys), expectKey: true})
		case '[':
			stack = append(stack, frame{})
		case '}', ']':
			if n := len(stack); n > 0 {
				if f := stack[n-1]; f.object {
					keys = keys[:f.keysFrom]
				}
				stack = stack[:n-1]
			}
		case ',':
			if n := len(stack); n > 0 && stack[n-1].object {
				stack[n-1].expectKey = true
			}
		case '"':
			end, escaped, paired := SkipString(doc, i)
			if !paired {
				return Ambiguity{LoneSurrogate: true}
			}
			if end < 0 {
				return Ambiguity{}
			}
			start := i + 1
			i = end - 1
			n := len(stack)
			if n == 0 || !stack[n-1].object || !stack[n-1].expectKey {
				continue
			}
			stack[n-1].expectKey = false
			k := key{from: start, to: end - 1}
			if escaped { // compare names as they read: "\u006frg" is "org"
				k.unquoted, _ = unquote(doc[start-1 : end])
			}
			name := k.unquoted
			if name == nil {
				name = doc[k.from:k.to]
			}
			fold := n == 1 && foldTop
			for _, seen := range keys[stack[n-1].keysFrom:] {
				other := seen.unquoted
				if other == nil {
					other = doc[seen.from:seen.to]
				}
				if fold && bytes.EqualFold(other, name) || !fold && bytes.Equal(other, name) {
					return Ambiguity{Twice: string(name)}
				}
			}
			keys = append(keys, k)
		}
	}
	return Ambiguity{}
}

// unquote reads a JSON string, quotes included, as the text it stands for
// ("\u006frg" reads org). encoding/json is handed a copy: handing it the
// caller's bytes would move them to the heap, and a token segment is
// decoded into a buffer on the stack.
func unquote(quoted []byte) ([]byte, bool) {
	var s string
	if json.Unmarshal(append([]byte(nil), quoted...), &s) != nil {
		return nil, false
	}
	return []byte(s), true
}

// Members walks the members of one JSON object in order, without
// allocating unless a name holds an escape:
//
//	m := jsontext.MembersOf(b)
//	for m.Next() {
//		use(m.Name(), m.Value())
//	}
//	end := m.End() // -1: b does not start with a whole object
//
// It finds where members start and end; it does not validate values, which
// is the decoder's work. A member is yielded only once what follows it (a
// comma or the closing brace) has been read, so a walk over text that is
// not an object yields nothing past the fault.
type Members struct {
	b    []byte
	i    int // the next member, or after the object once done; -1 on a fault
	done bool
	// The current member: its name and value as spans of b, and its name
	// decoded when it holds an escape. Spans, not slices of b, so that
	// Next stores nothing of b and b can stay on its caller's stack.
	nameFrom, nameTo, valueFrom, valueTo int
	unquoted                             []byte
}

// MembersOf starts a walk over the object b holds, after any white space.
func MembersOf(b []byte) Members {
	i := SkipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return Members{i: -1}
	}
	m := Members{b: b, i: SkipSpace(b, i+1)}
	if m.i < len(b) && b[m.i] == '}' {
		m.i, m.done = m.i+1, true
	}
	return m
}

// Next reads the next member; false at the object's end or at a fault.
func (m *Members) Next() bool {
	if m.done || m.i < 0 {
		return false
	}
	b, i := m.b, m.i
	m.i = -1 // until the member is read whole
	if i >= len(b) || b[i] != '"' {
		return false
	}
	end, escaped, ok := SkipString(b, i)
	if !ok || end < 0 {
		return false
	}
	m.nameFrom, m.nameTo, m.unquoted = i+1, end-1, nil
	if escaped {
		if m.unquoted, ok = unquote(b[i:end]); !ok {
			return false
		}
	}
	i = SkipSpace(b, end)
	if i >= len(b) || b[i] != ':' {
		return false
	}
	start := SkipSpace(b, i+1)
	end, ok = SkipValue(b, start)
	if !ok || end <= start {
		return false // no value, one that does not end, or a lone surrogate
	}
	i = SkipSpace(b, end)
	for end > start && isSpace(b[end-1]) { // after a number or literal
		end--
	}
	switch {
	case i < len(b) && b[i] == ',':
		m.i = SkipSpace(b, i+1)
	case i < len(b) && b[i] == '}':
		m.i, m.done = i+1, true
	default:
		return false
	}
	m.valueFrom, m.valueTo = start, end
	return true
}

// Name is the current member's name as it reads, escapes decoded.
func (m *Members) Name() []byte {
	if m.unquoted != nil {
		return m.unquoted
	}
	return m.b[m.nameFrom:m.nameTo]
}

// Value is the current member's value as sent, without white space around.
func (m *Members) Value() []byte { return m.b[m.valueFrom:m.valueTo] }

// End is, once Next has returned false, the index after the object's
// closing brace, or -1 when b does not start with a whole object.
func (m *Members) End() int {
	if !m.done {
		return -1
	}
	return m.i
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// SkipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func SkipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// SkipString returns the index after the string starting at b[i] == '"'
// and whether it holds an escape; end is -1 when the string does not end.
// ok is false for an escaped surrogate that is not part of a pair, which
// encoding/json would turn into U+FFFD.
func SkipString(b []byte, i int) (end int, escaped, ok bool) {
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

// SkipValue returns the index after the value starting at b[i], or -1 when
// it does not end; nested strings are checked for lone surrogates too.
func SkipValue(b []byte, i int) (int, bool) {
	depth := 0
	for i < len(b) {
		switch c := b[i]; c {
		case '"':
			end, _, ok := SkipString(b, i)
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
