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
// separators, or the bidirectional overrides and isolates that make text
// display in another order than it is stored.
func Printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || hidden(r) {
			return false
		}
	}
	return true
}

func hidden(r rune) bool {
	switch {
	case r == '\u2028', r == '\u2029': // line and paragraph separators
		return true
	case r >= '\u202A' && r <= '\u202E': // bidi embeddings and overrides
		return true
	case r >= '\u2066' && r <= '\u2069': // bidi isolates
		return true
	}
	return false
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
