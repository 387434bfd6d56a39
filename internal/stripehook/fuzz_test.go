package stripehook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/tollgate-billing/tollgate/internal/clock"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/stripehook"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// FuzzWebhook posts arbitrary bodies and Stripe-Signature headers to the
// real endpoint: nothing may panic or answer 5xx, which would have Stripe
// retry a delivery that can never succeed. With resign set the body is
// signed with the endpoint's secret, so the fuzzer also reaches what
// happens after verification, which a forged header never does.
func FuzzWebhook(f *testing.F) {
	db := testenv.FuzzDB(f)
	h, _ := newHandler(f, db, nil, stripetest.Discard())
	org, err := orgs.NewService(db, clock.Real{}).Ensure(context.Background(), "ext-fuzz", "Fuzz", "")
	if err != nil {
		f.Fatal(err)
	}
	sign := func(body []byte) string {
		return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now()}).Header
	}

	now := time.Now().UTC()
	created := event("evt_fuzz_created", "customer.subscription.created", now, subscriptionObject(subSpec{
		id: "sub_fuzz", customer: "cus_fuzz", orgID: org, plan: "growth", status: "active", created: now, periodStart: now}))
	f.Add(created, sign(created), false)
	f.Add(created, "t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd", false)
	f.Add([]byte(`{"id": "evt_1", "type":`), "", true)
	f.Add([]byte{}, "", false)
	f.Add(event("evt_fuzz_failed", "invoice.payment_failed", now, invoiceObject(invoiceSpec{
		id: "in_fuzz", customer: "cus_fuzz", subscription: "sub_fuzz", orgID: org, status: "open",
		created: now, paidAt: now, amount: 4900})), "", true)
	f.Add(event("evt_fuzz_checkout", "checkout.session.completed", now,
		checkoutObject("cs_fuzz", org, "cus_fuzz", "sub_fuzz", "starter", now)), "", true)

	f.Fuzz(func(t *testing.T, body []byte, header string, resign bool) {
		if resign {
			header = sign(body)
		}
		req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", bytes.NewReader(body))
		req.Header.Set("Stripe-Signature", header)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("answered %d to %q (signature %q): %s", w.Code, body, header, w.Body)
		}
		if resign && len(body) <= stripehook.MaxBodyBytes && w.Code != http.StatusOK && w.Code != http.StatusBadRequest {
			t.Fatalf("answered %d to a signed body, want 200 for an event or 400 for anything else", w.Code)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("answered %d with a body that is not JSON: %q", w.Code, w.Body)
		}
	})
}
