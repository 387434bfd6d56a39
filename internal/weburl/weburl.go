// Package weburl checks the absolute URLs clients hand Tollgate to store and
// later send someone to or call (Checkout and Portal return URLs, outbound
// webhook endpoints), so every such input is refused the same way before it
// reaches the database.
package weburl

import (
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/usertext"
)

// MaxLength bounds a URL. Stripe's own limit is higher, but a longer one is
// a mistake or an attempt to store data.
const MaxLength = 2000

// Codes of the field errors Check adds.
const (
	CodeRequired   = "REQUIRED"
	CodeTooLong    = "TOO_LONG"
	CodeInvalidURL = "INVALID_URL"
)

// Check parses raw as an absolute http or https URL that can be stored as
// text (valid UTF-8, no NUL: url.Parse accepts invalid UTF-8, which Postgres
// would refuse) and shown: no character anywhere in it that
// usertext.Printable refuses (a right-to-left override in a path makes
// ".../\u202egnp.exe" display as ".../exe.png"); such a character must be
// percent-encoded. On failure it adds a field error, with invalidMsg for
// a malformed URL, and returns false.
func Check(fe *apperr.FieldErrors, field, raw, invalidMsg string) (*url.URL, bool) {
	return check(fe, field, raw, invalidMsg, false)
}

// Link reports whether raw is an https link a payment provider gave for a
// browser to open (a Checkout, portal or invoice page): what Check accepts,
// except that a host label may hold an underscore. Browsers open such
// names and DNS allows them; the letters-digits-hyphens rule is for hosts
// clients register and Tollgate dials, not for pages of Stripe's that only
// a customer's browser visits (stripe-mock's portal host has one).
func Link(raw string) bool {
	var fe apperr.FieldErrors
	u, ok := check(&fe, "", raw, "", true)
	return ok && u.Scheme == "https"
}

func check(fe *apperr.FieldErrors, field, raw, invalidMsg string, underscore bool) (*url.URL, bool) {
	if strings.TrimSpace(raw) == "" {
		fe.Add(field, CodeRequired, "A URL is required.")
		return nil, false
	}
	if len(raw) > MaxLength {
		fe.Add(field, CodeTooLong, "The URL must be at most 2,000 characters.")
		return nil, false
	}
	u, err := url.Parse(raw)
	if err != nil || !store.StorableText(raw) || strings.ContainsAny(raw, " \t\r\n") ||
		(u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		fe.Add(field, CodeInvalidURL, invalidMsg)
		return nil, false
	}
	if !usertext.Printable(raw) {
		fe.Add(field, CodeInvalidURL, "The URL contains a control, invisible or private-use character: remove it or percent-encode it.")
		return nil, false
	}
	if u.User != nil {
		// A user name or password in the URL would be stored and shown to
		// every reader of the organisation (and put in Stripe's redirect).
		fe.Add(field, CodeInvalidURL, "Credentials in URLs are not allowed: remove the user:password@ before the host.")
		return nil, false
	}
	if msg := checkHost(u, underscore); msg != "" {
		fe.Add(field, CodeInvalidURL, msg)
		return nil, false
	}
	return u, true
}

// checkHost says what is wrong with u's host and port, or "". A host is a
// domain name (usertext.DomainName: ASCII labels of letters, digits and
// hyphens; an international name in its xn-- form), a full dotted IPv4
// address, or a bracketed IPv6 address without a zone. A name whose last label is a number (127.1, 2130706433,
// 0x7f000001, 0251.0376.0251.0376) is refused: browsers and C resolvers
// read it as an IPv4 address, so it would reach an address no check of
// the text saw.
// With underscore, a label may also hold "_" (Link).
func checkHost(u *url.URL, underscore bool) string {
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "The port must be a number from 1 to 65535."
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return "The port after the host's colon is missing."
	}
	host := u.Hostname()
	if strings.HasPrefix(u.Host, "[") {
		if ip, err := netip.ParseAddr(host); err != nil || !ip.Is6() || ip.Zone() != "" {
			return "The host in brackets must be an IPv6 address without a zone."
		}
		return ""
	}
	name := strings.TrimSuffix(host, ".")
	if len(name) > 253 {
		return "The host name must be at most 253 characters."
	}
	labels := strings.Split(name, ".")
	if last := labels[len(labels)-1]; numeric(last) {
		if ip, err := netip.ParseAddr(name); err != nil || !ip.Is4() {
			return "The host must be a domain name or a full IPv4 address like 192.0.2.10 (a name ending in a number, such as 127.1 or 0x7f000001, is read as an address)."
		}
		return ""
	}
	if strings.IndexFunc(name, func(r rune) bool { return r >= utf8.RuneSelf }) >= 0 {
		return "The host must be written in ASCII: give an international domain name in its punycode form (xn--…)."
	}
	if underscore {
		name = strings.ReplaceAll(name, "_", "u")
	}
	if !usertext.DomainName(name) {
		return "The host must be a domain name: labels of letters, digits and hyphens, separated by single dots, none starting or ending with a hyphen."
	}
	return ""
}

