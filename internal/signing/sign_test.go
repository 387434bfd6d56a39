package signing

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// A request signed by a real client and sent over real HTTP verifies on the
// server: the path and query the client signs are the ones the server sees.
func TestSignedRequestOverHTTP(t *testing.T) {
	clk := clock.NewFake(t0)
	v := NewVerifier(testenv.Redis(t), clk, quietLog())
	s := newSigner(1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := v.VerifyRequest(r, s.key); f != nil {
			http.Error(w, f.Reason, http.StatusUnauthorized)
			return
		}
		_, _ = io.Copy(w, r.Body) // the handler after the verifier still has the body
	}))
	t.Cleanup(srv.Close)

	cases := []struct {
		name   string
		method string
		path   string
		body   string
	}{
		{"a POST with a JSON body verifies", http.MethodPost, "/graphql", `{"query":"mutation { recordUsage(input: {}) { accepted } }"}`},
		{"a GET with an encoded query verifies", http.MethodGet, "/graphql?query=%7B%20me%20%7B%20id%20%7D%20%7D&operationName=Me", ""},
		{"a path with an escaped space verifies", http.MethodPost, "/graphql/a%20b", `{}`},
		{"a URL with no path verifies", http.MethodGet, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if err := Sign(req, s.priv, clk.Now()); err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, got)
			}
			if string(got) != tc.body {
				t.Fatalf("handler read body %q, want %q", got, tc.body)
			}
		})
	}
}

func TestSignKeepsTheBody(t *testing.T) {
	const body = `{"query":"{ me }"}`
	req, err := http.NewRequest(http.MethodPost, "https://billing.example.com/graphql", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := Sign(req, newSigner(1).priv, t0); err != nil {
		t.Fatal(err)
	}
	sent, _ := io.ReadAll(req.Body)
	again, err := req.GetBody() // what the client uses on redirect or retry
	if err != nil {
		t.Fatal(err)
	}
	retried, _ := io.ReadAll(again)
	if string(sent) != body || string(retried) != body || req.ContentLength != int64(len(body)) {
		t.Fatalf("after Sign body = %q, GetBody = %q, ContentLength = %d; want %q, %d", sent, retried, req.ContentLength, body, len(body))
	}
}

func TestSignRefusesABodyTheServerWouldRefuse(t *testing.T) {
	req, err := http.NewRequest(http.MethodPost, "https://billing.example.com/graphql", bytes.NewReader(make([]byte, MaxBodyBytes+1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := Sign(req, newSigner(1).priv, t0); err == nil {
		t.Fatal("Sign accepted a body over 1 MiB")
	}
}
