// Package weburl checks the absolute URLs clients hand Tollgate to store and
// later send someone to or call (Checkout and Portal return URLs, outbound
// webhook endpoints), so every such input is refused the same way before it
// reaches the database.
package weburl

import (
	"net/url"
	"regexp"
	"strings"

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
		fe.Add(field, CodeInvalidURL, "Credentials in URLs are not allowed: remove the user:password@ before the host (a webhook receiver checks the signature made with its signing secret instead).")
		return nil, false
	}
	return u, true
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
