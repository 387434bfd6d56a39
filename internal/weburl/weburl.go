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
	"unicode"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/store"
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
// would refuse). On failure it adds a field error, with invalidMsg for a
// malformed URL, and returns false.
func Check(fe *apperr.FieldErrors, field, raw, invalidMsg string) (*url.URL, bool) {
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
	if u.User != nil {
		// A user name or password in the URL would be stored and shown to
		// every reader of the organisation (and put in Stripe's redirect).
		fe.Add(field, CodeInvalidURL, "Credentials in URLs are not allowed: remove the user:password@ before the host.")
		return nil, false
	}
	if msg := checkHost(u); msg != "" {
		fe.Add(field, CodeInvalidURL, msg)
		return nil, false
	}
	return u, true
}

// checkHost says what is wrong with u's host and port, or "". A host is a
// domain name (labels of letters, digits, hyphens and underscores, none
// empty or starting or ending with a hyphen, at most 63 bytes each and 253
// in all), a full dotted IPv4 address, or a bracketed IPv6 address without
// a zone. A name whose last label is a number (127.1, 2130706433,
// 0x7f000001, 0251.0376.0251.0376) is refused: browsers and C resolvers
// read it as an IPv4 address, so it would reach an address no check of
// the text saw.
func checkHost(u *url.URL) string {
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
	for _, l := range labels {
		if !label(l) {
			return "The host must be a domain name: labels of letters, digits and hyphens, separated by single dots, none starting or ending with a hyphen."
		}
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

// label reports whether l is a domain name label: 1 to 63 bytes of
// letters (any script), digits, hyphens and underscores, not starting or
// ending with a hyphen.
func label(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for _, r := range l {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.Is(unicode.Mn, r) && r != '-' && r != '_' {
			return false
		}
	}
	return true
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
