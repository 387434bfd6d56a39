package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestAttemptErrorsAreFixedWords: an organisation reads what happened at its
// receiver, never Go's text, which named this machine's DNS server and
// addresses.
func TestAttemptErrorsAreFixedWords(t *testing.T) {
	const cannotDeliver = "cannot deliver to this destination: webhooks go to public addresses only"
	post := func(err error) error {
		return fmt.Errorf("POST https://hooks.example.com/x: %w", &url.Error{Op: "Post", URL: "https://hooks.example.com/x", Err: err})
	}
	dial := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 443}, Err: err}
	}
	for _, tc := range []struct {
		err  error
		want string
		// production: a name that does not resolve reads as a forbidden
		// destination, not as "no such host".
		production bool
	}{
		{post(&net.DNSError{Err: "no such host", Name: "0x7f000001", Server: "10.255.255.53:53", IsNotFound: true}), "DNS: no such host", false},
		{post(&net.DNSError{Err: "i/o timeout", Name: "slow.example", Server: "10.255.255.53:53", IsTimeout: true}), "DNS: the lookup timed out", false},
		{post(dial(os.NewSyscallError("connect", syscall.ECONNREFUSED))), "connection refused", false},
		{post(dial(os.NewSyscallError("read", syscall.ECONNRESET))), "the receiver closed the connection before answering", false},
		{post(context.DeadlineExceeded), "timed out: no answer within 5 s", false},
		{post(fmt.Errorf("dial: %w", errForbiddenAddr)), errForbiddenAddr.Error(), false},
		{fmt.Errorf("POST https://hooks.example.com/x: %w", statusError{503}), "the receiver answered HTTP 503", false},
		{post(errors.New("something new at 10.1.2.3:443")), "the request could not be sent", false},
		{post(&net.DNSError{Err: "no such host", Name: "db.internal", Server: "10.255.255.53:53", IsNotFound: true}), cannotDeliver, true},
		{post(&net.DNSError{Err: "i/o timeout", Name: "db.internal", Server: "10.255.255.53:53", IsTimeout: true}), cannotDeliver, true},
		{post(&net.DNSError{Err: "server misbehaving", Name: "db.internal", Server: "10.255.255.53:53"}), cannotDeliver, true},
		{post(fmt.Errorf("dial: %w", errForbiddenAddr)), cannotDeliver, true},
		{post(dial(os.NewSyscallError("connect", syscall.ECONNREFUSED))), "connection refused", true},
	} {
		got := attemptError(tc.err, tc.production)
		if got != tc.want {
			t.Errorf("attemptError(%v) = %q, want %q", tc.err, got, tc.want)
		}
		for _, leak := range []string{"10.", ":53", ":443", "hooks.example.com"} {
			if strings.Contains(got, leak) {
				t.Errorf("attemptError(%v) = %q: quotes %q", tc.err, got, leak)
			}
		}
	}
}
