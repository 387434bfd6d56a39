package weburl_test

import (
	"fmt"
	"net/netip"
	"regexp"
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
	refused["https://example.com/%E2%80%AEgnp.exe"] = ""
	// Labels are ASCII letters, digits and hyphens only (Link allows "_").
	refused["https://exa_mple.com/h"] = "must be a domain name"
	refused["https://my_host.internal.example/"] = "must be a domain name"
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
		"https://xn--bcher-kva.example/", "https://example.com/café?q=検索",
		"https://1password.example/", "https://a1.b2.example/",
	} {
		var fe apperr.FieldErrors
		if _, ok := weburl.Check(&fe, "input.url", raw, "bad"); !ok {
			t.Errorf("Check(%q) refused: %v", raw, fe)
		}
	}
}

// Every address an IPv6 address carries is judged as if it were written
// out: NAT64, 6to4, Teredo, ISATAP and the IPv4-compatible and -mapped
// forms all reach the IPv4 address inside.
func TestForbiddenAddrJudgesEmbeddedIPv4(t *testing.T) {
	for _, v4 := range []string{"169.254.169.254", "127.0.0.1", "0.0.0.0", "224.0.0.1", "100.100.100.200"} {
		want := weburl.ForbiddenAddr(netip.MustParseAddr(v4))
		if want == "" {
			t.Fatalf("ForbiddenAddr(%s) accepted", v4)
		}
		b := netip.MustParseAddr(v4).As4()
		hi, lo := uint16(b[0])<<8|uint16(b[1]), uint16(b[2])<<8|uint16(b[3])
		for _, form := range []string{
			"::ffff:%[3]s", "::%[3]s", "::ffff:0:%[3]s", "64:ff9b::%[1]x:%[2]x", "64:ff9b:1::%[1]x:%[2]x",
			"2002:%[1]x:%[2]x::", "2002:%[1]x:%[2]x:1:2:3:4:5", "2001:0:%[1]x:%[2]x::1",
			"2001:0:4136:e378:8000:63bf:%[4]x:%[5]x", "2001:db8::5efe:%[3]s", "2001:db8::200:5efe:%[3]s",
		} {
			ip := netip.MustParseAddr(fmt.Sprintf(form, hi, lo, v4, ^hi, ^lo))
			if got := weburl.ForbiddenAddr(ip); got != want {
				t.Errorf("ForbiddenAddr(%s) = %q, want %q as for %s", ip, got, want, v4)
			}
		}
	}
	for _, ok := range []string{"2001:db8::1", "64:ff9b::c000:20a", "2002:c000:20a::", "2606:4700::6810:84e5", "192.0.2.10"} {
		if why := weburl.ForbiddenAddr(netip.MustParseAddr(ok)); why != "" {
			t.Errorf("ForbiddenAddr(%s) = %q, want accepted", ok, why)
		}
	}
}

// Each refusal reads as an English sentence: no "points to not a ...".
func TestRefusalsReadAsSentences(t *testing.T) {
	var msgs []string
	for _, ip := range []string{"127.0.0.1", "169.254.169.254", "ff02::1", "0.0.0.0", "::", "224.0.0.1", "fd00:ec2::254", "64:ff9b::a9fe:a9fe"} {
		why := weburl.ForbiddenAddr(netip.MustParseAddr(ip))
		if !strings.HasPrefix(why, "a ") && !strings.HasPrefix(why, "an ") {
			t.Errorf("ForbiddenAddr(%s) = %q, want a noun phrase after \"The URL points to\"", ip, why)
		}
		msgs = append(msgs, "The URL points to "+why+".")
	}
	for _, raw := range []string{
		"", strings.Repeat("a", weburl.MaxLength+1), "nope", "https://u:p@example.com/", "https://example.com:0/",
		"https://example.com:/", "https://[fe80::1%25eth0]/", "https://127.1/", "https://a_b.example/", "https://bücher.example/",
		"https://" + strings.Repeat("abcdefghi.", 26) + "com/", "https://example.com/\u202e",
	} {
		var fe apperr.FieldErrors
		if _, ok := weburl.Check(&fe, "input.url", raw, "The URL must be absolute."); ok || len(fe) != 1 {
			t.Fatalf("Check(%q) = %v, want one refusal", raw, fe)
		}
		msgs = append(msgs, fe[0].Message)
	}
	sentence := regexp.MustCompile(`^[A-Z][^.]*\S.*[.)]$`)
	for _, m := range msgs {
		if !sentence.MatchString(m) || strings.Contains(m, " to not ") || strings.Contains(m, "  ") {
			t.Errorf("message %q does not read as a sentence", m)
		}
	}
}

// A link Stripe gives for a browser to open is held to every rule of a
// stored URL but the letters-digits-hyphens one: its host may hold an
// underscore, as stripe-mock's portal host does, and it must be https.
func TestLinksFromThePaymentProvider(t *testing.T) {
	for _, raw := range []string{
		"https://billing.stripe.com/p/session/test_123",
		"https://sangeekp-15t6ai--customer_portal",
		"https://a_b.example.com/x",
	} {
		if !weburl.Link(raw) {
			t.Errorf("Link(%q) = false, want true", raw)
		}
	}
	refused := weburltest.RefusedHosts()
	refused["http://billing.stripe.com/p/session/test_123"] = "not https"
	refused["javascript:alert(1)"] = "not a URL"
	refused["https://_bad-.example/"] = "a label ending in a hyphen"
	for raw := range refused {
		if weburl.Link(raw) {
			t.Errorf("Link(%q) = true, want false", raw)
		}
	}
}
