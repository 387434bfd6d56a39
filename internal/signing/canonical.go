package signing

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
)

// The headers a signed request carries.
const (
	HeaderTimestamp = "X-Timestamp"
	HeaderNonce     = "X-Nonce"
	HeaderSignature = "X-Request-Signature"
)

// Canonical is the string that is signed; see the package comment. path is
// the request target as target returns it.
func Canonical(method, path string, timestamp int64, nonce string, body []byte) string {
	sum := sha256.Sum256(body)
	return strings.Join([]string{
		method, path, strconv.FormatInt(timestamp, 10), nonce, hex.EncodeToString(sum[:]),
	}, "\n")
}

// target is the PATH line of the canonical string. The query is part of it
// because GET /graphql carries the whole operation there. A client URL with
// no path is sent as "/", so it is signed as "/" too.
func target(u *url.URL) string {
	p := u.Path
	if p == "" {
		p = "/"
	}
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return p
}
