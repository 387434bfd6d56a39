package signing

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/redisconn"
)

// MaxSkew is how far X-Timestamp may be from the server's clock.
const MaxSkew = 30 * time.Second

// Reasons a signed request is refused, as auth.Failure.Reason.
const (
	ReasonSignatureMissing   = "SIGNATURE_MISSING"   // a signing header is absent
	ReasonTimestampInvalid   = "TIMESTAMP_INVALID"   // X-Timestamp is not decimal unix seconds
	ReasonTimestampSkew      = "TIMESTAMP_SKEW"      // X-Timestamp is more than MaxSkew from now
	ReasonNonceInvalid       = "NONCE_INVALID"       // X-Nonce is not a UUID
	ReasonSignatureMalformed = "SIGNATURE_MALFORMED" // not base64 of 64 bytes
	ReasonBodyTooLarge       = "BODY_TOO_LARGE"      // over MaxBodyBytes
	ReasonBodyUnreadable     = "BODY_UNREADABLE"     // the client went away mid-body
	ReasonSigningKeyInvalid  = "SIGNING_KEY_INVALID" // the stored key cannot be parsed
	ReasonSignatureInvalid   = "SIGNATURE_INVALID"   // wrong key, or anything signed was changed
	ReasonNonceReplayed      = "NONCE_REPLAYED"      // the nonce was already used
	ReasonNonceUnavailable   = "NONCE_UNAVAILABLE"   // Redis could not record the nonce
)

// Verifier checks signed requests; it implements auth.RequestVerifier.
type Verifier struct {
	nonces nonces
	clock  clock.Clock
	log    *slog.Logger
	// resetAt is the unix second of the last Redis restart this replica
	// noticed: requests signed before it are refused here even if the mark
	// in Redis could not be raised.
	resetAt atomic.Int64
}

var _ auth.RequestVerifier = (*Verifier)(nil)

// NewVerifier returns a verifier that records nonces in rdb. Replicas that
// must refuse each other's replays share one Redis. With a nil rdb every
// signed request is refused with NONCE_UNAVAILABLE.
func NewVerifier(rdb *redisconn.Client, clk clock.Clock, log *slog.Logger) *Verifier {
	n := nonces{rdb: rdb}
	n.markIntact(context.Background())
	return &Verifier{nonces: n, clock: clk, log: log}
}

// RedisRestarted is told that Redis restarted, failed over or came back from
// an older snapshot: the nonces it remembers may lack some that were used.
// Until the nonce window has passed every earlier nonce is treated as seen,
// by refusing requests signed before now, on every replica (the mark in
// Redis) and here in any case.
func (v *Verifier) RedisRestarted(ctx context.Context) {
	since := v.clock.Now().Unix() + 1
	if prev := v.resetAt.Load(); since > prev {
		v.resetAt.CompareAndSwap(prev, since)
	}
	if err := v.nonces.forgetBefore(ctx, since); err != nil && ctx.Err() == nil {
		v.log.WarnContext(ctx, "could not reset replay protection in Redis after a restart; this replica refuses older requests on its own", "err", err)
	}
}

func refuse(reason, msg string) *auth.Failure {
	return &auth.Failure{Reason: reason, Message: msg}
}

