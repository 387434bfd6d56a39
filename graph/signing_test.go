package graph_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/google/uuid"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/auth"
	"github.com/tollgate-billing/tollgate/internal/signing"
)

type signedResult struct {
	Data   json.RawMessage
	Errors []apptest.GQLError
}

func (r signedResult) reason() string {
	if len(r.Errors) == 0 {
		return ""
	}
	s, _ := r.Errors[0].Extensions["reason"].(string)
	return s
}

func send(t *testing.T, req *http.Request) signedResult {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out signedResult
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	return out
}

// TestSignedAPIKeys: once a signing key is registered, the API key alone no
// longer works; a signed request does, once.
func TestSignedAPIKeys(t *testing.T) {
	apptest.EachDialect(t, apptest.Options{}, func(t *testing.T, h *apptest.Harness) {
		var created createKeyResult
		h.Query("acme", createKey, map[string]any{"in": map[string]any{"name": "ingest", "scopes": []string{"BILLING_READ", "USAGE_WRITE"}}}).Decode(t, &created)
		secret, keyID := *created.CreateAPIKey.Secret, created.CreateAPIKey.APIKey.ID

		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		const register = `mutation($in: RegisterSigningKeyInput!) { registerSigningKey(input: $in) { apiKey { signingRequired } userErrors { field code } } }`
		var reg struct {
			RegisterSigningKey struct {
				APIKey     *struct{ SigningRequired bool }
				UserErrors []struct{ Field, Code string }
			}
		}
		h.Query("intruder", register, map[string]any{"in": map[string]any{"apiKeyId": keyID, "publicKey": base64.StdEncoding.EncodeToString(pub)}}).Decode(t, &reg)
		if ue := reg.RegisterSigningKey.UserErrors; len(ue) != 1 || ue[0].Field != "input.apiKeyId" {
			t.Fatalf("another org registered a key on ours: %+v", reg)
		}
		h.Query("acme", register, map[string]any{"in": map[string]any{"apiKeyId": keyID, "publicKey": "not a key"}}).Decode(t, &reg)
		if ue := reg.RegisterSigningKey.UserErrors; len(ue) != 1 || ue[0].Field != "input.publicKey" || ue[0].Code != "INVALID" {
			t.Fatalf("garbage public key accepted: %+v", reg)
		}
		// Both fields bad: both are reported, not only the first found.
		h.Query("intruder", register, map[string]any{"in": map[string]any{"apiKeyId": keyID, "publicKey": "not a key"}}).Decode(t, &reg)
		if ue := reg.RegisterSigningKey.UserErrors; len(ue) != 2 || ue[0].Field != "input.apiKeyId" || ue[0].Code != "NOT_FOUND" || ue[1].Field != "input.publicKey" || ue[1].Code != "INVALID" {
			t.Fatalf("bad key and unknown id: %+v, want NOT_FOUND on input.apiKeyId and INVALID on input.publicKey", reg)
		}
		h.Query("acme", register, map[string]any{"in": map[string]any{"apiKeyId": "not-an-id", "publicKey": "not a key"}}).Decode(t, &reg)
		if ue := reg.RegisterSigningKey.UserErrors; len(ue) != 2 || ue[0].Field != "input.apiKeyId" || ue[1].Field != "input.publicKey" {
			t.Fatalf("bad key and malformed id: %+v, want both fields reported", reg)
		}
		// Registered in the README's form: base64 SPKI DER, as
		// `openssl pkey -pubout -outform DER | base64` prints it.
		spki, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		h.Query("acme", register, map[string]any{"in": map[string]any{"apiKeyId": keyID, "publicKey": base64.StdEncoding.EncodeToString(spki)}}).Decode(t, &reg)
		if reg.RegisterSigningKey.APIKey == nil || !reg.RegisterSigningKey.APIKey.SigningRequired {
			t.Fatalf("register failed: %+v", reg)
		}

		body := []byte(`{"query":"{ usageGate(meter: \"api_calls\") { allowed plan } }"}`)
		newReq := func(auth map[string]string) *http.Request {
			req, _ := http.NewRequest(http.MethodPost, h.Server.URL+"/graphql", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			for k, v := range auth {
				req.Header.Set(k, v)
			}
			return req
		}
		sign := func(req *http.Request) *http.Request {
			if err := signing.Sign(req, priv, h.Clock.Now()); err != nil {
				t.Fatal(err)
			}
			return req
		}

		if r := send(t, newReq(map[string]string{"X-API-Key": secret})); r.reason() != signing.ReasonSignatureMissing {
			t.Fatalf("unsigned request with a signing key: %+v", r)
		}
		for name, hdr := range map[string]map[string]string{
			"key in X-API-Key":          {"X-API-Key": secret},
			"bare key in Authorization": {"Authorization": secret},
			"key id in Authorization":   {"Authorization": keyID},
		} {
			t.Run(name, func(t *testing.T) {
				req := sign(newReq(hdr))
				replay := req.Clone(req.Context())
				replay.Body = io.NopCloser(bytes.NewReader(body))
				if r := send(t, req); len(r.Errors) > 0 {
					t.Fatalf("signed request refused: %+v", r.Errors)
				}
				if r := send(t, replay); r.reason() != signing.ReasonNonceReplayed {
					t.Fatalf("replay: %+v", r)
				}
			})
		}
		t.Run("a signature by another key is refused", func(t *testing.T) {
			_, other, _ := ed25519.GenerateKey(rand.Reader)
			req := newReq(map[string]string{"X-API-Key": secret})
			signing.Sign(req, other, h.Clock.Now())
			if r := send(t, req); r.reason() != signing.ReasonSignatureInvalid {
				t.Fatalf("%+v", r)
			}
		})
		t.Run("a revoked key id reads as unknown unless its signing key signed the request", func(t *testing.T) {
			var other createKeyResult
			h.Query("acme", createKey, map[string]any{"in": map[string]any{"name": "to revoke", "scopes": []string{"BILLING_READ"}}}).Decode(t, &other)
			otherID := other.CreateAPIKey.APIKey.ID
			otherPub, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
			h.Query("acme", register, map[string]any{"in": map[string]any{"apiKeyId": otherID, "publicKey": base64.StdEncoding.EncodeToString(otherPub)}}).Decode(t, &reg)
			if reg.RegisterSigningKey.APIKey == nil {
				t.Fatalf("register: %+v", reg)
			}
			h.Query("acme", `mutation($id: ID!) { revokeApiKey(id: $id) { apiKey { id } } }`, map[string]any{"id": otherID})
			unknown := sign(newReq(map[string]string{"Authorization": "5f0c2a4e-0000-4000-8000-000000000001"}))
			if r := send(t, unknown); r.reason() != auth.ReasonUnknownKey {
				t.Fatalf("an unknown key id: %+v", r)
			}
			forged := sign(newReq(map[string]string{"Authorization": otherID})) // signed by another key
			if r := send(t, forged); r.reason() != auth.ReasonUnknownKey {
				t.Fatalf("a revoked key id, signed by someone else: %+v, want %s as for an unknown id", r, auth.ReasonUnknownKey)
			}
			own := newReq(map[string]string{"Authorization": otherID})
			if err := signing.Sign(own, otherPriv, h.Clock.Now()); err != nil {
				t.Fatal(err)
			}
			if r := send(t, own); r.reason() != auth.ReasonRevokedKey {
				t.Fatalf("a revoked key id, signed by its own key: %+v, want %s", r, auth.ReasonRevokedKey)
			}
		})
		t.Run("a key id without a signing key cannot authenticate", func(t *testing.T) {
			var plain createKeyResult
			h.Query("acme", createKey, map[string]any{"in": map[string]any{"name": "plain", "scopes": []string{"BILLING_READ"}}}).Decode(t, &plain)
			req := sign(newReq(map[string]string{"Authorization": plain.CreateAPIKey.APIKey.ID}))
			if r := send(t, req); len(r.Errors) == 0 || r.Errors[0].Extensions["code"] != "UNAUTHENTICATED" {
				t.Fatalf("%+v", r)
			}
		})
	})
}

// TestSmallOrderSigningKeys: a public key no secret stands behind (a point
// of small order, such as the identity or 32 zero bytes) is refused at
// registration with a userError, and one stored before that check existed
// authenticates nothing, not even the one signature it would verify.
func TestSmallOrderSigningKeys(t *testing.T) {
	h := apptest.New(t, apptest.Options{})
	var created createKeyResult
	h.Query("acme", createKey, map[string]any{"in": map[string]any{"name": "ingest", "scopes": []string{"BILLING_READ"}}}).Decode(t, &created)
	keyID := created.CreateAPIKey.APIKey.ID

	const register = `mutation($in: RegisterSigningKeyInput!) { registerSigningKey(input: $in) { apiKey { signingRequired } userErrors { field message code } } }`
	// Two small-order points, the identity and 32 zero bytes (ed25519key's
	// own test sends all eight to the check registration makes), and the
	// identity written non-canonically.
	for _, hexKey := range []string{
		"0100000000000000000000000000000000000000000000000000000000000000",
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000080",
	} {
		raw, _ := hex.DecodeString(hexKey)
		var reg struct {
			RegisterSigningKey struct {
				APIKey     *struct{ SigningRequired bool }
				UserErrors []struct{ Field, Message, Code string }
			}
		}
		h.Query("acme", register, map[string]any{"in": map[string]any{"apiKeyId": keyID, "publicKey": base64.StdEncoding.EncodeToString(raw)}}).Decode(t, &reg)
		ue := reg.RegisterSigningKey.UserErrors
		if len(ue) != 1 || ue[0].Field != "input.publicKey" || ue[0].Code != "INVALID" || reg.RegisterSigningKey.APIKey != nil {
			t.Fatalf("key %s: %+v, want one INVALID userError on input.publicKey", hexKey, reg)
		}
	}

	// A row written before registration refused such keys.
	var row auth.APIKey
	if err := h.App.DB.Where("id = ?", keyID).First(&row).Error; err != nil {
		t.Fatal(err)
	}
	if _, err := h.App.Keys.SetSigningKey(context.Background(), row.OrgID, keyID, "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, h.Server.URL+"/graphql", bytes.NewReader([]byte(`{"query":"{ plans { id } }"}`)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", keyID)
	req.Header.Set(signing.HeaderTimestamp, strconv.FormatInt(h.Clock.Now().Unix(), 10))
	req.Header.Set(signing.HeaderNonce, uuid.NewString())
	req.Header.Set(signing.HeaderSignature, base64.StdEncoding.EncodeToString(append([]byte{1}, make([]byte, 63)...)))
	if r := send(t, req); r.reason() != signing.ReasonSigningKeyInvalid {
		t.Fatalf("the forged signature under a stored identity key: %+v %s, want reason %s", r.Errors, r.Data, signing.ReasonSigningKeyInvalid)
	}
}
