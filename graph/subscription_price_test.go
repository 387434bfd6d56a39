package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/tollgate-billing/tollgate/internal/apptest"
	"github.com/tollgate-billing/tollgate/internal/orgs"
	"github.com/tollgate-billing/tollgate/internal/testenv"
)

// TestSubscriptionSaysWhatItPays: a customer on Growth's yearly price sees
// that price (interval, amount, currency) and the Stripe subscription id on
// `subscription`, where `plan { priceCents interval }` only ever gives the
// monthly headline. A canceled subscription pays nothing (price null, id
// kept), and a price the plans file lacks is not guessed.
func TestSubscriptionSaysWhatItPays(t *testing.T) {
	const secret = "whsec_subscription_price_test"
	h := apptest.New(t, apptest.Options{Env: map[string]string{
		"STRIPE_SECRET_KEY": "sk_test_tollgate", "STRIPE_API_BASE": testenv.StripeMock(t), "STRIPE_WEBHOOK_SECRET": secret,
	}})
	// Checkout links the organisation to its Stripe customer, as for any
	// new subscriber; the subscription then arrives by webhook.
	yearlyCheckout(t, h, "acme")
	var org struct{ Organization struct{ ID string } }
	h.Query("acme", `{ organization { id } }`, nil).Decode(t, &org)
	o, err := orgs.Load(context.Background(), h.App.DB.DB, org.Organization.ID)
	if err != nil || o.StripeCustomerID == nil {
		t.Fatalf("organisation after checkout: %+v %v", o, err)
	}
	customer := *o.StripeCustomerID

	var plans struct {
		Plans []struct {
			ID     string
			Prices []struct {
				ID, Interval, Currency string
				AmountCents            int64
			}
		}
	}
	h.Query("acme", `{ plans { id prices { id interval amountCents currency } } }`, nil).Decode(t, &plans)
	type price struct {
		ID, Interval, Currency string
		AmountCents            int64
	}
	var yearly price
	for _, p := range plans.Plans {
		for _, pr := range p.Prices {
			if p.ID == "growth" && pr.Interval == "YEAR" {
				yearly = price{pr.ID, pr.Interval, pr.Currency, pr.AmountCents}
			}
		}
	}
	if yearly.ID == "" {
		t.Fatalf("growth has no yearly price: %+v", plans)
	}

	const subID = "sub_pays_yearly"
	created := time.Now().Add(-time.Hour).Unix()
	n := 0
	send := func(typ, status, priceID string) {
		t.Helper()
		n++
		body, _ := json.Marshal(map[string]any{"id": "evt_pays_" + string(rune('a'+n)), "object": "event", "api_version": "2023-10-16",
			"created": created + int64(n), "type": typ, "data": map[string]any{"object": map[string]any{
				"id": subID, "object": "subscription", "customer": customer, "status": status, "created": created,
				"current_period_start": created, "current_period_end": created + 365*86400,
				"items": map[string]any{"object": "list", "data": []any{map[string]any{"id": "si_pays", "object": "subscription_item",
					"price": map[string]any{"id": priceID, "object": "price"}}}}}}})
		signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now()})
		req, _ := http.NewRequest(http.MethodPost, h.Server.URL+"/webhooks/stripe", bytes.NewReader(signed.Payload))
		req.Header.Set("Stripe-Signature", signed.Header)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct{ Outcome string }
		_ = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || out.Outcome != "applied" {
			t.Fatalf("%s webhook: %d %+v", typ, resp.StatusCode, out)
		}
	}
	type subscription struct {
		ID   *string
		Plan struct {
			ID, Interval string
			PriceCents   int64
		}
		Price *price
	}
	read := func() subscription {
		t.Helper()
		var got struct{ Subscription subscription }
		h.Query("acme", `{ subscription { id plan { id interval priceCents } price { id interval amountCents currency } } }`, nil).Decode(t, &got)
		return got.Subscription
	}

	send("customer.subscription.created", "active", yearly.ID)
	got := read()
	if got.ID == nil || *got.ID != subID {
		t.Errorf("subscription id = %v, want %s", got.ID, subID)
	}
	if got.Plan.ID != "growth" || got.Price == nil || *got.Price != yearly {
		t.Errorf("on growth's yearly price: plan %+v, price %+v; want price %+v", got.Plan, got.Price, yearly)
	}

	send("customer.subscription.updated", "active", "price_not_in_the_plans_file")
	if got := read(); got.Price != nil {
		t.Errorf("a price the plans file lacks answers price %+v, want null", *got.Price)
	}

	send("customer.subscription.deleted", "canceled", yearly.ID)
	got = read()
	if got.Plan.ID != "free" || got.Price != nil {
		t.Errorf("canceled: plan %s, price %+v; want free and no price", got.Plan.ID, got.Price)
	}
	if got.ID == nil || *got.ID != subID {
		t.Errorf("canceled subscription id = %v, want %s kept", got.ID, subID)
	}
}
