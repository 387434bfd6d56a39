// Package ed25519key decides whether an Ed25519 public key can mean
// anything. crypto/ed25519 verifies against any 32 bytes it can decode, and
// some decodable keys have no secret behind them: for a point of small order
// (the identity, the all-zero encoding, the other torsion points) a fixed
// signature verifies every message, so accepting such a key would void the
// signature it is meant to require. The arithmetic is filippo.io/edwards25519,
// the package crypto/ed25519 itself is built on; nothing here is home-made.
package ed25519key

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"filippo.io/edwards25519"
)

// Reasons Check refuses a key; each wraps ErrUnusable.
var (
	ErrUnusable = errors.New("unusable Ed25519 public key")
	// ErrNotOnCurve: the bytes are no point of the curve.
	ErrNotOnCurve = fmt.Errorf("%w: not a point on the curve", ErrUnusable)
	// ErrNonCanonical: a point written in a form other than its one
	// canonical encoding (a y coordinate of p or more, or a sign bit on
	// x = 0); implementations disagree on whether such keys verify.
	ErrNonCanonical = fmt.Errorf("%w: not the canonical encoding of its point", ErrUnusable)
	// ErrSmallOrder: a point of order 1, 2, 4 or 8.
	ErrSmallOrder = fmt.Errorf("%w: a point of small order, which a fixed signature matches for every message", ErrUnusable)
)

// Check reports whether pub is a key a signature can be held to: the
// canonical encoding of a curve point whose order is not small.
func Check(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: %d bytes, not %d", ErrUnusable, len(pub), ed25519.PublicKeySize)
	}
	// SetBytes refuses what is not on the curve but, by design, accepts
	// non-canonical encodings; encoding the point again tells those apart.
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return ErrNotOnCurve
	}
	if !bytes.Equal(p.Bytes(), pub) {
		return ErrNonCanonical
	}
	// The curve's order is 8·ℓ: multiplying by the cofactor 8 sends exactly
	// the points of order 1, 2, 4 and 8 to the identity.
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return ErrSmallOrder
	}
	return nil
}
