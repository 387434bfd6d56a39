package app_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/tollgate-billing/tollgate/internal/apptest"
)

// An operator sees on /readyz which Stripe API versions webhooks arrive in.
func TestReadyzListsTheStripeAPIVersionsSeen(t *testing.T) {
	const secret, version = "whsec_readyz_test", "2025-03-31.basil"
	h := apptest.New(t, apptest.Options{Env: map[string]string{"STRIPE_WEBHOOK_SECRET": secret}})
	body, _ := json.Marshal(map[string]any{"id": "evt_readyz_version", "object": "event", "api_version": version,
		"created": time.Now().Unix(), "type": "customer.created", "data": map[string]any{"object": map[string]any{"id": "cus_x", "object": "customer"}}})
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now()})
	req, _ := http.NewRequest(http.MethodPost, h.Server.URL+"/webhooks/stripe", bytes.NewReader(body))
	req.Header.Set("Stripe-Signature", signed.Header)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook delivery: %v %v", resp, err)
	}
	resp.Body.Close()

	r := get(t, h.Server.URL+"/readyz", nil)
	defer r.Body.Close()
	var ready struct {
		StripeAPIVersions []string `json:"stripeApiVersions"`
	}
	if err := json.NewDecoder(r.Body).Decode(&ready); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ready.StripeAPIVersions, version) {
		t.Fatalf("readyz stripeApiVersions = %v, want %s listed", ready.StripeAPIVersions, version)
	}
}
