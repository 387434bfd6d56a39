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
	post := func(err error) error {
		return fmt.Errorf("POST https://hooks.example.com/x: %w", &url.Error{Op: "Post", URL: "https://hooks.example.com/x", Err: err})
	}
	dial := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 443}, Err: err}
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{post(&net.DNSError{Err: "no such host", Name: "0x7f000001", Server: "10.255.255.53:53", IsNotFound: true}), "DNS: no such host"},
		{post(&net.DNSError{Err: "i/o timeout", Name: "slow.example", Server: "10.255.255.53:53", IsTimeout: true}), "DNS: the lookup timed out"},
		{post(dial(os.NewSyscallError("connect", syscall.ECONNREFUSED))), "connection refused"},
		{post(dial(os.NewSyscallError("read", syscall.ECONNRESET))), "the receiver closed the connection before answering"},
		{post(context.DeadlineExceeded), "timed out: no answer within 5 s"},
		{post(fmt.Errorf("dial: %w", errForbiddenAddr)), errForbiddenAddr.Error()},
		{fmt.Errorf("POST https://hooks.example.com/x: %w", statusError{503}), "the receiver answered HTTP 503"},
		{post(errors.New("something new at 10.1.2.3:443")), "the request could not be sent"},
	} {
		got := attemptError(tc.err)
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
