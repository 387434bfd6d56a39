package ed25519key

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"

	"filippo.io/edwards25519"
)

// smallOrder are, in hex, the canonical encodings of the eight points of
// small order ("Taming the many EdDSAs", Chalkias et al., 2020): Check
// refuses each.
var smallOrder = [8]string{
	"0100000000000000000000000000000000000000000000000000000000000000", // the identity, order 1
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
	"0000000000000000000000000000000000000000000000000000000000000000", // 32 zero bytes, order 4
	"0000000000000000000000000000000000000000000000000000000000000080", // order 4
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
	"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85", // order 8
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", // order 8
	"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", // order 8
}

// TestSmallOrderIsSmallOrder: smallOrder is what it says: eight distinct canonical points, each sent to the
// identity by the cofactor.
func TestSmallOrderIsSmallOrder(t *testing.T) {
	seen := map[string]bool{}
	for _, h := range smallOrder {
		p, err := new(edwards25519.Point).SetBytes(mustHex(h))
		if err != nil || !bytes.Equal(p.Bytes(), mustHex(h)) || seen[h] {
			t.Fatalf("%s is not a distinct canonical point: %v", h, err)
		}
		seen[h] = true
		if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) != 1 {
			t.Fatalf("%s is not of small order", h)
		}
	}
}

func TestCheck(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		hex  string
		want error
	}{
		{"the identity with the sign bit set is refused", "0100000000000000000000000000000000000000000000000000000000000080", ErrNonCanonical},
		{"y = p+1 (the identity, unreduced) is refused", "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", ErrNonCanonical},
		{"y = p (the order-4 point, unreduced) is refused", "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", ErrNonCanonical},
		{"a large-order point written with y = p+3 is refused", "f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", ErrNonCanonical},
		{"y = 2, which is on no point of the curve, is refused", "0200000000000000000000000000000000000000000000000000000000000000", ErrNotOnCurve},
		{"a large-order point with y = 3 is accepted", "0300000000000000000000000000000000000000000000000000000000000000", nil},
		{"a generated key is accepted", hex.EncodeToString(pub), nil},
	}
	for _, h := range smallOrder {
		cases = append(cases, struct {
			name string
			hex  string
			want error
		}{h + " (small order) is refused", h, ErrSmallOrder})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, _ := hex.DecodeString(tc.hex)
			err := Check(k)
			if !errors.Is(err, tc.want) || (tc.want != nil && !errors.Is(err, ErrUnusable)) {
				t.Fatalf("Check(%s) = %v, want %v", tc.hex, err, tc.want)
			}
		})
	}
}

// TestSmallOrderKeysVerifyAForgedSignature is why Check exists: with each
// small-order key, crypto/ed25519 accepts a signature made without any
// secret for a message of the forger's choosing.
func TestSmallOrderKeysVerifyAForgedSignature(t *testing.T) {
	// R = the identity, S = 0: [S]B = R + [k]A holds when [k]A is the
	// identity, which for the identity key A is always.
	forged := append(bytes.Clone(mustHex(smallOrder[0])), make([]byte, 32)...)
	if !ed25519.Verify(mustHex(smallOrder[0]), []byte("POST\n/graphql\n…"), forged) {
		t.Fatal("crypto/ed25519 no longer accepts the forgery; the test's premise changed")
	}
	if Check(mustHex(smallOrder[0])) == nil {
		t.Fatal("the identity key is accepted")
	}
}

func TestWrongLengthIsRefused(t *testing.T) {
	if err := Check(make([]byte, 31)); !errors.Is(err, ErrUnusable) {
		t.Fatalf("Check(31 bytes) = %v", err)
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
