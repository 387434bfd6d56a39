package outbound

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/apperr"
)

func TestEndpointURLs(t *testing.T) {
	cases := []struct {
		name       string
		url        string
		production bool
		code       string // "" when accepted
	}{
		{"https anywhere is accepted", "https://hooks.acme.test/tollgate", true, ""},
		{"https with a port is accepted", "https://203.0.113.7:8443/hooks", true, ""},
		{"plain http is refused in production", "http://hooks.acme.test/", true, CodeInvalidURL},
		{"plain http to loopback is refused in production", "http://127.0.0.1:8080/", true, CodeInvalidURL},
		{"plain http to localhost is accepted in development", "http://localhost:3000/hooks", false, ""},
		{"plain http to 127.0.0.1 is accepted in development", "http://127.0.0.1:3000/hooks", false, ""},
		{"plain http to ::1 is accepted in development", "http://[::1]:3000/hooks", false, ""},
		{"plain http elsewhere is refused in development", "http://hooks.acme.test/", false, CodeInvalidURL},
		{"the AWS metadata address is refused", "https://169.254.169.254/latest/meta-data", true, CodeForbiddenURL},
		{"any link-local address is refused", "https://169.254.1.1/", true, CodeForbiddenURL},
		{"IPv6 link-local is refused", "https://[fe80::1]/", true, CodeForbiddenURL},
		{"the AWS IPv6 metadata address is refused", "https://[fd00:ec2::254]/", true, CodeForbiddenURL},
		{"Google's metadata name is refused", "https://metadata.google.internal/computeMetadata/v1/", true, CodeForbiddenURL},
		{"a metadata name with a trailing dot is refused", "https://METADATA.google.internal./", true, CodeForbiddenURL},
		{"loopback is refused in production", "https://127.0.0.1/", true, CodeForbiddenURL},
		{"IPv4-mapped loopback is refused in production", "https://[::ffff:127.0.0.1]/", true, CodeForbiddenURL},
		// IPv6 forms that carry the metadata IPv4 address reach it.
		{"NAT64 metadata is refused", "https://[64:ff9b::a9fe:a9fe]/h", true, CodeForbiddenURL},
		{"local-use NAT64 metadata is refused", "https://[64:ff9b:1::a9fe:a9fe]/h", true, CodeForbiddenURL},
		{"6to4 metadata is refused", "https://[2002:a9fe:a9fe::]/h", true, CodeForbiddenURL},
		{"Teredo to metadata is refused", "https://[2001:0:4136:e378:8000:63bf:5601:5601]/h", true, CodeForbiddenURL},
		{"IPv4-compatible loopback is refused", "https://[::127.0.0.1]/h", true, CodeForbiddenURL},
		{"NAT64 to a public address is accepted", "https://[64:ff9b::c000:20a]/h", true, ""},
		{"localhost is refused in production", "https://localhost/", true, CodeForbiddenURL},
		{"a relative URL is refused", "/hooks", true, CodeInvalidURL},
		{"another scheme is refused", "ftp://hooks.acme.test/", true, CodeInvalidURL},
		{"an empty URL is required", " ", true, CodeRequired},
		{"a URL with spaces is refused", "https://hooks.acme.test/a b", true, CodeInvalidURL},
		// url.Parse accepts both; the database could not store them.
		{"invalid UTF-8 is refused", "https://hooks.acme.test/\xff", true, CodeInvalidURL},
		{"a NUL is refused", "https://hooks.acme.test/?a=\x00", true, CodeInvalidURL},
		// Credentials would be listed to every billing:read caller.
		{"a user and password are refused", "https://user:pass@hooks.acme.test/", true, CodeInvalidURL},
		{"a user name alone is refused", "https://token@hooks.acme.test/", true, CodeInvalidURL},
		{"credentials to localhost are refused in development", "http://u:p@localhost:3000/hooks", false, CodeInvalidURL},
		{"an @ in the path is accepted", "https://hooks.acme.test/p@th", true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &Service{production: c.production}
			var fe apperr.FieldErrors
			s.checkURL(&fe, "input.url", c.url)
			switch {
			case c.code == "" && len(fe) > 0:
				t.Fatalf("refused: %v", fe)
			case c.code != "" && (len(fe) != 1 || fe[0].Code != c.code || fe[0].Field != "input.url"):
				t.Fatalf("got %v, want %s on input.url", fe, c.code)
			}
		})
	}
}

// A name that resolves to a forbidden address (here a loopback test server)
// is refused when connecting, not only when the URL is checked.
func TestProductionNeverConnectsToLoopback(t *testing.T) {
	reached := false
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
	defer srv.Close()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL, nil)
	_, err := newHTTPClient(true).Do(req)
	if !errors.Is(err, errForbiddenAddr) || reached {
		t.Fatalf("production client reached %s: err %v", srv.URL, err)
	}
	req, _ = http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL, nil)
	resp, err := newHTTPClient(false).Do(req)
	if err != nil {
		t.Fatalf("development client: %v", err)
	}
	resp.Body.Close()
}

// The dialer judges an address that carries an IPv4 one by that IPv4
// address, whatever DNS answers: NAT64 and 6to4 forms of the metadata and
// loopback addresses are refused before any packet leaves.
func TestProductionNeverConnectsToEmbeddedIPv4(t *testing.T) {
	for _, host := range []string{"[64:ff9b::a9fe:a9fe]", "[2002:a9fe:a9fe::]", "[64:ff9b::7f00:1]", "[::ffff:0:7f00:1]"} {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "https://"+host+"/h", nil)
		if _, err := newHTTPClient(true).Do(req); !errors.Is(err, errForbiddenAddr) {
			t.Errorf("production client to %s: err %v, want %v", host, err, errForbiddenAddr)
		}
	}
}
