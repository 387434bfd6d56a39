package stripehook_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/tollgate-billing/tollgate/internal/billing"
	"github.com/tollgate-billing/tollgate/internal/store"
	"github.com/tollgate-billing/tollgate/internal/stripeclient/stripetest"
	"github.com/tollgate-billing/tollgate/internal/stripehook"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

func TestRefusesWhatStripeDidNotSend(t *testing.T) {
	testenv.EachDialect(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		s := newScenario(f)
		body := event("evt_refused_"+s.sub, "customer.subscription.created", s.at(1), s.subscription("growth", "active", 1))
		sign := func(b []byte, key string, at time.Time) string {
			return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: b, Secret: key, Timestamp: at}).Header
		}
		now := time.Now()
		huge := append(bytes.Repeat([]byte(" "), stripehook.MaxBodyBytes), body...)
		cases := []struct {
			name   string
			body   []byte
			header string
			want   int
		}{
			{"no signature", body, "", http.StatusBadRequest},
			{"a garbled signature header", body, "t=abc,v1=zz", http.StatusBadRequest},
			{"signed with another secret", body, sign(body, "whsec_someone_else", now), http.StatusBadRequest},
			{"a signature of another body", body, sign(event("evt_other", "customer.subscription.created", now, nil), secret, now), http.StatusBadRequest},
			{"a signature older than five minutes", body, sign(body, secret, now.Add(-6*time.Minute)), http.StatusBadRequest},
			{"a well-signed body that is not JSON", []byte(`{"id": "evt_1", "type":`), sign([]byte(`{"id": "evt_1", "type":`), secret, now), http.StatusBadRequest},
			{"a well-signed JSON body that is not an event", []byte(`{"hello":"world"}`), sign([]byte(`{"hello":"world"}`), secret, now), http.StatusBadRequest},
			{"a body over 1 MiB, even well signed", huge, sign(huge, secret, now), http.StatusRequestEntityTooLarge},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				if r := f.post(tc.body, tc.header); r.Status != tc.want {
					t.Fatalf("answered %d, want %d", r.Status, tc.want)
				}
			})
		}
		if n := f.count(&stripehook.WebhookEvent{}) + f.count(&billing.Subscription{}); n != 0 {
			t.Fatalf("stored %d rows from refused deliveries, want none", n)
		}
		if o := orgOf(f, s.org); o.PlanID != "free" || o.StripeCustomerID != nil {
			t.Fatalf("org changed by refused deliveries: plan %s customer %v", o.PlanID, o.StripeCustomerID)
		}
		// The same event, properly signed and fresh, is accepted: the
		// refusals above were about the delivery, not the event.
		if out := f.mustDeliver(body); out != "applied" {
			t.Fatalf("outcome %q, want applied", out)
		}
	})
}

func TestWithoutWebhookSecretNothingIsApplied(t *testing.T) {
	h := stripehook.NewHandler(stripehook.Config{Log: stripetest.Discard()})
	f := &fixture{t: t, handler: h}
	if r := f.deliver([]byte(`{}`)); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("answered %d, want 503 so Stripe retries once the secret is set", r.Status)
	}
}
