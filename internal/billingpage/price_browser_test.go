package billingpage_test

import (
	"fmt"
	"testing"
)

// TestYearlySubscriberSeesWhatTheyPay: on Growth's yearly price the plan
// reads the yearly amount a year, not the monthly headline a month.
func TestYearlySubscriberSeesWhatTheyPay(t *testing.T) {
	h := newTollgate(t)
	org := orgID(t, h, "yearly", "Yearly Co")
	subscribe(t, h, org, "price_tollgate_growth_yearly")
	growth, _ := h.App.Catalog.ByID("growth")
	yearly := growth.Prices[0]
	for _, pr := range growth.Prices {
		if pr.Interval == "year" {
			yearly = pr
		}
	}
	if yearly.Interval != "year" {
		t.Fatalf("growth has no yearly price: %+v", growth.Prices)
	}

	b := newBrowser(t, h.Server.URL, desktopWidth, desktopHeight)
	b.open("/billing#token=" + h.Token("yearly"))
	if got := b.text("#plan-name"); got != "Growth" {
		t.Fatalf("plan = %q, want Growth", got)
	}
	want := "$" + thousands(int(yearly.AmountCents/100)) + fmt.Sprintf(".%02d", yearly.AmountCents%100)
	if got := b.text("#plan-price"); got != want {
		t.Errorf("price = %q, want the yearly price %q", got, want)
	}
	if got := b.text("#plan-interval"); got != "per year" {
		t.Errorf("interval = %q, want per year", got)
	}
}

// TestUsagePastAHardLimitFillsTheBar: usage taken on a paid plan's soft
// limit stays after a downgrade to free, past free's hard limit. The bar is
// full, as the words under it say, not a sliver of limit/used.
func TestUsagePastAHardLimitFillsTheBar(t *testing.T) {
	h := newTollgate(t)
	org := orgID(t, h, "down", "Downgraded Co")
	subscribe(t, h, org, "price_tollgate_growth_monthly")
	free, _ := h.App.Catalog.ByID("free")
	var limit int64
	for _, l := range free.Limits {
		if l.Meter == "api_calls" {
			limit = l.Limit
		}
	}
	used := 5 * limit
	var out struct{ RecordUsage struct{ Accepted int } }
	h.Query("down", `mutation($in: RecordUsageInput!) { recordUsage(input: $in) { accepted } }`, map[string]any{"in": map[string]any{
		"events": []any{map[string]any{"meter": "api_calls", "quantity": used, "idempotencyKey": "before-downgrade"}}}}).Decode(t, &out)
	if out.RecordUsage.Accepted != 1 {
		t.Fatalf("recorded %d events on growth", out.RecordUsage.Accepted)
	}
	cancelSubscription(t, h, org, "price_tollgate_growth_monthly")

	b := newBrowser(t, h.Server.URL, desktopWidth, desktopHeight)
	b.open("/billing#token=" + h.Token("down"))
	if got := b.text("#plan-name"); got != "Free" {
		t.Fatalf("plan = %q, want Free after the cancellation", got)
	}
	b.waitFor(`!!document.querySelector('[data-meter="api_calls"] .bar .fill')`)
	if got, want := b.text(`[data-meter="api_calls"] .used`), thousands(int(used)); got != want {
		t.Errorf("api calls used = %q, want %q", got, want)
	}
	share := eval[float64](b, `(() => { const bar = document.querySelector('[data-meter="api_calls"] .bar');
		return bar.querySelector('.fill').getBoundingClientRect().width / bar.getBoundingClientRect().width; })()`)
	if share < 0.99 {
		t.Errorf("the bar of a meter past its hard limit is %.0f%% full, want full", 100*share)
	}
}
