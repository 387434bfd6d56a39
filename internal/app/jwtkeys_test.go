package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/tollgate-billing/tollgate/internal/app"
	"github.com/tollgate-billing/tollgate/internal/config"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// TestAKeyTollgateCannotUseNamesItsFile: a JWT_PUBLIC_KEYS_FILE holding a
// key of a type Tollgate does not verify with (ECDSA) stops start-up with
// an error naming that variable, not JWT_SECRET, which is set and fine.
func TestAKeyTollgateCannotUseNamesItsFile(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"JWT_SECRET": "a-secret-long-enough-0123456789abcdef", "JWT_PUBLIC_KEYS_FILE": path, "TOLLGATE_DATA_DIR": dir}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := app.New(context.Background(), cfg, log, app.WithDB(testenv.DB(t)), app.WithRedis(testenv.MiniRedis(t)))
	if err == nil {
		a.Close()
	}
	if ce := (*config.Error)(nil); !errors.As(err, &ce) || ce.Var != "JWT_PUBLIC_KEYS_FILE" {
		t.Fatalf("start-up error %v, want one naming JWT_PUBLIC_KEYS_FILE", err)
	}
}
