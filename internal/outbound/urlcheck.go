package outbound

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tollgate-billing/tollgate/internal/apperr"
	"github.com/tollgate-billing/tollgate/internal/weburl"
)

// Codes of the userErrors endpoint mutations return.
const (
	CodeRequired        = weburl.CodeRequired
	CodeTooLong         = weburl.CodeTooLong
	CodeInvalidURL      = weburl.CodeInvalidURL
	CodeForbiddenURL    = "FORBIDDEN_URL"
	CodeUnknownEvent    = "UNKNOWN_EVENT"
	CodePlanLimit       = "PLAN_LIMIT"
	CodeNotFound        = "NOT_FOUND"
	CodeEndpointDisable = "ENDPOINT_DISABLED"
)

// metadataHosts are cloud metadata services reached by name.
var metadataHosts = []string{
	"metadata.google.internal", "metadata.goog", "metadata",
	"instance-data", "instance-data.ec2.internal",
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// checkURL validates an endpoint URL: https in production; in development
// also http, but only to this machine.
func (s *Service) checkURL(fe *apperr.FieldErrors, field, raw string) {
	u, ok := weburl.Check(fe, field, raw, "The URL must be absolute and start with https://.")
	if !ok {
		return
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if u.Scheme == "http" {
		if s.production || !isLoopbackHost(host) {
			fe.Add(field, CodeInvalidURL, "The URL must start with https:// (plain http is allowed only to localhost in development).")
			return
		}
	}
	if !s.production {
		return
	}
	if forbiddenHost(host, s.allowed) {
		fe.Add(field, CodeForbiddenURL, forbiddenURLMessage)
	}
}

// forbiddenURLMessage is the whole of what an organisation reads when a URL
// is refused for where it points, whichever rule refused it: an answer
// that named the kind of address (or, at delivery, told a name that does
// not exist from one that resolves inside Tollgate's network) would let an
// organisation map that network through the endpoint form.
const forbiddenURLMessage = "Tollgate cannot deliver to this destination: webhooks go to public addresses only."

// forbiddenHost reports whether a URL's host (lower case, no final dot) is
// one production never delivers to by its text alone: a metadata service's
// name, localhost, or an address weburl.ForbiddenAddr refuses. A name is
// not looked up: its address may change, and dialGuard checks each one.
func forbiddenHost(host string, allowed []netip.Prefix) bool {
	if slices.Contains(metadataHosts, host) || host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && weburl.ForbiddenAddr(ip, allowed) != ""
}

// errForbiddenAddr is a dial refused because a name resolved to an address
// checkURL would have refused (a name may resolve anywhere, and change),
// or because an endpoint saved before a rule was added names one. Its text
// (forbiddenURLMessage's) is the whole of what an organisation reads about
// such an attempt, and in production about a name DNS did not resolve too
// (attemptError): nothing is sent, so nothing about what listens there can
// be told, nor whether the name exists inside Tollgate's network.
var errForbiddenAddr = errors.New("cannot deliver to this destination: webhooks go to public addresses only")

// maxAnswerHeaderBytes bounds the headers of a receiver's answer that an
// attempt reads; more fails the attempt, in attemptError's words.
const maxAnswerHeaderBytes = 64 << 10

// newHTTPClient sends deliveries: 5 s per attempt, redirects never followed
// (a 3xx is a failed attempt), no proxy from the environment, and in
// production no connection to a forbidden address whatever DNS answers.
// resolver is nil but in tests, which give names their own answers.
func newHTTPClient(production bool, allowed []netip.Prefix, resolver *net.Resolver) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, Resolver: resolver}
	if production {
		dialer.Control = dialGuard(allowed)
	}
	return &http.Client{
		Timeout: attemptTimeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dialer.DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
			// Go reads up to 10 MiB of a receiver's headers by default:
			// ten workers held that much each for any organisation's
			// receiver that sent it. A receiver's answer is read for its
			// status alone.
			MaxResponseHeaderBytes: maxAnswerHeaderBytes,
			MaxIdleConnsPerHost:    4,
			IdleConnTimeout:        90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// dialGuard is the dialer's last word on each address DNS gave, checked
// just before the connection is opened, so no packet reaches an address
// weburl.ForbiddenAddr refuses.
func dialGuard(allowed []netip.Prefix) func(network, address string, c syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("dial %s: %w", address, err)
		}
		if weburl.ForbiddenAddr(ap.Addr(), allowed) != "" {
			return errForbiddenAddr
		}
		return nil
	}
}
