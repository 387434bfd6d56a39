package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
)

// statusError is a receiver's answer outside 2xx.
type statusError struct{ code int }

func (e statusError) Error() string { return fmt.Sprintf("HTTP %d", e.code) }

// attemptError is what an organisation reads about a failed attempt (in
// webhookDeliveries, and in an endpoint's disabled reason): what happened
// at its receiver, in fixed words. Go's own text named this machine's DNS
// server ("lookup x on 10.0.0.53:53: no such host") and its addresses; the
// whole error goes to the log instead.
//
// In production a name that did not resolve reads as one that resolved to
// a forbidden address (errForbiddenAddr): "no such host" beside "not a
// public address" told an organisation which internal names exist, one
// saved URL at a time. Development, which delivers to this machine only,
// keeps the DNS detail.
func attemptError(err error, production bool) string {
	var (
		status    statusError
		dnsErr    *net.DNSError
		hostErr   x509.HostnameError
		authErr   x509.UnknownAuthorityError
		certErr   x509.CertificateInvalidError
		verifyErr *tls.CertificateVerificationError
		recordErr tls.RecordHeaderError
		netErr    net.Error
	)
	switch {
	case errors.As(err, &status):
		return fmt.Sprintf("the receiver answered HTTP %d", status.code)
	case errors.Is(err, errForbiddenAddr):
		return errForbiddenAddr.Error()
	case errors.As(err, &dnsErr) && production:
		return errForbiddenAddr.Error()
	case errors.As(err, &dnsErr):
		switch {
		case dnsErr.IsNotFound:
			return "DNS: no such host"
		case dnsErr.IsTimeout:
			return "DNS: the lookup timed out"
		}
		return "DNS: the lookup failed"
	case errors.As(err, &hostErr):
		return "TLS: the receiver's certificate is not valid for its host name"
	case errors.As(err, &authErr):
		return "TLS: the receiver's certificate is signed by an unknown authority"
	case errors.As(err, &certErr):
		return "TLS: the receiver's certificate is expired or invalid"
	case errors.As(err, &verifyErr):
		return "TLS: the receiver's certificate could not be verified"
	case errors.As(err, &recordErr):
		return "TLS: the receiver did not answer in TLS (is it serving plain http?)"
	case strings.Contains(err.Error(), "server response headers exceeded"):
		// net/http's error for MaxResponseHeaderBytes has no type of its own.
		return fmt.Sprintf("the receiver's answer had more than %d KiB of headers", maxAnswerHeaderBytes>>10)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timed out: no answer within 5 s"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the receiver closed the connection before answering"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "the receiver's network is unreachable"
	}
	return "the request could not be sent"
}
