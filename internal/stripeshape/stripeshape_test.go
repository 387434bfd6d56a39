package stripeshape

import (
	"encoding/json"
	"testing"

	"github.com/stripe/stripe-go/v76"
)

func TestItemPeriodsComeFromEachItemInBasil(t *testing.T) {
	cases := []struct {
		name string
		raw  string
		want map[string]Period
	}{
		{"basil: each item has its period", `{"items":{"data":[
			{"price":{"id":"price_a"},"current_period_start":100,"current_period_end":200},
			{"price":"price_b","current_period_start":150,"current_period_end":250}]}}`,
			map[string]Period{"price_a": {100, 200}, "price_b": {150, 250}}},
		{"2023-10-16: the period is the subscription's", `{"current_period_start":100,"current_period_end":200,
			"items":{"data":[{"price":{"id":"price_a"}}]}}`, map[string]Period{}},
		{"no raw JSON", ``, map[string]Period{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ItemPeriods([]byte(tc.raw))
			if len(got) != len(tc.want) {
				t.Fatalf("periods %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("period of %s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

func TestInvoiceReadsBothShapes(t *testing.T) {
	cases := []struct {
		name               string
		raw                string
		wantSub, wantOrg   string
		wantStart, wantEnd int64
	}{
		{"basil: subscription and metadata under parent, period from the line", `{"id":"in_1","period_start":5,"period_end":5,
			"parent":{"type":"subscription_details","subscription_details":{"subscription":"sub_1","metadata":{"org_id":"org_1"}}},
			"lines":{"data":[
				{"period":{"start":1,"end":2},"parent":{"type":"subscription_item_details","subscription_item_details":{"proration":true,"subscription":"sub_1"}}},
				{"period":{"start":10,"end":20},"parent":{"type":"subscription_item_details","subscription_item_details":{"proration":false,"subscription":"sub_1"}}}]}}`,
			"sub_1", "org_1", 10, 20},
		{"basil: an expanded subscription", `{"id":"in_1","parent":{"subscription_details":{"subscription":{"id":"sub_2","object":"subscription"}}}}`,
			"sub_2", "", 0, 0},
		{"2023-10-16: top level, period from the subscription line", `{"id":"in_1","subscription":"sub_3","period_start":5,"period_end":5,
			"subscription_details":{"metadata":{"org_id":"org_3"}},
			"lines":{"data":[{"type":"invoiceitem","period":{"start":1,"end":2}},{"type":"subscription","period":{"start":30,"end":40}}]}}`,
			"sub_3", "org_3", 30, 40},
		{"an invoice of no subscription keeps its own period", `{"id":"in_1","period_start":5,"period_end":6,
			"lines":{"data":[{"type":"invoiceitem","period":{"start":1,"end":2}}]}}`, "", "", 5, 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var inv stripe.Invoice
			if err := json.Unmarshal([]byte(tc.raw), &inv); err != nil {
				t.Fatal(err)
			}
			Invoice(&inv, []byte(tc.raw))
			sub, org := "", ""
			if inv.Subscription != nil {
				sub = inv.Subscription.ID
			}
			if inv.SubscriptionDetails != nil {
				org = inv.SubscriptionDetails.Metadata["org_id"]
			}
			if sub != tc.wantSub || org != tc.wantOrg || inv.PeriodStart != tc.wantStart || inv.PeriodEnd != tc.wantEnd {
				t.Fatalf("subscription %q org %q period %d–%d, want %q %q %d–%d",
					sub, org, inv.PeriodStart, inv.PeriodEnd, tc.wantSub, tc.wantOrg, tc.wantStart, tc.wantEnd)
			}
		})
	}
}

// An invoice read through the pinned API version (reconciliation) has no
// raw JSON; its subscription line still gives the period.
func TestInvoiceWithoutRawJSONUsesItsLines(t *testing.T) {
	inv := &stripe.Invoice{PeriodStart: 5, PeriodEnd: 5, Lines: &stripe.InvoiceLineItemList{Data: []*stripe.InvoiceLineItem{
		{Type: stripe.InvoiceLineItemTypeSubscription, Period: &stripe.Period{Start: 50, End: 60}},
	}}}
	Invoice(inv, nil)
	if inv.PeriodStart != 50 || inv.PeriodEnd != 60 {
		t.Fatalf("period %d–%d, want the line's 50–60", inv.PeriodStart, inv.PeriodEnd)
	}
}

func TestShapeOf(t *testing.T) {
	for v, want := range map[string]string{"2023-10-16": "2023-10-16", "2024-06-20": "2023-10-16", "2025-03-31.basil": "basil", "2025-06-30.basil": "basil", "": "2023-10-16"} {
		if got := ShapeOf(v); got != want {
			t.Errorf("ShapeOf(%q) = %s, want %s", v, got, want)
		}
	}
}
