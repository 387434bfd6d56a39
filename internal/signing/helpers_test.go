package signing

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/store"
)

// t0 is a whole second, so offsets in seconds are exact.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// signer is a client's signing key and the API key it is registered on; each
// has a fresh id, so tests sharing the real Redis never see each other's
// nonces.
type signer struct {
	priv ed25519.PrivateKey
	key  auth.APIKey
}

func newSigner(seed byte) signer {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	enc := EncodePublicKey(priv.Public().(ed25519.PublicKey))
	return signer{priv: priv, key: auth.APIKey{ID: store.NewID(), OrgID: store.NewID(), SigningPublicKey: &enc}}
}

// signedRequest is a server-side request, as the handler receives it, signed
// with Sign.
func signedRequest(t testing.TB, priv ed25519.PrivateKey, method, target, body string, at time.Time) *http.Request {
	t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if err := Sign(r, priv, at); err != nil {
		t.Fatalf("sign: %v", err)
	}
	return r
}

// signedWith is a server-side request signed by hand with a chosen timestamp
// and nonce, for the cases Sign never produces.
func signedWith(priv ed25519.PrivateKey, method, target, body string, ts int64, nonce string) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	sig := ed25519.Sign(priv, []byte(Canonical(method, target, ts, nonce, []byte(body))))
	r.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	r.Header.Set(HeaderNonce, nonce)
	r.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(sig))
	return r
}

// reason is the refusal reason, or "" when the request was accepted.
func reason(f *auth.Failure) string {
	if f == nil {
		return ""
	}
	return f.Reason
}
