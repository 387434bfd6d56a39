package outbound

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
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
	for _, m := range metadataHosts {
		if host == m {
			fe.Add(field, CodeForbiddenURL, "The URL points to a cloud metadata service.")
			return
		}
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		fe.Add(field, CodeForbiddenURL, "The URL points to a loopback address.")
		return
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if why := weburl.ForbiddenAddr(ip, s.allowed); why != "" {
			fe.Add(field, CodeForbiddenURL, "The URL points to "+why+".")
		}
	}
}

// errForbiddenAddr is a dial refused because a name resolved to an address
// checkURL would have refused (a name may resolve anywhere, and change),
// or because an endpoint saved before a rule was added names one. It is
// the whole of what an organisation reads about such an attempt: nothing
// is sent, so nothing about what listens there can be told.
var errForbiddenAddr = errors.New("refused: the destination is not a public address")

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
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dialer.DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
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
