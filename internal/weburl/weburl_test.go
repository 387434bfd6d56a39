package weburl_test

import (
	"strings"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/weburl"
	"github.com/tollgate-billing/tollgate/internal/weburl/weburltest"
)

// TestURLsWithCredentialsAreRefused: a user name, a password or a bare @
// before the host is refused as INVALID_URL with a message that says why,
// whatever else the URL is; the same URL without them is accepted.
func TestURLsWithCredentialsAreRefused(t *testing.T) {
	for _, raw := range []string{
		"https://user:pass@hooks.acme.test/tollgate",
		"https://user@hooks.acme.test/",
		"https://:pass@hooks.acme.test/",
		"https://@hooks.acme.test/",
		"http://u:p@localhost:3000/hooks",
		"https://user%40x:p%3Aw@hooks.acme.test:8443/a?b=c",
		"HTTPS://USER:PASS@HOOKS.ACME.TEST/",
	} {
		var fe apperr.FieldErrors
		if _, ok := weburl.Check(&fe, "input.url", raw, "bad"); ok || len(fe) != 1 || fe[0].Code != weburl.CodeInvalidURL || !strings.Contains(fe[0].Message, "Credentials in URLs are not allowed") {
			t.Errorf("Check(%q) = %v, want INVALID_URL about credentials", raw, fe)
		}
	}
	for _, raw := range []string{"https://hooks.acme.test/tollgate", "https://hooks.acme.test/path/with@sign?q=a@b#x@y"} {
		var fe apperr.FieldErrors
		if _, ok := weburl.Check(&fe, "input.url", raw, "bad"); !ok {
			t.Errorf("Check(%q) refused: %v", raw, fe)
		}
	}
}

func TestRedact(t *testing.T) {
	for raw, want := range map[string]string{
		"https://user:pass@hooks.acme.test/t?a=1": "https://hooks.acme.test/t?a=1",
		"https://token@hooks.acme.test/":          "https://hooks.acme.test/",
		"https://hooks.acme.test/p@th":            "https://hooks.acme.test/p@th",
		"not a url at all \x7f":                   "not a url at all \x7f",
	} {
		if got := weburl.Redact(raw); got != want {
			t.Errorf("Redact(%q) = %q, want %q", raw, got, want)
		}
	}
	for text, want := range map[string]string{
		`POST https://user:pass@hooks.acme.test/: HTTP 500`:                          `POST https://hooks.acme.test/: HTTP 500`,
		`Post "https://user:***@hooks.acme.test/": dial tcp: connection refused`:     `Post "https://hooks.acme.test/": dial tcp: connection refused`,
		`failed for 3 days; last error: POST http://tok@h.test/x and https://a:b@c/`: `failed for 3 days; last error: POST http://h.test/x and https://c/`,
		`mail ops@acme.io about https://hooks.acme.test/p@th`:                        `mail ops@acme.io about https://hooks.acme.test/p@th`,
	} {
		if got := weburl.RedactText(text); got != want {
			t.Errorf("RedactText(%q) = %q, want %q", text, got, want)
		}
	}
}

// TestHostsAndPortsAreChecked: every stored URL (webhook endpoints, Checkout
// and Portal return URLs) names a real host and port. A name ending in a
// number (127.1, 2130706433, 0x7f000001) is an IPv4 address to browsers and
// C resolvers, so it would reach an address no check of the text saw.
func TestHostsAndPortsAreChecked(t *testing.T) {
	refused := weburltest.RefusedHosts()
	refused["https://[::ffff:127.0.0.1]/"] = ""
	for raw, says := range refused {
		var fe apperr.FieldErrors
		_, ok := weburl.Check(&fe, "input.url", raw, "bad")
		if says == "" {
			if !ok {
				t.Errorf("Check(%q) refused: %v", raw, fe)
			}
			continue
		}
		if ok || len(fe) != 1 || fe[0].Code != weburl.CodeInvalidURL || !strings.Contains(fe[0].Message, says) {
			t.Errorf("Check(%q) = %v, want INVALID_URL saying %q", raw, fe, says)
		}
	}
	for _, raw := range []string{
		"https://hooks.acme.test/", "https://hooks.acme.test./x", "https://hooks.acme.test:8443/",
		"https://192.0.2.10/", "https://[2001:db8::1]:8443/", "http://localhost:3000/hooks",
		"https://bücher.example/", "https://xn--bcher-kva.example/", "https://my_host.internal.example/",
		"https://1password.example/", "https://a1.b2.example/",
	} {
		var fe apperr.FieldErrors
		if _, ok := weburl.Check(&fe, "input.url", raw, "bad"); !ok {
			t.Errorf("Check(%q) refused: %v", raw, fe)
		}
	}
}
