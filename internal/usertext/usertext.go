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
// is stored), which make two different names look the same; nor Unicode
// noncharacters (U+FDD0–U+FDEF and the last two code points of every
// plane, U+FFFE and U+FFFF among them) or private-use characters
// (U+E000–U+F8FF, planes 15 and 16), which have no agreed glyph and show
// differently, or not at all, from one reader's fonts to the next. The two
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
		case unicode.Is(unicode.Cf, r), unicode.Is(unicode.Co, r), noncharacter(r):
			return false
		}
		prev = r
	}
	return true
}

// noncharacter reports whether r is one of Unicode's 66 noncharacters.
func noncharacter(r rune) bool {
	return (r >= 0xFDD0 && r <= 0xFDEF) || r&0xFFFE == 0xFFFE
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
// domain is a DomainName of at least two labels: what createApiKey's
// contactEmail and a token's email claim must be.
func Email(s string) bool {
	if s == "" || len(s) > MaxEmailLen || !Printable(s) {
		return false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return false
	}
	at := strings.LastIndex(s, "@")
	domain := s[at+1:]
	return at > 0 && strings.Contains(domain, ".") && DomainName(domain)
}

// DomainName reports whether name (without a trailing dot) is a domain
// name as Tollgate stores one, in URL hosts and email addresses alike: at
// most 253 bytes of labels separated by single dots, each label 1 to 63
// ASCII letters, digits and hyphens, not starting or ending with a hyphen.
// An international name is stored in its xn-- (punycode) form.
func DomainName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for _, l := range strings.Split(name, ".") {
		if !DomainLabel(l) {
			return false
		}
	}
	return true
}

// DomainLabel reports whether l is one label of a DomainName.
func DomainLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
