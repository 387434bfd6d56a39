// Package stripeshape reads the few fields that Stripe API versions moved.
// stripe-go v76 decodes objects in the 2023-10-16 shape. From 2025-03-31
// ("basil") Stripe sends a subscription's billing period on each item
// rather than on the subscription, and an invoice's subscription and its
// metadata under parent.subscription_details rather than at the top level.
// A webhook endpoint's API version is chosen in the Stripe dashboard, so
// events arrive in either shape; this is the one place that reads both,
// from the event's raw JSON, falling back to the 2023 fields.
package stripeshape

import (
	"encoding/json"

	"github.com/stripe/stripe-go/v76"
)

// Basil is the first API version in which the fields read here moved.
const Basil = "2025-03-31"

// ShapeOf names the shape of payloads of an API version: "basil" from
// 2025-03-31 on, "2023-10-16" before (and for an unknown version).
func ShapeOf(apiVersion string) string {
	if apiVersion >= Basil {
		return "basil"
	}
	return "2023-10-16"
}

// Period is a billing period in Unix seconds.
type Period struct{ Start, End int64 }

// ItemPeriods returns the current period of each item of a subscription
// sent in the basil shape, by price id; empty for the 2023 shape (or no
// raw JSON), where the period is the subscription's own.
func ItemPeriods(raw []byte) map[string]Period {
	var sub struct {
		Items struct {
			Data []struct {
				Price              json.RawMessage `json:"price"`
				CurrentPeriodStart int64           `json:"current_period_start"`
				CurrentPeriodEnd   int64           `json:"current_period_end"`
			} `json:"data"`
		} `json:"items"`
	}
	out := map[string]Period{}
	if len(raw) == 0 || json.Unmarshal(raw, &sub) != nil {
		return out
	}
	for _, it := range sub.Items.Data {
		if id := expandableID(it.Price); id != "" && it.CurrentPeriodStart > 0 {
			if _, seen := out[id]; !seen {
				out[id] = Period{Start: it.CurrentPeriodStart, End: it.CurrentPeriodEnd}
			}
		}
	}
	return out
}

// Invoice completes an invoice decoded by stripe-go from raw (which may be
// nil for one read through the pinned API version):
//   - its subscription and the subscription's metadata, from
//     parent.subscription_details when the top level lacks them;
//   - for a subscription invoice, its period from the subscription line (not
//     a proration): Stripe's top-level period_start/period_end is the
//     creation instant on a first invoice, and the line says what was
//     bought.
func Invoice(inv *stripe.Invoice, raw []byte) {
	var doc struct {
		Parent *struct {
			SubscriptionDetails *struct {
				Subscription json.RawMessage   `json:"subscription"`
				Metadata     map[string]string `json:"metadata"`
			} `json:"subscription_details"`
		} `json:"parent"`
		Lines struct {
			Data []rawLine `json:"data"`
		} `json:"lines"`
	}
	if len(raw) > 0 && json.Unmarshal(raw, &doc) == nil {
		if p := doc.Parent; p != nil && p.SubscriptionDetails != nil {
			d := p.SubscriptionDetails
			if id := expandableID(d.Subscription); id != "" && (inv.Subscription == nil || inv.Subscription.ID == "") {
				inv.Subscription = &stripe.Subscription{ID: id}
			}
			if len(d.Metadata) > 0 && (inv.SubscriptionDetails == nil || len(inv.SubscriptionDetails.Metadata) == 0) {
				inv.SubscriptionDetails = &stripe.InvoiceSubscriptionDetails{Metadata: d.Metadata}
			}
		}
	}
	if p, ok := subscriptionLinePeriod(inv, doc.Lines.Data); ok {
		inv.PeriodStart, inv.PeriodEnd = p.Start, p.End
	}
}

type rawLine struct {
	Period *struct {
		Start int64 `json:"start"`
		End   int64 `json:"end"`
	} `json:"period"`
	Parent *struct {
		SubscriptionItemDetails *struct {
			Proration bool `json:"proration"`
		} `json:"subscription_item_details"`
	} `json:"parent"`
}

// subscriptionLinePeriod finds the period of the invoice's subscription
// line: basil marks one by parent.subscription_item_details, the 2023 shape
// by type "subscription". A non-proration line wins over a proration.
func subscriptionLinePeriod(inv *stripe.Invoice, raw []rawLine) (Period, bool) {
	type line struct {
		period    Period
		proration bool
	}
	var lines []line
	for _, l := range raw {
		if l.Parent != nil && l.Parent.SubscriptionItemDetails != nil && l.Period != nil {
			lines = append(lines, line{Period{l.Period.Start, l.Period.End}, l.Parent.SubscriptionItemDetails.Proration})
		}
	}
	if len(lines) == 0 && inv.Lines != nil {
		for _, l := range inv.Lines.Data {
			if l != nil && l.Type == stripe.InvoiceLineItemTypeSubscription && l.Period != nil {
				lines = append(lines, line{Period{l.Period.Start, l.Period.End}, l.Proration})
			}
		}
	}
	for _, l := range lines {
		if !l.proration {
			return l.period, true
		}
	}
	if len(lines) > 0 {
		return lines[0].period, true
	}
	return Period{}, false
}

// expandableID reads an expandable field: an id, or an object with one.
func expandableID(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var id string
	if json.Unmarshal(raw, &id) == nil {
		return id
	}
	var obj struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		return obj.ID
	}
	return ""
}
