package signing

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Sign adds X-Timestamp, a fresh X-Nonce and X-Request-Signature to req,
// signing its method, URL path and query, and body as of now. The body is
// read and replaced by an identical one, so req can still be sent (and
// retried through GetBody). The API key itself still goes in Authorization
// or X-API-Key; a retry must be signed again, since the nonce is single use.
func Sign(req *http.Request, priv ed25519.PrivateKey, now time.Time) error {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := readCapped(req.Body)
		req.Body.Close()
		if err != nil {
			return fmt.Errorf("sign request: read body: %w", err)
		}
		body = b
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.ContentLength = int64(len(body))
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet // what net/http sends for an empty Method
	}
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	ts := now.Unix()
	nonce := uuid.NewString()
	sig := ed25519.Sign(priv, []byte(Canonical(method, target(req.URL), ts, nonce, body)))
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderNonce, nonce)
	req.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(sig))
	return nil
}
