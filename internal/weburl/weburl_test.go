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
		want := weburl.ForbiddenAddr(netip.MustParseAddr(v4), nil)
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
			if got := weburl.ForbiddenAddr(ip, nil); got != want {
				t.Errorf("ForbiddenAddr(%s) = %q, want %q as for %s", ip, got, want, v4)
			}
		}
	}
	for _, ok := range []string{"2606:4700::6810:84e5", "64:ff9b::5db8:d822", "2002:5db8:d822::", "93.184.216.34"} {
		if why := weburl.ForbiddenAddr(netip.MustParseAddr(ok), nil); why != "" {
			t.Errorf("ForbiddenAddr(%s) = %q, want accepted", ok, why)
		}
	}
}

// Each refusal reads as an English sentence: no "points to not a ...".
func TestRefusalsReadAsSentences(t *testing.T) {
	var msgs []string
	for _, ip := range append([]string{"127.0.0.1", "169.254.169.254", "ff02::1", "0.0.0.0", "::", "224.0.0.1", "fd00:ec2::254", "64:ff9b::a9fe:a9fe"}, nonPublic...) {
		why := weburl.ForbiddenAddr(netip.MustParseAddr(ip), nil)
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

// nonPublic holds the first and last address of every range that is no
// public receiver's, and the cloud metadata addresses outside link-local.
var nonPublic = []string{
	"0.0.0.1", "0.255.255.255", // "this network"
	"10.0.0.0", "10.255.255.255", "172.16.0.0", "172.31.255.255", "192.168.0.0", "192.168.255.255",
	"100.64.0.0", "100.127.255.255", // carrier-grade NAT
	"192.0.0.0", "192.0.0.255", "192.0.0.9", "192.0.0.170", // IETF protocol assignments
	"192.0.2.0", "192.0.2.255", "198.51.100.0", "198.51.100.255", "203.0.113.0", "203.0.113.255",
	"192.88.99.0", "192.88.99.255",
	"198.18.0.0", "198.19.255.255",
	"240.0.0.0", "255.255.255.254", "255.255.255.255",
	"168.63.129.16", "192.0.0.192", "100.100.100.200", "fd00:ec2::254",
	"fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fd12:3456::1", // unique local
	"fec0::", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", // site-local
	"100::", "100::ffff:ffff:ffff:ffff", "100:0:0:1::1", // discard-only, dummy
	"2001::", "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:1::1", "2001:2::1", "2001:10::1", "2001:20::1",
	"2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "3fff::1", "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
	"64:ff9b:1::5db8:d822", // local-use NAT64, whatever it carries
	"5f00::1",
	"4000::1", "1000::1", "::2:0:1", "e000::1", // outside 2000::/3 and carrying no IPv4 address
	"2001:db8::1%eth0", "fd00::1%eth0", // a zone changes nothing
}

// TestForbiddenAddrRefusesEveryNonPublicRange: in production Tollgate
// connects to public addresses only. Every private, shared, reserved,
// documentation and other special-purpose range is refused, written out
// or carried inside an IPv6 address, while the addresses just outside
// each range, and the globally reachable exceptions, are accepted.
func TestForbiddenAddrRefusesEveryNonPublicRange(t *testing.T) {
	for _, raw := range nonPublic {
		ip := netip.MustParseAddr(raw)
		if why := weburl.ForbiddenAddr(ip, nil); why == "" {
			t.Errorf("ForbiddenAddr(%s) accepted", ip)
		}
		if ip.Is4() {
			b := ip.As4()
			for _, form := range []string{"64:ff9b::%02x%02x:%02x%02x", "2002:%02x%02x:%02x%02x::1", "::ffff:%d.%d.%d.%d"} {
				f := fmt.Sprintf(form, b[0], b[1], b[2], b[3])
				if why := weburl.ForbiddenAddr(netip.MustParseAddr(f), nil); why == "" {
					t.Errorf("ForbiddenAddr(%s), carrying %s, accepted", f, ip)
				}
			}
		}
	}
	for _, raw := range []string{
		"9.255.255.255", "11.0.0.0", "172.15.255.255", "172.32.0.0", "192.167.255.255", "192.169.0.0",
		"100.63.255.255", "100.128.0.0", "192.0.1.255", "192.0.3.0", "198.17.255.255", "198.20.0.0",
		"203.0.112.255", "203.0.114.0", "223.255.255.255", "1.0.0.0", "168.63.129.15",
		"192.31.196.1", "192.52.193.1", "192.175.48.1", // AS112, AMT
		"2001:200::", "2001:db7:ffff::1", "2001:db9::", "2001:3::1", "2001:4:112::1", "2620:4f:8000::1",
		"2000::1", "3fff:1000::", "3ffe::1", "2a00:1450:4001::1", "64:ff9b::808:808", "2600::1",
	} {
		if why := weburl.ForbiddenAddr(netip.MustParseAddr(raw), nil); why != "" {
			t.Errorf("ForbiddenAddr(%s) = %q, want accepted", raw, why)
		}
	}
}

// TestAllowedNetworksAdmitOnlyThemselves: an operator's allow-list lets a
// private network through, written out or carried in IPv6, and nothing
// next to it; the host's own edge and metadata addresses stay refused even
// when a listed network holds them.
func TestAllowedNetworksAdmitOnlyThemselves(t *testing.T) {
	allowed := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd12:3456::/48")}
	for raw, want := range map[string]bool{
		"10.1.2.3": true, "10.1.255.255": true, "64:ff9b::a01:203": true, "fd12:3456::1": true, "fd12:3456:0:ffff::9": true,
		"10.2.0.1": false, "10.0.255.255": false, "192.168.1.1": false, "fd12:3457::1": false, "64:ff9b::a02:1": false,
		// An IPv6 address carrying an allowed IPv4 one inside a range
		// that is not allowed: every address it carries must pass.
		"2001:db8::5efe:a01:203": false,
	} {
		if got := weburl.ForbiddenAddr(netip.MustParseAddr(raw), allowed) == ""; got != want {
			t.Errorf("ForbiddenAddr(%s, %v) accepted = %v, want %v", raw, allowed, got, want)
		}
	}
	for raw, network := range map[string]string{
		"127.0.0.1": "127.0.0.0/8", "169.254.169.254": "169.254.0.0/16", "168.63.129.16": "168.63.0.0/16",
		"192.0.0.192": "192.0.0.0/24", "100.100.100.200": "100.64.0.0/10", "fd00:ec2::254": "fd00::/8",
		"255.255.255.255": "240.0.0.0/4", "0.0.0.0": "0.0.0.0/0", "fe80::1": "::/0", "64:ff9b::7f00:1": "::/0",
	} {
		if why := weburl.ForbiddenAddr(netip.MustParseAddr(raw), []netip.Prefix{netip.MustParsePrefix(network)}); why == "" {
			t.Errorf("ForbiddenAddr(%s) with %s allowed: accepted, want refused", raw, network)
		}
	}
}
