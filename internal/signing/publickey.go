package signing

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/tollgate-billing/tollgate/internal/ed25519key"
)

// ParsePublicKey reads an Ed25519 public key given as base64 (standard or
// URL alphabet, padded or not) of its 32 raw bytes or of its SubjectPublicKeyInfo
// DER (what `openssl pkey -pubout -outform DER | base64` prints, starting
// "MCowBQYDK2VwAyEA"), or as a PEM "PUBLIC KEY" block (what `openssl pkey
// -pubout` writes). Error messages are written for the person registering
// the key. A key no signature can be held to (see ed25519key) is refused
// here, so neither registration nor a request signed under a key stored
// before this check existed can use one.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	k, err := parsePublicKey(s)
	if err != nil {
		return nil, err
	}
	if err := usable(k); err != nil {
		return nil, err
	}
	return k, nil
}

// usable explains, for the person registering it, why a well-formed key
// cannot be used.
func usable(k ed25519.PublicKey) error {
	switch err := ed25519key.Check(k); {
	case err == nil:
		return nil
	case errors.Is(err, ed25519key.ErrSmallOrder):
		return errors.New("publicKey is a small-order Ed25519 point (such as the identity or 32 zero bytes), which one fixed signature matches for every request; generate a key pair, for example with openssl genpkey -algorithm ed25519")
	case errors.Is(err, ed25519key.ErrNonCanonical):
		return errors.New("publicKey is not the canonical encoding of an Ed25519 public key; give the key as openssl or your library prints it")
	default:
		return errors.New("publicKey is not an Ed25519 public key: its 32 bytes are not a point on the curve")
	}
}

func parsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("publicKey is required")
	}
	if strings.HasPrefix(s, "-----BEGIN") {
		return parsePEM(s)
	}
	raw, err := decodeBase64(s)
	if err != nil {
		return nil, errors.New("publicKey must be base64 of a 32-byte Ed25519 public key or of its SPKI DER, or a PEM PUBLIC KEY block")
	}
	if len(raw) == ed25519.PublicKeySize {
		return ed25519.PublicKey(raw), nil
	}
	if k, err := parseDER(raw); err == nil {
		return k, nil
	} else if !errors.Is(err, errNotDER) {
		return nil, err
	}
	return nil, fmt.Errorf("publicKey decodes to %d bytes; an Ed25519 public key is %d bytes raw, or %d as SPKI DER", len(raw), ed25519.PublicKeySize, spkiSize)
}

// spkiSize is the length of an Ed25519 key's SubjectPublicKeyInfo DER.
const spkiSize = 44

var errNotDER = errors.New("not a DER public key")

// parseDER reads a SubjectPublicKeyInfo, refusing keys of other kinds by name.
func parseDER(der []byte) (ed25519.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errNotDER
	}
	ed, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("publicKey is a %s key; only Ed25519 keys can sign requests", keyKind(k))
	}
	return ed, nil
}

func parsePEM(s string) (ed25519.PublicKey, error) {
	blk, rest := pem.Decode([]byte(s))
	if blk == nil {
		return nil, errors.New("publicKey looks like PEM but is not a complete PEM block")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, errors.New("publicKey must hold exactly one PEM block")
	}
	if blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("publicKey is a PEM %q block; give the PUBLIC KEY block (never a private key)", blk.Type)
	}
	k, err := parseDER(blk.Bytes)
	if errors.Is(err, errNotDER) {
		return nil, errors.New("publicKey PEM block is not a valid public key")
	}
	return k, err
}

func keyKind(k any) string {
	name := fmt.Sprintf("%T", k) // *rsa.PublicKey, *ecdsa.PublicKey, ...
	name = strings.TrimPrefix(name, "*")
	name, _, _ = strings.Cut(name, ".")
	return strings.ToUpper(name)
}

// EncodePublicKey is the form stored in api_keys.signing_public_key: standard
// base64 of the raw key.
func EncodePublicKey(k ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(k)
}

// decodeBase64 accepts the alphabets and padding styles that common tools
// emit, since which one a client library picks is not worth refusing over.
func decodeBase64(s string) ([]byte, error) {
	var err error
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		var b []byte
		if b, err = enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, err
}
