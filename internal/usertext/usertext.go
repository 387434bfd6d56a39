// Package usertext checks the free text that clients and tokens hand
// Tollgate to store and later show to people: names and email addresses.
// Every such input is judged by the same rules, whether it arrives as a
// mutation's input or as a token's claim.
package usertext

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxEmailLen is the longest address RFC 5321 allows, in bytes.
const MaxEmailLen = 320

// Printable reports whether s is valid UTF-8 without control characters
// (NUL among them, which Postgres cannot store in text), line or paragraph
// separators, or invisible formatting characters (Unicode's Cf: zero-width
// spaces, byte-order marks, soft hyphens, and the bidirectional marks,
// overrides and isolates that make text display in another order than it
// is stored), which make two different names look the same. The two
// joiners, U+200C and U+200D, which Persian, Indic scripts and emoji
// sequences need, are allowed between two visible characters.
func Printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	prev := rune(-1)
	for i, r := range s {
		switch {
		case unicode.IsControl(r), r == '\u2028', r == '\u2029':
			return false
		case r == zwnj || r == zwj:
			next, _ := utf8.DecodeRuneInString(s[i+utf8.RuneLen(r):])
			if !visible(prev) || i+utf8.RuneLen(r) == len(s) || !visible(next) {
				return false
			}
		case unicode.Is(unicode.Cf, r):
			return false
		}
		prev = r
	}
	return true
}

const (
	zwnj = '\u200C'
	zwj  = '\u200D'
)

// visible is a character a joiner may stand beside: a graphic one that is
// not a space and not itself a joiner (-1: none).
func visible(r rune) bool {
	return r >= 0 && r != zwnj && r != zwj && unicode.IsGraphic(r) && !unicode.IsSpace(r)
}

// Email reports whether s is a bare email address (no display name, no
// angle brackets, no comments) of at most MaxEmailLen bytes, printable, whose
// domain has a dot: what createApiKey's contactEmail and a token's email
// claim must be.
func Email(s string) bool {
	if s == "" || len(s) > MaxEmailLen || !Printable(s) {
		return false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return false
	}
	at := strings.LastIndex(s, "@")
	return at > 0 && strings.Contains(s[at+1:], ".")
}
