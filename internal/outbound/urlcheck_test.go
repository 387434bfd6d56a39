package outbound

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

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
		{"https with a port is accepted", "https://93.184.216.34:8443/hooks", true, ""},
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
		{"NAT64 to a public address is accepted", "https://[64:ff9b::5db8:d822]/h", true, ""},
		{"localhost is refused in production", "https://localhost/", true, CodeForbiddenURL},
		// Private networks and the rest of the special-purpose ranges.
		{"RFC 1918 10/8 is refused", "https://10.0.0.1:6379/x", true, CodeForbiddenURL},
		{"RFC 1918 172.16/12 is refused", "https://172.31.255.254/x", true, CodeForbiddenURL},
		{"RFC 1918 192.168/16 is refused", "https://192.168.1.1/x", true, CodeForbiddenURL},
		{"carrier-grade NAT is refused", "https://100.64.0.1/x", true, CodeForbiddenURL},
		{"Azure's WireServer is refused", "https://168.63.129.16/x", true, CodeForbiddenURL},
		{"Oracle Cloud's metadata address is refused", "https://192.0.0.192/x", true, CodeForbiddenURL},
		{"benchmarking addresses are refused", "https://198.18.0.1/x", true, CodeForbiddenURL},
		{"reserved 240/4 is refused", "https://240.0.0.1/x", true, CodeForbiddenURL},
		{"the broadcast address is refused", "https://255.255.255.255/x", true, CodeForbiddenURL},
		{"0/8 is refused", "https://0.1.2.3/x", true, CodeForbiddenURL},
		{"documentation addresses are refused", "https://203.0.113.7/x", true, CodeForbiddenURL},
		{"unique local IPv6 is refused", "https://[fc00::1]/x", true, CodeForbiddenURL},
		{"unique local IPv6 with a port is refused", "https://[fd00::2]:18481/", true, CodeForbiddenURL},
		{"site-local IPv6 is refused", "https://[fec0::1]/x", true, CodeForbiddenURL},
		{"IPv6 documentation is refused", "https://[2001:db8::1]/x", true, CodeForbiddenURL},
		{"NAT64 to a private address is refused", "https://[64:ff9b::a00:1]/x", true, CodeForbiddenURL},
		{"6to4 to a private address is refused", "https://[2002:a00:1::]/x", true, CodeForbiddenURL},
		{"private addresses are accepted in development", "https://10.0.0.1:6379/x", false, ""},
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
			// Every refusal for where a URL points reads the same: which
			// rule refused it is not an organisation's to map.
			if c.code == CodeForbiddenURL && fe[0].Message != "Tollgate cannot deliver to this destination: webhooks go to public addresses only." {
				t.Fatalf("message %q, want the one fixed wording", fe[0].Message)
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
	_, err := newHTTPClient(true, nil, nil).Do(req)
	if !errors.Is(err, errForbiddenAddr) || reached {
		t.Fatalf("production client reached %s: err %v", srv.URL, err)
	}
	req, _ = http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL, nil)
	resp, err := newHTTPClient(false, nil, nil).Do(req)
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
		if _, err := newHTTPClient(true, nil, nil).Do(req); !errors.Is(err, errForbiddenAddr) {
			t.Errorf("production client to %s: err %v, want %v", host, err, errForbiddenAddr)
		}
	}
}

// An operator's WEBHOOK_ALLOWED_NETWORKS lets endpoints in those networks
// be saved in production, and nothing else private.
func TestAllowedNetworksLetOneNetworkThrough(t *testing.T) {
	s := &Service{production: true, allowed: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}}
	for raw, code := range map[string]string{
		"https://10.20.3.4:8443/hooks":      "",
		"https://10.21.0.1/hooks":           CodeForbiddenURL,
		"https://192.168.1.1/hooks":         CodeForbiddenURL,
		"https://[64:ff9b::a14:304]/h":      "",
		"https://127.0.0.1/hooks":           CodeForbiddenURL,
		"https://metadata.google.internal/": CodeForbiddenURL,
	} {
		var fe apperr.FieldErrors
		s.checkURL(&fe, "input.url", raw)
		if (code == "" && len(fe) > 0) || (code != "" && (len(fe) != 1 || fe[0].Code != code)) {
			t.Errorf("checkURL(%q) with 10.20.0.0/16 allowed = %v, want %q", raw, fe, code)
		}
	}
	guard := dialGuard(s.allowed)
	for address, want := range map[string]error{
		"10.20.3.4:443": nil, "[64:ff9b::a14:304]:443": nil, "10.21.0.1:443": errForbiddenAddr, "127.0.0.1:443": errForbiddenAddr,
	} {
		if err := guard("tcp4", address, nil); !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("dial %s with 10.20.0.0/16 allowed: %v, want %v", address, err, want)
		}
	}
}