// numeric reports whether a label is a number as the WHATWG URL standard's
// IPv4 parser reads one: decimal digits, or 0x followed by hex digits.
func numeric(l string) bool {
	if len(l) >= 2 && (l[:2] == "0x" || l[:2] == "0X") {
		l = l[2:]
		return strings.Trim(l, "0123456789abcdefABCDEF") == ""
	}
	return l != "" && strings.Trim(l, "0123456789") == ""
}

// Redact returns raw without a user name or password, for URLs stored
// before Check refused them; anything it cannot parse is returned as is.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// userinfoInText is the userinfo part of a URL inside free text, such as an
// error message that quotes the URL (Go's own errors quote it with the
// password as "***", and the user name in clear).
var userinfoInText = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s"']*@`)

// RedactText removes user names and passwords from every URL in s.
func RedactText(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return userinfoInText.ReplaceAllString(s, "$1")
}

// metadataAddrs are cloud metadata services outside the link-local ranges:
// AWS's IPv6 one, Alibaba's, Azure's WireServer and Oracle Cloud's. Like
// the host's own edge, no allow-list admits them.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("100.100.100.200"),
	netip.MustParseAddr("168.63.129.16"),
	netip.MustParseAddr("192.0.0.192"),
}

// limitedBroadcast is 255.255.255.255, every host of the local network.
var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// nonPublicRange is a range of the IANA IPv4 and IPv6 special-purpose
// address registries that is not a public receiver's.
type nonPublicRange struct {
	prefix netip.Prefix
	what   string // the end of "The URL points to …"
}

