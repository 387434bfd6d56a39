package usertext_test

import (
	"strings"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/usertext"
)

func TestPrintable(t *testing.T) {
	for s, want := range map[string]bool{
		"search backend":       true,
		"Ünïcødé 検索 🙂":         true,
		"":                     true,
		"a\x00b":               false,
		"tab\tinside":          false,
		"new\nline":            false,
		"del\x7f":              false,
		"c1 \u0085 control":    false,
		"line\u2028separator":  false,
		"evil\u202Eexe.txt":    false,
		"isolate\u2066x\u2069": false,
		"bad utf-8 \xff":       false,
		"ac\u200Bme":           false, // zero-width space
		"\uFEFFacme":           false, // byte-order mark
		"ac\u00ADme":           false, // soft hyphen
		"acme\u200E":           false, // left-to-right mark
		"word\u2060joiner":     false,
		"tag\U000E0041":        false,
		"\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645":  true, // Persian, a ZWNJ between letters
		"family \U0001F468\u200D\U0001F469\u200D\U0001F467": true, // an emoji sequence
		"acme\u200D":       false, // a joiner at the end
		"\u200Cacme":       false,
		"ac\u200D\u200Dme": false,
		"ac \u200Dme":      false,
		"\u200D":           false,
		"ab\uFFFEcd":       false, // noncharacters
		"ab\uFFFFcd":       false,
		"ab\uFDD0cd":       false,
		"ab\uFDEFcd":       false,
		"ab\U0001FFFEcd":   false,
		"ab\U0010FFFFcd":   false,
		"ab\uE000cd":       false, // private use
		"ab\uF8FFcd":       false,
		"ab\U000F0000cd":   false,
		"ab\U0010FFFDcd":   false,
		"ab\uFDCFcd":       true, // the neighbours are ordinary characters
		"ab\uFDF0cd":       true,
		"ab\uFFFDcd":       true,
	} {
		if got := usertext.Printable(s); got != want {
			t.Errorf("Printable(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestEmail(t *testing.T) {
	for s, want := range map[string]bool{
		"ops@acme.io":                             true,
		"first.last+tag@sub.example.com":          true,
		strings.Repeat("a", 308) + "@example.com": true, // 320 bytes
		strings.Repeat("a", 309) + "@example.com": false,
		"":                   false,
		"not-an-email":       false,
		"Bob <bob@x.io>":     false,
		"<bob@x.io>":         false,
		"bob@localhost":      false,
		"bob@x.io (comment)": false,
		" bob@x.io":          false,
		"bob@x.io\n":         false,
		"bo\x00b@x.io":       false,
		"bob\u202E@x.io":     false,
		"a@b@x.io":           false,
		// The domain follows the rule for URL hosts.
		"a@-example.com":          false,
		"a@example-.com":          false,
		"a@exa_mple.com":          false,
		"a@example..com":          false,
		"a@bücher.example":        false,
		"a@xn--bcher-kva.example": true,
		"a@a-b.example.com":       true,
	} {
		if got := usertext.Email(s); got != want {
			t.Errorf("Email(%q) = %v, want %v", s, got, want)
		}
	}
}
