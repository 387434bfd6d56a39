package signing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"testing"
)

func TestParsePublicKey(t *testing.T) {
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaDER}))
	privDER, err := x509.MarshalPKCS8PrivateKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	privPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))

	cases := []struct {
		name    string
		in      string
		wantErr string // substring; "" means the key is accepted
	}{
		{"standard base64 of the raw key is accepted", base64.StdEncoding.EncodeToString(pub), ""},
		{"URL-safe unpadded base64 is accepted", base64.RawURLEncoding.EncodeToString(pub), ""},
		{"surrounding whitespace is ignored", "  " + base64.StdEncoding.EncodeToString(pub) + "\n", ""},
		{"a PEM PUBLIC KEY block is accepted", pemKey, ""},
		{"base64 SPKI DER, as openssl pkey -pubout -outform DER prints, is accepted", base64.StdEncoding.EncodeToString(der), ""},
		{"URL-safe base64 SPKI DER is accepted", base64.RawURLEncoding.EncodeToString(der), ""},
		{"base64 of an RSA SPKI DER is refused by name", base64.StdEncoding.EncodeToString(rsaDER), "RSA"},
		{"base64 of a DER private key is refused", base64.StdEncoding.EncodeToString(privDER), "48 bytes"},
		{"an empty key is refused", "  ", "required"},
		{"a key of the wrong length is refused", base64.StdEncoding.EncodeToString(pub[:31]), "31 bytes"},
		{"text that is not base64 is refused", "ssh-ed25519 AAAAC3Nza", "base64"},
		{"an RSA PEM key is refused", rsaPEM, "RSA"},
		{"a PEM private key is refused", privPEM, "never a private key"},
		{"a truncated PEM block is refused", pemKey[:40], "not a complete PEM block"},
		{"two PEM blocks are refused", pemKey + pemKey, "exactly one"},
		{"a PEM block that is not a key is refused", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")})), "not a valid public key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePublicKey(tc.in)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !got.Equal(pub) {
					t.Fatalf("parsed %x, want %x", got, pub)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

// TestKeysWithoutASecretAreRefused: every form ParsePublicKey reads (raw
// base64, SPKI DER, PEM) refuses small-order, non-canonical and off-curve
// keys, naming the problem.
func TestKeysWithoutASecretAreRefused(t *testing.T) {
	type bad struct{ hex, want string }
	// Two of the eight small-order points (ed25519key's own test sends
	// every one to Check): the identity, and 32 zero bytes.
	keys := []bad{
		{"0100000000000000000000000000000000000000000000000000000000000000", "small-order"},
		{"0000000000000000000000000000000000000000000000000000000000000000", "small-order"},
		{"0100000000000000000000000000000000000000000000000000000000000080", "canonical"}, // the identity, sign bit set
		{"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", "canonical"}, // the identity, y = p+1
		{"f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", "canonical"}, // a large-order point, y = p+3
		{"0200000000000000000000000000000000000000000000000000000000000000", "not a point on the curve"},
	}
	for _, k := range keys {
		raw, err := hex.DecodeString(k.hex)
		if err != nil {
			t.Fatal(err)
		}
		// x509 marshals any 32 bytes as an Ed25519 SPKI, as a client would.
		der, err := x509.MarshalPKIXPublicKey(ed25519.PublicKey(raw))
		if err != nil {
			t.Fatal(err)
		}
		for form, in := range map[string]string{
			"raw":  base64.StdEncoding.EncodeToString(raw),
			"url":  base64.RawURLEncoding.EncodeToString(raw),
			"spki": base64.StdEncoding.EncodeToString(der),
			"pem":  string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		} {
			t.Run(k.hex[:8]+"…"+k.hex[60:]+"/"+form, func(t *testing.T) {
				got, err := ParsePublicKey(in)
				if err == nil || !strings.Contains(err.Error(), k.want) {
					t.Fatalf("ParsePublicKey = %x, %v; want an error mentioning %q", got, err, k.want)
				}
			})
		}
	}
	if _, err := ParsePublicKey("AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="); err == nil {
		t.Fatal("the identity point, as the probe sent it, is accepted")
	}
}

// TestREADMESigningKeyExampleIsSPKI: the README's registerSigningKey example
// starts as every base64 SPKI DER Ed25519 key does, so what a reader pastes
// from openssl is what the example shows.
func TestREADMESigningKeyExampleIsSPKI(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(der)
	if !strings.HasPrefix(b64, "MCowBQYDK2VwAyEA") {
		t.Fatalf("SPKI DER of an Ed25519 key is %s, not the README's MCowBQYDK2VwAyEA… form", b64)
	}
	got, err := ParsePublicKey(b64)
	if err != nil || !got.Equal(pub) {
		t.Fatalf("ParsePublicKey(%s) = %x, %v; want %x", b64, got, err, pub)
	}
}

func TestEncodedKeyParsesBack(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePublicKey(EncodePublicKey(pub))
	if err != nil || !got.Equal(pub) {
		t.Fatalf("ParsePublicKey(EncodePublicKey(k)) = %x, %v; want %x", got, err, pub)
	}
}