// A public-looking name that DNS resolves to a private or metadata address
// is refused when connecting, before any packet leaves, whatever the name.
func TestProductionNeverConnectsToANameResolvingToAPrivateAddress(t *testing.T) {
	for _, addr := range []string{"10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", "168.63.129.16", "192.0.0.192", "fd00::2", "fec0::1"} {
		resolver := resolvingTo(netip.MustParseAddr(addr))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://hooks.acme-private.test:6379/x", nil)
		_, err := newHTTPClient(true, nil, resolver).Do(req)
		cancel()
		if !errors.Is(err, errForbiddenAddr) {
			t.Errorf("production client to a name resolving to %s: err %v, want %v", addr, err, errForbiddenAddr)
		}
	}
}

// resolvingTo is a resolver whose DNS server answers every A or AAAA
// question with addr (or with no answer, for the other family), through
// Go's own resolver, so the dialer sees what a real lookup gives. With no
// addr (netip.Addr{}) it answers NXDOMAIN: the name does not exist.
func resolvingTo(addr netip.Addr) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		client, server := net.Pipe()
		go answerDNS(server, addr)
		return client, nil
	}}
}

// answerDNS serves DNS over a stream (two-byte length, then the message):
// Go's resolver uses that framing on a connection that is no PacketConn.
func answerDNS(conn net.Conn, addr netip.Addr) {
	defer conn.Close()
	for {
		var n [2]byte
		if _, err := io.ReadFull(conn, n[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(conn, q); err != nil || len(q) < 12 {
			return
		}
		end := 12 // the question: its name's labels, then type and class
		for end < len(q) && q[end] != 0 {
			end += int(q[end]) + 1
		}
		end += 5
		if end > len(q) {
			return
		}
		qtype := binary.BigEndian.Uint16(q[end-4:])
		var rdata []byte
		switch {
		case qtype == 1 && addr.Is4(): // A
			b := addr.As4()
			rdata = b[:]
		case qtype == 28 && addr.Is6(): // AAAA
			b := addr.As16()
			rdata = b[:]
		}
		resp := append([]byte{}, q[:end]...)
		resp[2], resp[3] = 0x81, 0x80 // a response, recursion desired and available, no error
		if !addr.IsValid() {
			resp[3] = 0x83 // NXDOMAIN
		}
		binary.BigEndian.PutUint16(resp[6:], 0)
		binary.BigEndian.PutUint16(resp[8:], 0)
		binary.BigEndian.PutUint16(resp[10:], 0)
		if rdata != nil {
			binary.BigEndian.PutUint16(resp[6:], 1)
			resp = append(resp, 0xc0, 12) // the question's name
			resp = binary.BigEndian.AppendUint16(resp, qtype)
			resp = binary.BigEndian.AppendUint16(resp, 1) // IN
			resp = binary.BigEndian.AppendUint32(resp, 60)
			resp = binary.BigEndian.AppendUint16(resp, uint16(len(rdata)))
			resp = append(resp, rdata...)
		}
		out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
		if _, err := conn.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

// An endpoint saved before a range was refused, here with a closed port,
// an open one and a name resolving into the network, fails at every
// attempt with the same words and no connection: nothing tells what
// listens there. A name that does not exist reads the same in production,
// so an organisation cannot learn which internal names exist by saving
// them one at a time; development keeps "DNS: no such host".
func TestAttemptsToRefusedDestinationsSayOnlyThat(t *testing.T) {
	secret, err := newSecret()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url      string
		resolver *net.Resolver
	}{
		{"https://10.0.0.1:6379/x", nil},
		{"https://10.0.0.1:1/x", nil},
		{"https://[fd00::2]:18481/", nil},
		{"https://192.0.0.192/opc/v2/instance/", nil},
		{"https://hooks.acme-private.test:5432/x", resolvingTo(netip.MustParseAddr("192.168.0.10"))},
		{"https://no-such-name.acme-private.test/x", resolvingTo(netip.Addr{})},
	} {
		s := &Service{production: true, http: newHTTPClient(true, nil, tc.resolver)}
		ep := endpointRow{URL: tc.url, Secret: secret}
		_, _, err := s.send(context.Background(), ep, eventRow{ID: "evt_1", Payload: `{"type":"invoice.paid"}`}, time.Now())
		if got, want := attemptError(err, s.production), "cannot deliver to this destination: webhooks go to public addresses only"; got != want {
			t.Errorf("attempt to %s: %q (%v), want %q", tc.url, got, err, want)
		}
	}
	dev := &Service{http: newHTTPClient(false, nil, resolvingTo(netip.Addr{}))}
	_, _, err = dev.send(context.Background(), endpointRow{URL: "https://no-such-name.acme-private.test/x", Secret: secret}, eventRow{ID: "evt_1", Payload: `{"type":"invoice.paid"}`}, time.Now())
	if got, want := attemptError(err, dev.production), "DNS: no such host"; got != want {
		t.Errorf("development attempt to a name that does not exist: %q (%v), want %q", got, err, want)
	}
}
