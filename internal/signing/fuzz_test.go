package signing

import (
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

var reasons = []string{
	ReasonSignatureMissing, ReasonTimestampInvalid, ReasonTimestampSkew, ReasonNonceInvalid,
	ReasonSignatureMalformed, ReasonBodyTooLarge, ReasonBodyUnreadable, ReasonSigningKeyInvalid,
	ReasonSignatureInvalid, ReasonNonceReplayed, ReasonNonceUnavailable,
}

// FuzzVerifyRequest feeds the verifier arbitrary headers, method, target and
// body. Whatever arrives, it must not panic, must refuse with a known reason
// or accept, must leave the body intact for the next handler, and must refuse
// an accepted request the second time.
func FuzzVerifyRequest(f *testing.F) {
	// miniredis, not the shared server: fuzzing writes many nonces.
	v := NewVerifier(testenv.MiniRedis(f), clock.NewFake(t0), quietLog())
	s := newSigner(1)

	valid := signedRequest(f, s.priv, http.MethodPost, "/graphql?op=Me", `{"query":"{ me }"}`, t0)
	seed := func(r *http.Request, body string) {
		f.Add(r.Method, target(r.URL), r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderNonce), r.Header.Get(HeaderSignature), []byte(body))
	}
	seed(valid, `{"query":"{ me }"}`)
	seed(valid, `{"query":"{ plans }"}`)
	seed(signedRequest(f, s.priv, http.MethodGet, "/", "", t0), "")
	f.Add("POST", "/graphql", "", "", "", []byte{})
	f.Add("POST", "/graphql", "-9223372036854775808", "00000000-0000-0000-0000-000000000000", "====", []byte("\x00\xff"))
	f.Add("", "", "9223372036854775807", "{3f1c9a52-6e0b-4c1e-9d0a-2b7f5e8c4d11}", strings.Repeat("A", 88), []byte("x"))

	f.Fuzz(func(t *testing.T, method, tgt, ts, nonce, sig string, body []byte) {
		path, query, _ := strings.Cut(tgt, "?")
		newReq := func() *http.Request {
			r := &http.Request{
				Method: method,
				URL:    &url.URL{Path: path, RawQuery: query},
				Header: http.Header{},
				Body:   io.NopCloser(strings.NewReader(string(body))),
			}
			r.Header.Set(HeaderTimestamp, ts)
			r.Header.Set(HeaderNonce, nonce)
			r.Header.Set(HeaderSignature, sig)
			return r
		}
		r := newReq()
		fail := v.VerifyRequest(r, s.key)
		if fail != nil && !slices.Contains(reasons, fail.Reason) {
			t.Fatalf("unknown refusal reason %q", fail.Reason)
		}
		got, err := io.ReadAll(r.Body)
		if err != nil || string(got) != string(body) {
			t.Fatalf("body after verification = %q, %v; want %q", got, err, body)
		}
		if fail == nil {
			if again := v.VerifyRequest(newReq(), s.key); reason(again) != ReasonNonceReplayed {
				t.Fatalf("replay of an accepted request: reason = %q, want %q", reason(again), ReasonNonceReplayed)
			}
		}
	})
}
