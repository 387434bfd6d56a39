package auth

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkVerify measures a bearer JWT's check: "remembered" is the gate's
// steady state (the token was verified before), "parsed" a token seen for
// the first time (parse, signature, claims).
func BenchmarkVerify(b *testing.B) {
	v, clk, secret := hsVerifier(b, time.Now())
	c := Claims{Org: "acme", OrgName: "Acme Inc", Email: "dev@example.com", Scope: "billing:read usage:write"}
	c.Subject = "user-123"
	c.ExpiresAt = jwt.NewNumericDate(clk.Now().Add(time.Hour))
	c.IssuedAt = jwt.NewNumericDate(clk.Now())
	tok, err := Mint(secret, c)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("remembered", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, f := v.Verify(tok); f != nil {
				b.Fatal(f)
			}
		}
	})
	b.Run("parsed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v.verified.Remove(tok)
			if _, f := v.Verify(tok); f != nil {
				b.Fatal(f)
			}
		}
	})
}
