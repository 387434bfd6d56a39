package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/tollgate-billing/tollgate/internal/plans"
)

// version is one state of a Stripe subscription, as one event carries it.
type version struct {
	eventID, eventType string
	created            time.Time // the event's `created`: what orders versions
	status             string
	plan               plans.Plan
	cancelAtPeriodEnd  bool
	periodStart        time.Time
	canceledAt         *time.Time
}

func (v version) periodEnd() time.Time { return v.periodStart.AddDate(0, 1, 0) }

// lifecycle is one subscription from creation to its last change, owned by
// one organisation.
type lifecycle struct {
	orgExternal, orgID string
	subID, customer    string
	subCreated         time.Time
	versions           []version
}

func (l lifecycle) last() version { return l.versions[len(l.versions)-1] }

var (
	firstStatuses = []string{"incomplete", "trialing", "active"}
	laterStatuses = []string{"active", "active", "trialing", "past_due", "unpaid", "paused", "incomplete"}
)

// newLifecycle makes a random history: created, one to four updates that
// change status, plan, cancel_at_period_end and the period, and in 40% of
// cases a final deletion. Each event is 1 s to 2 h after the one before, so
// `created` orders them strictly, as Stripe's timestamps do when they differ.
// With sameSecond the first update has the creation's `created` second, as
// when Stripe creates a subscription incomplete and activates it at once.
func newLifecycle(rng *rand.Rand, runID string, i int, paid []plans.Plan, base time.Time, sameSecond bool) lifecycle {
	id := fmt.Sprintf("soak%s_%04d", runID, i)
	at := base.Add(time.Duration(rng.IntN(3600)) * time.Second)
	l := lifecycle{
		orgExternal: "soak-sub-" + id, subID: "sub_" + id, customer: "cus_" + id, subCreated: at,
	}
	v := version{
		eventType: "customer.subscription.created", created: at,
		status: firstStatuses[rng.IntN(len(firstStatuses))], plan: paid[rng.IntN(len(paid))], periodStart: at,
	}
	l.versions = append(l.versions, v)
	updates := 1 + rng.IntN(4)
	for u := range updates {
		if u > 0 || !sameSecond {
			v.created = v.created.Add(time.Duration(1+rng.IntN(7200)) * time.Second)
		}
		v.eventType = "customer.subscription.updated"
		v.status = laterStatuses[rng.IntN(len(laterStatuses))]
		if rng.IntN(3) == 0 {
			v.plan = paid[rng.IntN(len(paid))]
		}
		v.cancelAtPeriodEnd = rng.IntN(3) == 0
		if rng.IntN(3) == 0 {
			v.periodStart = v.periodStart.AddDate(0, 1, 0)
		}
		l.versions = append(l.versions, v)
	}
	if rng.IntN(5) < 2 {
		v.created = v.created.Add(time.Duration(1+rng.IntN(7200)) * time.Second)
		v.eventType = "customer.subscription.deleted"
		v.status = "canceled"
		ended := v.created
		v.canceledAt = &ended
		l.versions = append(l.versions, v)
	}
	for j := range l.versions {
		l.versions[j].eventID = fmt.Sprintf("evt_%s_%d", id, j)
	}
	return l
}

// event renders version j as a Stripe event body, shaped like the ones
// the stripehook tests build. The subscription names its organisation in
// metadata.org_id, as the subscriptions Tollgate's Checkout creates do.
func (l lifecycle) event(j int) []byte {
	v := l.versions[j]
	var canceledAt any
	if v.canceledAt != nil {
		canceledAt = v.canceledAt.Unix()
	}
	price := map[string]any{
		"id": v.plan.StripePriceID, "object": "price", "currency": v.plan.Currency, "type": "recurring", "active": true,
		"unit_amount": v.plan.PriceCents,
		"recurring":   map[string]any{"interval": v.plan.Interval, "interval_count": 1, "usage_type": "licensed"},
	}
	sub := map[string]any{
		"id": l.subID, "object": "subscription", "customer": l.customer, "status": v.status,
		"created": l.subCreated.Unix(), "start_date": l.subCreated.Unix(), "currency": v.plan.Currency,
		"current_period_start": v.periodStart.Unix(), "current_period_end": v.periodEnd().Unix(),
		"cancel_at_period_end": v.cancelAtPeriodEnd, "cancel_at": nil, "canceled_at": canceledAt, "ended_at": canceledAt,
		"collection_method": "charge_automatically", "livemode": false, "latest_invoice": nil,
		"metadata": map[string]any{"org_id": l.orgID, "plan_id": v.plan.ID},
		"items": map[string]any{"object": "list", "has_more": false, "url": "/v1/subscription_items?subscription=" + l.subID,
			"data": []any{map[string]any{"id": "si_" + l.subID, "object": "subscription_item", "quantity": 1,
				"subscription": l.subID, "price": price}}},
	}
	b, err := json.Marshal(map[string]any{
		"id": v.eventID, "object": "event", "api_version": "2024-06-20", "created": v.created.Unix(),
		"type": v.eventType, "livemode": false, "pending_webhooks": 1,
		"request": map[string]any{"id": nil, "idempotency_key": nil},
		"data":    map[string]any{"object": sub},
	})
	if err != nil {
		panic(err) // plain maps of plain values
	}
	return b
}
