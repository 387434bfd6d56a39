// Package jsontext finds what encoding/json would read from a JSON text
// without a word while another reader of the same text reads it otherwise:
// a member named twice in one object (encoding/json keeps the last copy,
// many parsers the first) and an escaped surrogate that is not half of a
// pair (encoding/json reads U+FFFD, so "\ud800" and "\udc00" become one
// string). Tollgate refuses such texts where a client sends them: request
// bodies and token segments. One pass over the bytes; no allocation unless
// a name is escaped.
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
	var keyBuf [64][]byte
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
			name := doc[start : end-1]
			if escaped { // compare names as they read: "\u006frg" is "org"
				var s string
				if json.Unmarshal(doc[start-1:end], &s) == nil {
					name = []byte(s)
				}
			}
			same := bytes.Equal
			if n == 1 && foldTop {
				same = bytes.EqualFold
			}
			for _, k := range keys[stack[n-1].keysFrom:] {
				if same(k, name) {
					return Ambiguity{Twice: string(name)}
				}
			}
			keys = append(keys, name)
		}
	}
	return Ambiguity{}
}

func SkipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
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
