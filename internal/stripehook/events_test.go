package stripehook_test

import (
	"encoding/json"
	"time"
)

// Builders of Stripe event payloads in the shape Stripe sends them
// (API version 2024-06-20), with only what a scenario varies as
// parameters.

func event(id, typ string, created time.Time, object map[string]any) []byte {
	b, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": "2024-06-20", "created": created.Unix(),
		"type": typ, "livemode": false, "pending_webhooks": 1,
		"request": map[string]any{"id": nil, "idempotency_key": nil},
		"data":    map[string]any{"object": object},
	})
	if err != nil {
		panic(err)
	}
	return b
}

var prices = map[string]map[string]any{
	"starter": {"id": "price_tollgate_starter_monthly", "unit_amount": 4900},
	"growth":  {"id": "price_tollgate_growth_monthly", "unit_amount": 19900},
}

type subSpec struct {
	id, customer, orgID, plan, status string
	created, periodStart              time.Time
	cancelAtPeriodEnd                 bool
	canceledAt                        *time.Time
}

func subscriptionObject(s subSpec) map[string]any {
	price := map[string]any{"object": "price", "currency": "usd", "type": "recurring", "active": true,
		"recurring": map[string]any{"interval": "month", "interval_count": 1, "usage_type": "licensed"}}
	for k, v := range prices[s.plan] {
		price[k] = v
	}
	var canceledAt any
	if s.canceledAt != nil {
		canceledAt = s.canceledAt.Unix()
	}
	return map[string]any{
		"id": s.id, "object": "subscription", "customer": s.customer, "status": s.status,
		"created": s.created.Unix(), "start_date": s.created.Unix(), "currency": "usd",
		"current_period_start": s.periodStart.Unix(), "current_period_end": s.periodStart.AddDate(0, 1, 0).Unix(),
		"cancel_at_period_end": s.cancelAtPeriodEnd, "cancel_at": nil, "canceled_at": canceledAt, "ended_at": canceledAt,
		"collection_method": "charge_automatically", "livemode": false, "latest_invoice": nil,
		"metadata": map[string]any{"org_id": s.orgID, "plan_id": s.plan},
		"items": map[string]any{"object": "list", "has_more": false, "url": "/v1/subscription_items?subscription=" + s.id,
			"data": []any{map[string]any{"id": "si_" + s.id, "object": "subscription_item", "quantity": 1,
				"subscription": s.id, "price": price}}},
	}
}

type invoiceSpec struct {
	id, customer, subscription, orgID, status string
	created, paidAt                           time.Time
	amount                                    int64
}

func invoiceObject(s invoiceSpec) map[string]any {
	paid := int64(0)
	var paidAt any
	if s.status == "paid" {
		paid, paidAt = s.amount, s.paidAt.Unix()
	}
	return map[string]any{
		"id": s.id, "object": "invoice", "customer": s.customer, "subscription": s.subscription,
		"status": s.status, "number": "ACME-" + s.id[len(s.id)-4:], "currency": "usd",
		"amount_due": s.amount, "amount_paid": paid, "amount_remaining": s.amount - paid,
		"subtotal": s.amount, "total": s.amount, "created": s.created.Unix(),
		"period_start": s.created.Unix(), "period_end": s.created.Unix(), "billing_reason": "subscription_cycle",
		"hosted_invoice_url": "https://invoice.stripe.com/i/acct_test/" + s.id,
		"invoice_pdf":        "https://pay.stripe.com/invoice/acct_test/" + s.id + "/pdf",
		"status_transitions": map[string]any{"finalized_at": s.created.Unix(), "paid_at": paidAt,
			"voided_at": nil, "marked_uncollectible_at": nil},
		"subscription_details": map[string]any{"metadata": map[string]any{"org_id": s.orgID}},
		"lines":                map[string]any{"object": "list", "data": []any{}, "has_more": false},
		"livemode":             false, "paid": s.status == "paid", "attempted": true,
	}
}

func checkoutObject(id, orgID, customer, subscription, plan string, created time.Time) map[string]any {
	return map[string]any{
		"id": id, "object": "checkout.session", "mode": "subscription", "status": "complete",
		"payment_status": "paid", "client_reference_id": orgID, "customer": customer,
		"subscription": subscription, "created": created.Unix(), "currency": "usd", "amount_total": 4900,
		"metadata":    map[string]any{"org_id": orgID, "plan_id": plan},
		"success_url": "https://app.example.com/billing/success", "cancel_url": "https://app.example.com/billing",
		"livemode": false,
	}
}