// VerifyRequest checks r against key's signing key. The cheap header checks
// come first; the body is read (and put back, so the next handler sees it
// unchanged) only when they pass, and the nonce is recorded only once the
// signature holds, so forged requests cannot use up a client's nonces.
func (v *Verifier) VerifyRequest(r *http.Request, key auth.APIKey) *auth.Failure {
	tsHeader := r.Header.Get(HeaderTimestamp)
	nonceHeader := r.Header.Get(HeaderNonce)
	sigHeader := r.Header.Get(HeaderSignature)
	var missing []string
	for _, h := range [][2]string{{HeaderTimestamp, tsHeader}, {HeaderNonce, nonceHeader}, {HeaderSignature, sigHeader}} {
		if h[1] == "" {
			missing = append(missing, h[0])
		}
	}
	if len(missing) > 0 {
		return refuse(ReasonSignatureMissing, "this API key requires signed requests; missing "+strings.Join(missing, ", "))
	}

	// Only the plain decimal form is accepted, so the header and the
	// TIMESTAMP line of the canonical string are always the same text.
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil || strconv.FormatInt(ts, 10) != tsHeader {
		return refuse(ReasonTimestampInvalid, "X-Timestamp must be unix seconds, like 1700000000")
	}
	now := v.clock.Now().Unix()
	skew := int64(MaxSkew / time.Second)
	if ts < now-skew || ts > now+skew {
		return refuse(ReasonTimestampSkew, fmt.Sprintf("X-Timestamp %d is more than 30 seconds from the server's time %d; check the client's clock", ts, now))
	}

	nonce, ok := parseNonce(nonceHeader)
	if !ok {
		return refuse(ReasonNonceInvalid, "X-Nonce must be a UUID, like 3f1c9a52-6e0b-4c1e-9d0a-2b7f5e8c4d11")
	}

	sig, err := decodeBase64(sigHeader)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return refuse(ReasonSignatureMalformed, "X-Request-Signature must be base64 of a 64-byte Ed25519 signature")
	}

	if key.SigningPublicKey == nil {
		return refuse(ReasonSigningKeyInvalid, "this API key has no signing key registered")
	}
	pub, err := ParsePublicKey(*key.SigningPublicKey)
	if err != nil {
		v.log.ErrorContext(r.Context(), "stored signing key is unusable", "api_key", key.ID, "err", err)
		return refuse(ReasonSigningKeyInvalid, "the signing key registered on this API key is unusable; register it again")
	}

	body, f := readBody(r)
	if f != nil {
		return f
	}

	msg := Canonical(r.Method, target(r.URL), ts, nonceHeader, body)
	if !ed25519.Verify(pub, []byte(msg), sig) {
		return refuse(ReasonSignatureInvalid, "X-Request-Signature does not match the request; sign METHOD, PATH, X-Timestamp, X-Nonce and the SHA-256 of the body")
	}

	// A request stays acceptable until its timestamp is MaxSkew in the past,
	// which for a client clock running ahead is up to 2×MaxSkew from now, so
	// the nonce is kept that long: a fixed 30 s would let such a request be
	// replayed once the key expired. The extra second covers the fraction of
	// a second that Unix() drops.
	ttl := time.Duration(ts+skew-now+1) * time.Second
	fresh, since, err := v.nonces.claim(r.Context(), key.ID, nonce, ttl, now+1)
	if err != nil {
		// Fail closed: without the record there is no way to tell a replay
		// from a first use, and a replayed billing request can move money
		// or spend quota. Unsigned paths fall back when Redis is down; this
		// one must not.
		v.log.ErrorContext(r.Context(), "cannot record request nonce; refusing signed request", "api_key", key.ID, "err", err)
		return refuse(ReasonNonceUnavailable, "replay protection is unavailable; retry the request with a new nonce shortly")
	}
	if !fresh {
		return refuse(ReasonNonceReplayed, "X-Nonce was already used; send a new UUID with every request")
	}
	if ts < max(since, v.resetAt.Load()) {
		// Signed before Redis began remembering nonces (it lost its data):
		// it may have been used already, and nothing can tell. Refusing
		// costs an honest client one re-signed retry.
		return refuse(ReasonNonceReplayed, "replay protection was reset after this request was signed; sign it again with a new timestamp and nonce")
	}
	return nil
}

// readBody reads the body to hash it and puts back a body that yields the
// same bytes, including on refusal, since the GraphQL handler still parses
// the request to answer UNAUTHENTICATED.
func readBody(r *http.Request) ([]byte, *auth.Failure) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	orig := r.Body
	b, err := readCapped(orig)
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), orig), orig}
	switch {
	case errors.Is(err, errBodyTooLarge):
		return nil, refuse(ReasonBodyTooLarge, "a signed request body may be at most 1 MiB")
	case err != nil:
		return nil, refuse(ReasonBodyUnreadable, "could not read the request body")
	}
	return b, nil
}