// nonPublicRanges are the special-purpose ranges netip's own properties do
// not name. Left out, as globally reachable unicast networks: AS112
// (192.31.196.0/24, 192.175.48.0/24, 2001:4:112::/48, 2620:4f:8000::/48)
// and AMT (192.52.193.0/24, 2001:3::/32). The anycast service addresses
// inside 192.0.0.0/24 and 2001::/23 (PCP, TURN, DNS-SD) are refused with
// their ranges: no webhook receiver lives there. NAT64's 64:ff9b::/96,
// 6to4's 2002::/16 and the IPv4-mapped forms are judged by the IPv4
// address they carry (EmbeddedIPv4).
var nonPublicRanges = func() []nonPublicRange {
	var out []nonPublicRange
	for _, r := range []struct {
		what     string
		prefixes []string
	}{
		{"a \"this network\" address (0.0.0.0/8), which is no receiver", []string{"0.0.0.0/8"}},
		{"a shared carrier-grade NAT address (100.64.0.0/10)", []string{"100.64.0.0/10"}},
		{"a documentation address", []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20"}},
		{"a benchmarking address", []string{"198.18.0.0/15", "2001:2::/48"}},
		{"an IETF protocol address (192.0.0.0/24, 2001::/23)", []string{"192.0.0.0/24", "2001::/23"}},
		{"a deprecated 6to4 relay address (192.88.99.0/24)", []string{"192.88.99.0/24"}},
		{"a reserved address (240.0.0.0/4)", []string{"240.0.0.0/4"}},
		{"a discard-only or dummy address", []string{"100::/64", "100:0:0:1::/64"}},
		{"a local-use NAT64 address (64:ff9b:1::/48)", []string{"64:ff9b:1::/48"}},
		{"a segment routing address (5f00::/16)", []string{"5f00::/16"}},
		{"a site-local address (fec0::/10)", []string{"fec0::/10"}},
	} {
		for _, p := range r.prefixes {
			out = append(out, nonPublicRange{netip.MustParsePrefix(p), r.what})
		}
	}
	return out
}()

// globallyReachable are the exceptions inside nonPublicRanges.
var globallyReachable = []netip.Prefix{
	netip.MustParsePrefix("2001:3::/32"),     // AMT
	netip.MustParsePrefix("2001:4:112::/48"), // AS112-v6
}

// Outside these, an IPv6 address is no public host's: 2000::/3 is the only
// global unicast space IANA allocates; the others carry an IPv4 address
// and are judged by it.
var (
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	carriesIPv4    = []netip.Prefix{
		netip.MustParsePrefix("::/96"),           // IPv4-compatible
		netip.MustParsePrefix("::ffff:0:0/96"),   // IPv4-mapped
		netip.MustParsePrefix("::ffff:0:0:0/96"), // IPv4-translated
		nat64,
	}
)

// ForbiddenAddr says why Tollgate must not connect to ip in production, as
// the end of the sentence "The URL points to …", or "". It is the one
// answer to "is this a public address": the check of a saved URL and the
// dialer's check of each resolved address both use it.
//
// Never allowed: the host's own network edge (loopback, link-local
// 169.254.0.0/16 and fe80::/10, home of most metadata services), cloud
// metadata addresses, unspecified, multicast and broadcast addresses.
// Refused unless inside one of allowed (an operator's WEBHOOK_ALLOWED_NETWORKS,
// for hosts that deliver into their own network): private networks
// (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7) and every other
// special-purpose range that is not globally reachable (nonPublicRanges),
// and any IPv6 address outside global unicast 2000::/3.
//
// An IPv6 address that carries an IPv4 one (see EmbeddedIPv4) is judged
// by every address it carries, since a NAT64 gateway, a 6to4 or Teredo
// relay or the host's own stack may deliver it to that IPv4 address; each
// must pass the whole rule.
func ForbiddenAddr(ip netip.Addr, allowed []netip.Prefix) string {
	ip = ip.WithZone("").Unmap()
	addrs := append(EmbeddedIPv4(ip), ip)
	for _, a := range addrs {
		if why := edgeAddr(a); why != "" {
			return why
		}
	}
	for _, a := range addrs {
		if why := nonPublicAddr(a); why != "" && !inAny(allowed, a) {
			return why
		}
	}
	return ""
}

// edgeAddr says why ip is the host's own network edge, or "".
func edgeAddr(ip netip.Addr) string {
	switch {
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "a link-local address"
	case ip.IsUnspecified():
		return "an unspecified address (0.0.0.0 or ::), which is no receiver"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "a multicast address, which is no single receiver"
	case ip == limitedBroadcast:
		return "a broadcast address (255.255.255.255), which is no single receiver"
	}
	for _, m := range metadataAddrs {
		if ip == m {
			return "a cloud metadata address"
		}
	}
	return ""
}

// nonPublicAddr says why ip, which is no edge address, is not a public
// receiver's, or "".
func nonPublicAddr(ip netip.Addr) string {
	if ip.IsPrivate() {
		return "a private network address"
	}
	if inAny(globallyReachable, ip) {
		return ""
	}
	for _, r := range nonPublicRanges {
		if r.prefix.Contains(ip) {
			return r.what
		}
	}
	if ip.Is6() && !globalUnicast6.Contains(ip) && !inAny(carriesIPv4, ip) {
		return "an IPv6 address outside global unicast (2000::/3)"
	}
	return ""
}

func inAny(prefixes []netip.Prefix, ip netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Prefixes of IPv6 ranges that carry an IPv4 address.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")   // RFC 6052
	nat64Loc  = netip.MustParsePrefix("64:ff9b:1::/48") // RFC 8215
	sixToFour = netip.MustParsePrefix("2002::/16")      // RFC 3056
	teredo    = netip.MustParsePrefix("2001::/32")      // RFC 4380
)

// EmbeddedIPv4 returns the IPv4 addresses an IPv6 address carries: the
// last 32 bits of an IPv4-mapped (::ffff:a.b.c.d), IPv4-translated
// (::ffff:0:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96 and
// the local-use 64:ff9b:1::/48) or ISATAP (interface id 0:5efe or 200:5efe)
// address; bits 16–47 of a 6to4 address (2002::/16); and a Teredo address's
// (2001::/32) server, bits 32–63, and client, the last 32 bits inverted.
// Inside 64:ff9b:1::/48 a network may place the IPv4 address elsewhere
// (RFC 6052's other prefix lengths); its last 32 bits are where the
// common /96 layout puts it.
func EmbeddedIPv4(ip netip.Addr) []netip.Addr {
	if !ip.Is6() {
		return nil
	}
	b := ip.As16()
	v4 := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{b[i], b[i+1], b[i+2], b[i+3]}) }
	zero := func(from, to int) bool {
		for _, c := range b[from:to] {
			if c != 0 {
				return false
			}
		}
		return true
	}
	var out []netip.Addr
	switch {
	case ip.Is4In6(), zero(0, 12): // ::ffff:a.b.c.d, ::a.b.c.d
		out = append(out, v4(12))
	case zero(0, 8) && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0: // ::ffff:0:a.b.c.d
		out = append(out, v4(12))
	case nat64.Contains(ip), nat64Loc.Contains(ip):
		out = append(out, v4(12))
	case sixToFour.Contains(ip):
		out = append(out, v4(2))
	case teredo.Contains(ip):
		c := v4(12).As4()
		out = append(out, v4(4), netip.AddrFrom4([4]byte{^c[0], ^c[1], ^c[2], ^c[3]}))
	}
	if (b[8]|0x02) == 0x02 && b[9] == 0 && b[10] == 0x5e && b[11] == 0xfe { // ISATAP
		out = append(out, v4(12))
	}
	return out
}
